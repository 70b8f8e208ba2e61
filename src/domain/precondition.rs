//! The `If-Match` header of a write: compare-and-set on a service's
//! revision, which its `ETag` (`"<revision>"`) names.

use crate::error::Error;

/// What an `If-Match` header asks of the service a write changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// `*`: the service must exist.
    Exists,
    /// The service must be at one of these revisions.
    AtRevision(Vec<u64>),
}

impl Precondition {
    /// Parses an `If-Match` value: `*`, or a comma-separated list of
    /// entity tags such as `"12"`. Weak tags (`W/"12"`) never match under
    /// If-Match's strong comparison (RFC 9110, 13.1.1), so they are refused
    /// rather than silently failing every time.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `If-Match`.
    pub fn parse(header: &str) -> Result<Self, Error> {
        let header = header.trim();
        if header == "*" {
            return Ok(Precondition::Exists);
        }
        let invalid = |tag: &str| {
            Error::invalid(
                "If-Match",
                format!(
                    "{tag:?} is not an entity tag of this connector: send the ETag of a \
                     service's answer, such as \"12\" with its quotes, or *"
                ),
            )
        };
        let revisions = header
            .split(',')
            .map(str::trim)
            .map(|tag| {
                tag.strip_prefix('"')
                    .and_then(|rest| rest.strip_suffix('"'))
                    .filter(|digits| !digits.is_empty() && digits.len() <= 19)
                    .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|digits| digits.parse::<u64>().ok())
                    .ok_or_else(|| invalid(tag))
            })
            .collect::<Result<Vec<u64>, Error>>()?;
        Ok(Precondition::AtRevision(revisions))
    }

    /// Whether a service at `revision` (`None`: it does not exist) meets it.
    pub fn admits(&self, revision: Option<u64>) -> bool {
        match (self, revision) {
            (_, None) => false,
            (Precondition::Exists, Some(_)) => true,
            (Precondition::AtRevision(wanted), Some(revision)) => wanted.contains(&revision),
        }
    }
}

/// The `ETag` of a service at `revision`.
pub fn entity_tag(revision: u64) -> String {
    format!("\"{revision}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tags_and_star_and_matches_strongly() {
        let one = Precondition::parse("\"12\"").unwrap();
        assert!(one.admits(Some(12)) && !one.admits(Some(13)) && !one.admits(None));
        let list = Precondition::parse(" \"3\" , \"12\"").unwrap();
        assert!(list.admits(Some(3)) && list.admits(Some(12)));
        let star = Precondition::parse("*").unwrap();
        assert!(star.admits(Some(1)) && !star.admits(None));
        assert_eq!(entity_tag(12), "\"12\"");
        assert_eq!(
            Precondition::parse(&entity_tag(7)).unwrap(),
            Precondition::AtRevision(vec![7])
        );
    }

    #[test]
    fn refuses_what_is_no_tag_of_ours_naming_the_header() {
        for bad in [
            "12",
            "W/\"12\"",
            "\"\"",
            "\"a1\"",
            "\"1\",",
            "\"99999999999999999999\"",
        ] {
            match Precondition::parse(bad) {
                Err(Error::Invalid { field, .. }) => assert_eq!(field, "If-Match", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
