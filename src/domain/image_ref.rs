//! A Docker image reference that names an exact tag or digest, judged as
//! docker judges it.
//!
//! docker reads a reference twice: the CLI (distribution/reference v0.6) and
//! then the engine (20.10 vendors the older docker/distribution copy). Where
//! they differ the engine is the stricter, and a reference it refuses fails
//! every scale, so these are its rules (checked against CLI 28.2 and engine
//! 20.10 by tests/api/image_refs.rs):
//!
//! - the first component is a registry host only when it holds a `.` or a
//!   `:` or is exactly `localhost`; otherwise it is part of the path, so
//!   `UPPER/case:1` is an uppercase path, not a host. (The CLI since
//!   distribution/reference v0.6 also takes an uppercase first component for
//!   a host; 20.10 refuses it.)
//! - a host is dot-separated components of letters (either case), digits and
//!   inner `-`, with an optional `:port` of digits. An IPv6 host in brackets
//!   is the CLI's, not 20.10's.
//! - a first component with a `.` that is no host, such as `a_b.c`, is read
//!   as a path component instead.
//! - path components are lowercase letters and digits, separated inside by
//!   one `.`, one or two `_`, or any run of `-`.
//! - a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` (ASCII only).
//! - a digest is `sha256`, `sha384` or `sha512` with exactly 64, 96 or 128
//!   lowercase hex digits (go-digest: other algorithms are unsupported).
//! - the repository name as docker spells it in full is at most 255
//!   characters: `docker.io/` goes before a name without a host, and
//!   `docker.io/library/` before a single-component one.
//!
//! The connector adds its own policy on top: a tag or a digest is required
//! (an untagged reference would follow whatever `latest` becomes), no `-` at
//! the start, no whitespace.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::error::Error;

/// Docker's reference grammar under the rules above. The host alternatives
/// are the three ways a first component becomes a host; the digest is
/// docker's loose form, checked further by [`check_digest`].
static IMAGE_REF: LazyLock<Regex> = LazyLock::new(|| {
    let host_part = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let domain = format!(r"{host_part}(?:\.{host_part})*");
    let host = format!(r"(?:{domain}:[0-9]+|{host_part}(?:\.{host_part})+|localhost)");
    let component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    let tag = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
    let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
    Regex::new(&format!(
        r"^(?P<name>(?:{host}/)?{component}(?:/{component})*)(?::(?P<tag>{tag}))?(?:@(?P<digest>{digest}))?$"
    ))
    .expect("valid regex")
});

/// Longest repository name docker accepts, spelled in full.
const MAX_NAME_LEN: usize = 255;

/// The digest algorithms docker can verify, and their lengths in hex digits.
const DIGEST_ALGORITHMS: [(&str, usize); 3] = [("sha256", 64), ("sha384", 96), ("sha512", 128)];

/// An image reference such as `registry:5000/team/app:1.2` or
/// `app@sha256:...`; never starts with `-`, never holds whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ImageRef(String);

impl ImageRef {
    /// # Errors
    /// [`Error::Invalid`] naming `image` when `raw` is not a reference docker
    /// accepts, or has neither a tag nor a digest.
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
            if IMAGE_REF.is_match(&raw.to_ascii_lowercase()) {
                return bad(
                    "must be lowercase except for a registry host and the tag (docker reads \
                     the first component as a host only when it holds '.' or ':' or is \
                     'localhost')",
                );
            }
            return bad(
                "is not a valid image reference ([registry[:port]/]path[:tag][@digest], \
                 lowercase path)",
            );
        };
        if let Some(digest) = parts.name("digest") {
            if let Err(why) = check_digest(digest.as_str()) {
                return bad(&why);
            }
        }
        if full_name_len(&parts["name"]) > MAX_NAME_LEN {
            return bad("has a repository name longer than 255 characters \
                 (as docker spells it, with docker.io/library/ when there is no host)");
        }
        // Syntax first, so that a refusal names docker's fault before the
        // connector's policy.
        if parts.name("tag").is_none() && parts.name("digest").is_none() {
            return bad("must include a tag (name:tag) or a digest (name@sha256:...)");
        }
        Ok(ImageRef(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether docker can use `digest` (`algorithm:hex`): go-digest knows only
/// the algorithms in [`DIGEST_ALGORITHMS`] and wants exactly their length in
/// lowercase hex.
fn check_digest(digest: &str) -> Result<(), String> {
    let (algorithm, hex) = digest.split_once(':').unwrap_or((digest, ""));
    let Some(&(_, len)) = DIGEST_ALGORITHMS.iter().find(|(a, _)| *a == algorithm) else {
        return Err(format!(
            "has a digest of algorithm {algorithm:?}, which docker does not support \
             (sha256, sha384 or sha512)"
        ));
    };
    if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!(
            "has a {algorithm} digest that is not {len} lowercase hex digits"
        ));
    }
    Ok(())
}

