//! Volumes mounted into each container: docker named volumes, and host
//! paths only under directories the operator allowed.

use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::json_type::json_type;
use crate::error::Error;

const FIELDS: [&str; 3] = ["source", "target", "read_only"];
const MOST_MOUNTS: usize = 64;
const LONGEST_PATH: usize = 4096;

/// Docker's rule for a volume name.
static VOLUME_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$").expect("valid regex"));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MountKind {
    /// A docker named volume: created by docker on first use, kept when
    /// the containers go.
    Volume,
    /// A host path: root on the host through an HTTP API, so only under
    /// [`BindPolicy`]'s directories.
    Bind,
}

/// One mount of a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub(crate) kind: MountKind,
    pub(crate) source: String,
    pub(crate) target: String,
    pub(crate) read_only: bool,
}

/// The host directories bind mounts may come from (`allowed_bind_paths`),
/// each resolved to its real path when the connector starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindPolicy {
    allowed: Vec<PathBuf>,
}

impl BindPolicy {
    /// # Errors
    /// A message naming a directory that is not absolute or cannot be
    /// resolved: the connector must not start with a policy it cannot
    /// apply.
    pub fn new(directories: &[PathBuf]) -> Result<Self, String> {
        let allowed = directories
            .iter()
            .map(|dir| {
                if !dir.is_absolute() {
                    return Err(format!(
                        "configuration: allowed_bind_paths: {} is not an absolute path",
                        dir.display()
                    ));
                }
                std::fs::canonicalize(dir).map_err(|e| {
                    format!("configuration: allowed_bind_paths: {}: {e}", dir.display())
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(BindPolicy { allowed })
    }

    /// Checks that `source` is a host path this policy allows: it exists,
    /// and with every symlink and `..` resolved it lies under an allowed
    /// directory. Checked when a definition is given and again before each
    /// container starts, since what a path resolves to can change.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `field`.
    pub(crate) fn check(&self, field: &str, source: &str) -> Result<(), Error> {
        if self.allowed.is_empty() {
            return Err(Error::invalid(
                field,
                format!(
                    "{source:?} is a host path, and bind mounts of host paths are off: the \
                     operator allows them under directories listed in allowed_bind_paths"
                ),
            ));
        }
        let real = std::fs::canonicalize(source).map_err(|e| {
            Error::invalid(
                field,
                format!("host path {source:?} cannot be resolved: {e}"),
            )
        })?;
        if self.allowed.iter().any(|dir| real.starts_with(dir)) {
            Ok(())
        } else {
            Err(Error::invalid(
                field,
                format!(
                    "host path {source:?} (really {}) is not under any of allowed_bind_paths",
                    real.display()
                ),
            ))
        }
    }
}

impl Mount {
    /// Parses the `volumes` field (not null): a list of mounts with
    /// distinct targets.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `volumes` or `volumes[i].KEY`.
    pub(crate) fn parse_list(raw: &Value) -> Result<Vec<Mount>, Error> {
        let Value::Array(items) = raw else {
            return Err(Error::invalid(
                "volumes",
                format!("must be a list of mounts or null, not {}", json_type(raw)),
            ));
        };
        if items.len() > MOST_MOUNTS {
            return Err(Error::invalid(
                "volumes",
                format!("at most {MOST_MOUNTS} mounts are taken"),
            ));
        }
        let mut mounts: Vec<Mount> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let mount = Mount::parse(&format!("volumes[{i}]"), item)?;
            if mounts.iter().any(|m| m.target == mount.target) {
                return Err(Error::invalid(
                    format!("volumes[{i}].target"),
                    format!("{:?} is the target of an earlier mount", mount.target),
                ));
            }
            mounts.push(mount);
        }
        Ok(mounts)
    }

    fn parse(field: &str, raw: &Value) -> Result<Mount, Error> {
        let Value::Object(fields) = raw else {
            return Err(Error::invalid(
                field,
                format!(
                    "must be an object {{\"source\", \"target\", \"read_only\"}}, not {}",
                    json_type(raw)
                ),
            ));
        };
        if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(Error::invalid(
                format!("{field}.{unknown}"),
                format!("unknown field; the fields are {}", FIELDS.join(", ")),
            ));
        }
        let string = |key: &str| match fields.get(key) {
            Some(Value::String(text)) => Ok(text.clone()),
            None | Some(Value::Null) => {
                Err(Error::invalid(format!("{field}.{key}"), "is required"))
            }
            Some(other) => Err(Error::invalid(
                format!("{field}.{key}"),
                format!("must be a string, not {}", json_type(other)),
            )),
        };
        let source = string("source")?;
        let target = string("target")?;
        let read_only = match fields.get("read_only") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(other) => {
                return Err(Error::invalid(
                    format!("{field}.read_only"),
                    format!("must be true or false, not {}", json_type(other)),
                ))
            }
        };
        check_container_path(&format!("{field}.target"), &target)?;
        let kind = if source.starts_with('/') {
            check_host_path(&format!("{field}.source"), &source)?;
            MountKind::Bind
        } else if VOLUME_NAME.is_match(&source) {
            MountKind::Volume
        } else {
            return Err(Error::invalid(
                format!("{field}.source"),
                format!(
                    "{source:?} is neither a volume name ([A-Za-z0-9][A-Za-z0-9_.-]*) nor an \
                     absolute host path"
                ),
            ));
        };
        Ok(Mount {
            kind,
            source,
            target,
            read_only,
        })
    }

    /// The value of `--mount`, which docker reads as comma-separated
    /// `key=value` pairs: the checks above keep `,`, `=` and quotes out of
    /// the paths, so nothing here can add an option.
    pub(crate) fn mount_arg(&self) -> String {
        let kind = match self.kind {
            MountKind::Volume => "volume",
            MountKind::Bind => "bind",
        };
        let mut arg = format!("type={kind},source={},target={}", self.source, self.target);
        if self.read_only {
            arg.push_str(",readonly");
        }
        arg
    }
}

/// A path inside the container: absolute, plain, and not `/` itself.
fn check_container_path(field: &str, path: &str) -> Result<(), Error> {
    check_plain_path(field, path)?;
    if path == "/" {
        return Err(Error::invalid(field, "cannot be / itself"));
    }
    Ok(())
}

/// A host path as given: absolute and plain. Whether it is allowed depends
/// on [`BindPolicy`], which resolves it.
fn check_host_path(field: &str, path: &str) -> Result<(), Error> {
    check_plain_path(field, path)
}

/// Absolute, without `.` or `..` components, and without the characters
/// `--mount`'s comma-separated syntax or a terminal would read.
fn check_plain_path(field: &str, path: &str) -> Result<(), Error> {
    if !path.starts_with('/') {
        return Err(Error::invalid(
            field,
            format!("{path:?} must be an absolute path"),
        ));
    }
    if path.len() > LONGEST_PATH {
        return Err(Error::invalid(field, "is too long"));
    }
    if let Some(bad) = path
        .chars()
        .find(|c| c.is_control() || matches!(c, ',' | '"' | '\'' | '='))
    {
        return Err(Error::invalid(
            field,
            format!("{path:?} contains {bad:?}, which a mount path cannot hold here"),
        ));
    }
    let plain = Path::new(path)
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !plain || path.contains("/./") || path.ends_with("/.") {
        return Err(Error::invalid(
            field,
            format!("{path:?} must not contain . or .. components"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(raw: Value) -> String {
        match Mount::parse_list(&raw) {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("{raw} gave {other:?}"),
        }
    }

    #[test]
    fn reads_named_volumes_and_host_paths() {
        let mounts = Mount::parse_list(&json!([
            {"source": "data", "target": "/data"},
            {"source": "/srv/site", "target": "/usr/share/site", "read_only": true}
        ]))
        .unwrap();
        assert_eq!(mounts[0].kind, MountKind::Volume);
        assert_eq!(
            mounts[0].mount_arg(),
            "type=volume,source=data,target=/data"
        );
        assert_eq!(mounts[1].kind, MountKind::Bind);
        assert_eq!(
            mounts[1].mount_arg(),
            "type=bind,source=/srv/site,target=/usr/share/site,readonly"
        );
    }

    #[test]
    fn names_the_offending_key() {
        for (raw, field) in [
            (json!({}), "volumes"),
            (json!(["data:/data"]), "volumes[0]"),
            (json!([{"target": "/d"}]), "volumes[0].source"),
            (json!([{"source": "d"}]), "volumes[0].target"),
            (json!([{"source": "d", "target": "d"}]), "volumes[0].target"),
            (json!([{"source": "d", "target": "/"}]), "volumes[0].target"),
            (
                json!([{"source": "d", "target": "/a/../etc"}]),
                "volumes[0].target",
            ),
            (
                json!([{"source": "d", "target": "/a,readonly=false"}]),
                "volumes[0].target",
            ),
            (
                json!([{"source": "d", "target": "/a\nb"}]),
                "volumes[0].target",
            ),
            (
                json!([{"source": "-v", "target": "/a"}]),
                "volumes[0].source",
            ),
            (
                json!([{"source": "d,type=bind", "target": "/a"}]),
                "volumes[0].source",
            ),
            (
                json!([{"source": "../etc", "target": "/a"}]),
                "volumes[0].source",
            ),
            (
                json!([{"source": "/srv/../etc", "target": "/a"}]),
                "volumes[0].source",
            ),
            (
                json!([{"source": "/srv/./x", "target": "/a"}]),
                "volumes[0].source",
            ),
            (
                json!([{"source": "d", "target": "/a", "read_only": "no"}]),
                "volumes[0].read_only",
            ),
            (
                json!([{"source": "d", "target": "/a", "type": "tmpfs"}]),
                "volumes[0].type",
            ),
            (
                json!([{"source": "d", "target": "/a"}, {"source": "e", "target": "/a"}]),
                "volumes[1].target",
            ),
        ] {
            assert_eq!(field_of(raw.clone()), field, "{raw}");
        }
    }

    #[test]
    fn host_paths_only_under_allowed_directories_once_resolved() {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("allowed");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(allowed.join("site")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, allowed.join("escape")).unwrap();
        let policy = BindPolicy::new(std::slice::from_ref(&allowed)).unwrap();
        let path = |p: &Path| p.to_str().unwrap().to_owned();
        assert!(policy.check("v", &path(&allowed.join("site"))).is_ok());
        for refused in [
            path(&outside),
            path(&allowed.join("escape")),
            path(&allowed.join("missing")),
            "/".to_owned(),
        ] {
            assert!(policy.check("v", &refused).is_err(), "{refused}");
        }
        assert!(BindPolicy::default().check("v", &path(&allowed)).is_err());
        assert!(BindPolicy::new(&[PathBuf::from("relative")]).is_err());
        assert!(BindPolicy::new(&[root.path().join("missing")]).is_err());
    }
}
