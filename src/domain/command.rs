//! The command a service's containers run, as argv.

use serde_json::Value;

use super::json_type::json_type;
use crate::error::Error;

/// A command as the client gave it (a string or an array of strings) and the
/// argv it stands for. A string is split by POSIX shell-word rules, quotes
/// honoured and nothing expanded, so no shell ever sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    as_given: Value,
    argv: Vec<String>,
}

impl Command {
    /// Parses the `command` field (not null).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `command` or `command[i]`.
    pub fn parse(raw: &Value) -> Result<Self, Error> {
        let argv = match raw {
            Value::String(line) => shell_words::split(line)
                .map_err(|_| Error::invalid("command", "has an unbalanced quote"))?,
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(arg) => Ok(arg.clone()),
                    other => Err(Error::invalid(
                        format!("command[{i}]"),
                        format!("must be a string, not {}", json_type(other)),
                    )),
                })
                .collect::<Result<_, _>>()?,
            other => {
                return Err(Error::invalid(
                    "command",
                    format!(
                        "must be a string, an array of strings or null, not {}",
                        json_type(other)
                    ),
                ))
            }
        };
        if argv.iter().any(|arg| arg.contains('\0')) {
            return Err(Error::invalid(
                "command",
                "must not contain a NUL character",
            ));
        }
        Ok(Command {
            as_given: raw.clone(),
            argv,
        })
    }

    /// The arguments passed after the image; empty means the image's default.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    pub fn as_given(&self) -> &Value {
        &self.as_given
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_strings_like_a_shell_without_expanding() {
        let cmd = Command::parse(&json!(r#"sh -c 'echo "a b"; $(rm -rf /)' `x` \; "#)).unwrap();
        assert_eq!(
            cmd.argv(),
            ["sh", "-c", r#"echo "a b"; $(rm -rf /)"#, "`x`", ";"]
        );
    }

    #[test]
    fn keeps_arrays_as_given() {
        let cmd = Command::parse(&json!(["echo", "a b", "'q'"])).unwrap();
        assert_eq!(cmd.argv(), ["echo", "a b", "'q'"]);
        assert_eq!(cmd.as_given(), &json!(["echo", "a b", "'q'"]));
    }

    #[test]
    fn rejects_unbalanced_quotes_and_non_strings() {
        for bad in [
            json!("echo 'a"),
            json!("echo \"a"),
            json!([1]),
            json!(5),
            json!({}),
            json!(["a\u{0}"]),
        ] {
            assert!(Command::parse(&bad).is_err(), "{bad}");
        }
    }
}
