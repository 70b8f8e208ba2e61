//! Figures the tests measure, kept for the summary `scripts/test` prints.

use std::path::Path;

/// Records figures for the summary `scripts/test` prints after the run:
/// one file per area under `target/test-figures`, overwritten by each run of
/// that test, as `label: value` lines.
pub fn record_figures(area: &str, figures: &[(&str, String)]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-figures");
    std::fs::create_dir_all(&dir).unwrap();
    let text: String = figures
        .iter()
        .map(|(label, value)| format!("{area}: {label}: {value}\n"))
        .collect();
    std::fs::write(dir.join(format!("{area}.txt")), text).unwrap();
}
