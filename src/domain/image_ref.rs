//! A Docker image reference that names an exact tag or digest.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::error::Error;

/// The reference grammar of Docker's distribution library, restricted to what
/// the connector accepts: an optional registry host (with port), lowercase
/// path components, then a tag, a sha256 digest, or both.
static IMAGE_REF: LazyLock<Regex> = LazyLock::new(|| {
    let host_part = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let host = format!(r"{host_part}(?:\.{host_part})*(?::[0-9]+)?");
    let component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    let tag = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
    let digest = r"sha256:[a-f0-9]{64}";
    Regex::new(&format!(
        r"^(?:{host}/)?{component}(?:/{component})*(?P<tag>:{tag})?(?P<digest>@{digest})?$"
    ))
    .expect("valid regex")
});

/// Longest repository name Docker accepts.
const MAX_NAME_LEN: usize = 255;

/// An image reference such as `registry:5000/team/app:1.2` or
/// `app@sha256:...`; never starts with `-`, never holds whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ImageRef(String);

impl ImageRef {
    /// # Errors
    /// [`Error::Invalid`] naming `image` when `raw` is not a reference with a
    /// tag or digest.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let bad = |why: &str| Err(Error::invalid("image", format!("{raw:?} {why}")));
        if raw.is_empty() {
            return bad("is empty");
        }
        if raw.starts_with('-') {
            return bad("must not start with '-'");
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("must not contain whitespace or control characters");
        }
        let Some(parts) = IMAGE_REF.captures(raw) else {
            return bad(
                "is not a valid image reference ([registry[:port]/]path[:tag][@sha256:digest], \
                 lowercase path)",
            );
        };
        let Some(suffix) = parts.name("tag").or(parts.name("digest")) else {
            return bad("must include a tag (name:tag) or a digest (name@sha256:...)");
        };
        let name_len = suffix.start();
        if name_len > MAX_NAME_LEN {
            return bad("has a repository name longer than 255 characters");
        }
        Ok(ImageRef(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_tagged_and_digested_references() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for image in [
            "busybox:latest".to_owned(),
            "tutum/hello-world:latest".to_owned(),
            "localhost:5000/team/app_x:v1.2-rc".to_owned(),
            "registry.example.com/a/b/c:1".to_owned(),
            format!("app@{digest}"),
            format!("app:1@{digest}"),
        ] {
            assert!(ImageRef::parse(&image).is_ok(), "{image}");
        }
    }

    #[test]
    fn rejects_untagged_flags_spaces_uppercase_and_bad_digests() {
        for image in [
            "busybox",
            "team/app",
            "--privileged",
            "-v/:/host:1",
            "busy box:1",
            "busybox:1\n",
            "Team/App:1x/Upper:1",
            "app:",
            "app@sha256:abc",
            "app@md5:0123",
            ":latest",
            "app:-bad",
            "",
        ] {
            assert!(ImageRef::parse(image).is_err(), "{image:?}");
        }
    }
}
