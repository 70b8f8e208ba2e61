//! What /proc says: the host the figures were taken on, and the
//! connector's resident memory after the load.

use crate::test_docker::docker;

/// The heading of the output: CPU, memory, kernel and docker versions, so
/// that a table is never read without knowing what it ran on.
pub fn describe_machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim());
    let cpus = cpuinfo
        .lines()
        .filter(|line| line.starts_with("processor"))
        .count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = kib_field(&meminfo, "MemTotal:").map_or(f64::NAN, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let docker_versions = docker(&[
        "version",
        "--format",
        "client {{.Client.Version}}, server {{.Server.Version}} (API {{.Server.APIVersion}})",
    ]);
    format!(
        "## docker-connector performance\n\n\
         machine: {cpu_model}, {cpus} CPUs, {memory_gib:.1} GiB memory, kernel {}\n\
         docker: {}",
        kernel.trim(),
        docker_versions.trim()
    )
}

/// A `Name:   1234 kB` field of a /proc file, in KiB.
fn kib_field(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The connector's resident set, now and at its peak, in MiB.
pub struct Memory {
    pub rss_mib: f64,
    pub peak_mib: f64,
}

/// Panics if the process has gone: the memory row would have no figure.
pub fn read_memory(pid: u32) -> Memory {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let mib = |field: &str| {
        kib_field(&status, field).unwrap_or_else(|| panic!("no {field} in {path}")) / 1024.0
    };
    Memory {
        rss_mib: mib("VmRSS:"),
        peak_mib: mib("VmHWM:"),
    }
}
