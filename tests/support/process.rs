//! Processes as `/proc` shows them, and scripts that stand in for the
//! docker CLI (or wrap the real one), for tests that watch or fake what the
//! connector runs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One process as `/proc` shows it, for tests that look for what the
/// connector (or a docker wrapper) started.
pub struct Process {
    pub pid: u32,
    /// The state letter: R, S, D, Z (finished, not yet collected), ...
    state: String,
    pub parent: u32,
    pub group: u32,
    /// The arguments, each ended by a NUL.
    pub cmdline: Vec<u8>,
    pub environ: Vec<u8>,
}

impl Process {
    /// `pid`, if it still exists.
    pub fn read(pid: u32) -> Option<Process> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // After the command name in parentheses: state, parent, group.
        let (_, rest) = stat.rsplit_once(')')?;
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.to_owned();
        let parent = fields.next()?.parse().ok()?;
        let group = fields.next()?.parse().ok()?;
        Some(Process {
            pid,
            state,
            parent,
            group,
            cmdline: std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default(),
            environ: std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default(),
        })
    }

    /// Every process of the machine.
    pub fn all() -> Vec<Process> {
        std::fs::read_dir("/proc")
            .unwrap()
            .map_while(Result::ok)
            .filter_map(|entry| entry.file_name().to_string_lossy().parse().ok())
            .filter_map(Process::read)
            .collect()
    }

    /// Whether it runs: a zombie has finished, only its parent has not yet
    /// collected it.
    pub fn is_running(&self) -> bool {
        !matches!(self.state.as_str(), "Z" | "X")
    }

    pub fn has_arg(&self, arg: &str) -> bool {
        self.cmdline.split(|b| *b == 0).any(|a| a == arg.as_bytes())
    }

    /// `pid (command line)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} ({})",
            self.pid,
            String::from_utf8_lossy(&self.cmdline)
                .replace('\0', " ")
                .trim()
        )
    }
}

/// Sends `signal` (`TERM`, `KILL`, ...) to process `pid`; panics if it
/// could not be sent.
pub fn send_signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} {pid} failed");
}

/// The path of the real docker CLI, for scripts that wrap it.
pub fn real_docker() -> String {
    let out = Command::new("sh")
        .args(["-c", "command -v docker"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Writes an executable script standing in for the docker CLI.
pub fn write_fake_docker(dir: &Path, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-docker");
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}