/// The length of the repository `name` as docker spells it in full, which is
/// what its 255-character limit counts: docker takes the first component
/// for a host as [`IMAGE_REF`] does, puts `docker.io` in place of no host or
/// `index.docker.io`, and `library/` before a single component on it.
fn full_name_len(name: &str) -> usize {
    let (host, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
        _ => ("docker.io", name),
    };
    let host = if host == "index.docker.io" {
        "docker.io"
    } else {
        host
    };
    let library = if host == "docker.io" && !path.contains('/') {
        "library/".len()
    } else {
        0
    };
    host.len() + 1 + library + path.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(image: &str) -> String {
        match ImageRef::parse(image) {
            Ok(_) => panic!("{image:?} was accepted"),
            Err(Error::Invalid { field, reason }) => {
                assert_eq!(field, "image");
                reason
            }
            Err(other) => panic!("{image:?}: {other:?}"),
        }
    }

    #[test]
    fn accepts_tagged_and_digested_references() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for image in [
            "busybox:latest".to_owned(),
            "tutum/hello-world:latest".to_owned(),
            "localhost:5000/team/app_x:v1.2-rc".to_owned(),
            "localhost/app:1".to_owned(),
            "registry.example.com/a/b/c:1".to_owned(),
            "Registry.Example.COM:0443/a:1".to_owned(),
            "registry:5000/a:1".to_owned(),
            "1.2.3.4:80/a:1".to_owned(),
            "a__b/c---d/e.f:_T-1.x".to_owned(),
            format!("app:{}", "t".repeat(128)),
            format!("app@{digest}"),
            format!("app:1@{digest}"),
            format!("app@sha384:{}", "0".repeat(96)),
            format!("app@sha512:{}", "f".repeat(128)),
            // A first component with a '.' that is no host is a path
            // component, as docker reads it.
            "a_b.c/x:1".to_owned(),
            // `sha256` as a name, with a tag.
            format!("sha256:{}", "a".repeat(64)),
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

    #[test]
    fn an_uppercase_first_component_without_dot_or_colon_is_no_host() {
        for image in ["UPPER/case:1", "LOCALHOST/x:1", "Team/app:1", "Nosuch:1"] {
            let why = error_of(image);
            assert!(why.contains("must be lowercase"), "{image}: {why}");
        }
        // With a '.' or a ':' it is a host, and a host may be uppercase.
        assert!(ImageRef::parse("UPPER.case/x:1").is_ok());
        assert!(ImageRef::parse("UPPER:5000/x:1").is_ok());
        // But never the path after it.
        assert!(ImageRef::parse("localhost:5000/Foo:1").is_err());
    }

    #[test]
    fn rejects_what_engine_20_10_refuses_in_hosts_and_paths() {
        for image in [
            "[::1]:5000/x:1",
            "[::1]/x:1",
            "host:/x:1",
            "ex-.com/x:1",
            "-ex.com/x:1",
            "ex..com/x:1",
            "x/:1",
            "x//y:1",
            "a___b:1",
            "a..b:1",
            "a._b:1",
            "a-:1",
            "x:1:2",
            "x:.a",
            "x:é",
        ] {
            assert!(ImageRef::parse(image).is_err(), "{image:?}");
        }
        assert!(ImageRef::parse(&format!("x:{}", "t".repeat(129))).is_err());
    }

    #[test]
    fn digests_follow_go_digest() {
        let cases = [
            (format!("x@sha256:{}", "A".repeat(64)), "64 lowercase hex"),
            (format!("x@sha256:{}", "a".repeat(63)), "64 lowercase hex"),
            (format!("x@sha256:{}", "a".repeat(65)), "64 lowercase hex"),
            (format!("x@sha512:{}", "a".repeat(64)), "128 lowercase hex"),
            (format!("x@md5:{}", "a".repeat(32)), "does not support"),
            (format!("x@SHA256:{}", "a".repeat(64)), "does not support"),
            (
                format!("x@sha256+b64:{}", "a".repeat(64)),
                "does not support",
            ),
        ];
        for (image, needle) in cases {
            let why = error_of(&image);
            assert!(why.contains(needle), "{image}: {why}");
        }
    }

    #[test]
    fn the_name_limit_counts_the_name_as_docker_spells_it_in_full() {
        // docker.io/library/ + 237 = 255; docker.io/ + b/ + 243 = 255.
        let fits = [
            format!("{}:1", "a".repeat(237)),
            format!("b/{}:1", "a".repeat(243)),
            format!("reg.io/{}:1", "a".repeat(248)),
            format!("docker.io/{}:1", "a".repeat(237)),
            format!("index.docker.io/{}:1", "a".repeat(237)),
        ];
        for image in &fits {
            assert!(ImageRef::parse(image).is_ok(), "{} chars", image.len());
        }
        let too_long = [
            format!("{}:1", "a".repeat(238)),
            format!("b/{}:1", "a".repeat(244)),
            format!("reg.io/{}:1", "a".repeat(249)),
            format!("docker.io/{}:1", "a".repeat(238)),
            format!("index.docker.io/{}:1", "a".repeat(238)),
        ];
        for image in &too_long {
            let why = error_of(image);
            assert!(why.contains("longer than 255"), "{why}");
        }
    }
}
