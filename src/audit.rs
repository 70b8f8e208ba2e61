//! The audit log: one JSON line for every request that changes something
//! and every refused one, so an operator can tell afterwards who changed
//! what. Only the token's name is written, never the token.
//!
//! With `audit_log` set the lines are appended to that file, opened once
//! with `O_APPEND`: each line is one `write`, so lines from concurrent
//! requests never interleave, and logrotate's `copytruncate` can rotate it
//! without a signal (the next write lands at the new end). Unset, the lines
//! go to the connector's log under the target `audit` (journald under
//! systemd).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

/// One audited request.
#[derive(Debug, Serialize)]
pub struct AuditEntry<'a> {
    pub time: String,
    /// The token's name; none without authentication.
    pub token: Option<&'a str>,
    /// The TCP peer's address.
    pub remote: Option<String>,
    pub method: &'a str,
    pub path: &'a str,
    pub service: Option<&'a str>,
    /// `done` (2xx, 3xx), `refused` (by the access check) or `failed`.
    pub outcome: &'static str,
    pub status: u16,
    /// Why the access check refused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where audit lines go.
pub struct AuditLog {
    file: Option<Mutex<File>>,
}

impl AuditLog {
    /// Opens (creating, owner-only) the file at `path`, or the log.
    ///
    /// # Errors
    /// A message naming `audit_log` when the file cannot be opened: the
    /// connector must not run without the record it was told to keep.
    pub fn open(path: Option<&Path>) -> Result<Self, String> {
        let file = path
            .map(|path| {
                OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| format!("audit_log {}: {e}", path.display()))
            })
            .transpose()?;
        Ok(AuditLog {
            file: file.map(Mutex::new),
        })
    }

    /// Writes one line. A failing write is logged, not answered: the
    /// change it records has already happened.
    pub fn record(&self, entry: &AuditEntry<'_>) {
        let Ok(mut line) = serde_json::to_string(entry) else {
            return;
        };
        match &self.file {
            None => log::info!(target: "audit", "{line}"),
            Some(file) => {
                line.push('\n');
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = file.write_all(line.as_bytes()) {
                    log::error!("cannot write the audit log: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_as_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "earlier\n").unwrap();
        let log = AuditLog::open(Some(&path)).unwrap();
        for status in [200, 403] {
            log.record(&AuditEntry {
                time: "t".into(),
                token: Some("autoscaler"),
                remote: Some("10.0.0.1".into()),
                method: "POST",
                path: "/service/a/scale",
                service: Some("a"),
                outcome: "done",
                status,
                reason: None,
            });
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "earlier");
        let second: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(second["status"], 403);
        assert_eq!(second["token"], "autoscaler");
        let mode = std::fs::metadata(&path).unwrap();
        assert!(mode.is_file());
        assert!(AuditLog::open(Some(&dir.path().join("no/such/dir"))).is_err());
    }
}
