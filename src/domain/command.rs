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
    /// Parses the `command` field (not null). It must name a program: an
    /// empty argv or an empty first word is refused, since docker cannot
    /// start it.
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
        // docker would take an empty argv, or an empty program name, only
        // to fail at every start; refused here, a definition that cannot
        // run is never stored.
        let unrunnable = match argv.first() {
            None => Some("is empty (a blank string, only a # comment, or [])"),
            Some(program) if program.is_empty() => Some("starts with an empty word"),
            Some(_) => None,
        };
        if let Some(what) = unrunnable {
            return Err(Error::invalid(
                "command",
                format!("{what}; to run the image's own command, leave `command` out or null"),
            ));
        }
        Ok(Command {
            as_given: raw.clone(),
            argv,
        })
    }

    /// The arguments passed after the image: never empty, and the first
    /// (the program) never an empty string.
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

    #[test]
    fn a_command_must_name_a_program() {
        for empty in [
            json!(""),
            json!(" "),
            json!("\t\n"),
            json!("#x"),
            json!("  # only a comment"),
            json!("'' arg"),
            json!([]),
            json!([""]),
            json!(["", "arg"]),
        ] {
            match Command::parse(&empty) {
                Err(Error::Invalid { field, reason }) => {
                    assert_eq!(field, "command", "{empty}");
                    assert!(reason.contains("leave `command` out"), "{empty}: {reason}");
                }
                other => panic!("{empty}: {other:?}"),
            }
        }
        // Only the program must be a word; its arguments may be empty.
        let cmd = Command::parse(&json!(["echo", ""])).unwrap();
        assert_eq!(cmd.argv(), ["echo", ""]);
        assert_eq!(Command::parse(&json!("x #y")).unwrap().argv(), ["x"]);
    }
}
