//! The store on disk: a snapshot of every service, and a journal of JSON
//! lines, one per write, holding only the services that write changed.
//!
//! A write appends its line and syncs the journal before it is visible or
//! acknowledged, so its cost depends on the size of what it changed, never
//! on how many services there are. Once the journal outgrows the snapshot
//! (and [`Compaction::after_bytes`]), a compaction folds it in: the map as
//! of record `n` is written as a new snapshot (temporary file, sync, rename,
//! directory sync) while writers go on appending, then the journal is
//! replaced by the records after `n`. Each record is numbered and the
//! snapshot says which record it includes, so a crash at any point leaves
//! files that read back to the last acknowledged write.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::files::{self, Paths, WriteFailure};
use super::format::{self, Record, Snapshot};
use super::service::Services;

/// When the journal is folded into the snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Compaction {
    /// Not before the journal holds this many bytes (and more than the
    /// snapshot), so a small store is not rewritten every few writes.
    pub after_bytes: u64,
}

/// How long after a failed compaction the next is tried: the disk that
/// refused it (full, read-only) rarely recovers within a write.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// The files, and what the writer knows of them.
pub struct Disk {
    pub paths: Paths,
    compaction: Compaction,
    /// Open for appending; `None` if it could not be opened, retried at the
    /// next write.
    journal: Option<File>,
    /// The length of the journal's whole records: a failed append is cut
    /// back to it.
    journal_len: u64,
    /// A failed append left bytes it could not cut back; they must go
    /// before anything is appended after them.
    torn: bool,
    /// The newest record's number.
    pub seq: u64,
    snapshot_len: u64,
    /// The journal length a running compaction's snapshot covers.
    compacting: Option<u64>,
    failed_at: Option<Instant>,
}

/// What the files held at start.
pub struct Loaded {
    pub snapshot: Snapshot,
    /// Records applied over the snapshot.
    pub replayed: usize,
    /// Bytes after the last whole record: a write cut short by a crash,
    /// never acknowledged.
    pub torn_bytes: usize,
}

impl Disk {
    /// Reads the snapshot and replays the journal over it.
    ///
    /// # Errors
    /// A message naming the file (and the journal's line) that cannot be
    /// read or does not hold valid definitions.
    pub fn load(paths: Paths, compaction: Compaction) -> Result<(Disk, Loaded), String> {
        let (mut snapshot, snapshot_len) = match fs::read(&paths.snapshot) {
            Ok(bytes) => {
                let snapshot = format::parse_snapshot(&bytes)
                    .map_err(|e| format!("data file {}: {e}", paths.snapshot.display()))?;
                restrict(&paths.snapshot);
                (snapshot, bytes.len() as u64)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&paths.dir)
                    .map_err(|e| format!("cannot create directory {}: {e}", paths.dir.display()))?;
                let empty = Snapshot {
                    revision: 0,
                    journal_seq: 0,
                    services: Services::new(),
                };
                (empty, 0)
            }
            Err(e) => {
                return Err(format!(
                    "cannot read data file {}: {e}",
                    paths.snapshot.display()
                ))
            }
        };
        let journal = match fs::read(&paths.journal) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", paths.journal.display())),
        };
        let (replayed, whole) = replay(&mut snapshot, &journal)
            .map_err(|e| format!("journal {}: {e}", paths.journal.display()))?;
        let seq = snapshot.journal_seq;
        let mut disk = Disk {
            journal: None,
            journal_len: whole as u64,
            torn: whole < journal.len(),
            seq,
            snapshot_len,
            compacting: None,
            failed_at: None,
            compaction,
            paths,
        };
        if let Err(e) = disk.open_journal() {
            log::warn!(
                "cannot open the journal {}: {e}; writes will fail until it can be",
                disk.paths.journal.display()
            );
        }
        let loaded = Loaded {
            snapshot,
            replayed,
            torn_bytes: journal.len() - whole,
        };
        Ok((disk, loaded))
    }

    fn open_journal(&mut self) -> io::Result<&mut File> {
        if self.journal.is_none() {
            let existed = self.paths.journal.exists();
            let file = files::open_append(&self.paths.journal)?;
            if !existed {
                // The new entry must be durable before a record in it is.
                self.paths.sync_dir()?;
            }
            self.journal = Some(file);
        }
        Ok(self.journal.as_mut().expect("opened above"))
    }

    /// Appends `line` (a rendered record numbered `self.seq + 1`) and syncs
    /// it. On failure the journal is cut back to its whole records, and the
    /// record is not counted.
    ///
    /// # Errors
    /// The I/O error; the journal then holds what it held before.
    pub fn append(&mut self, line: &[u8]) -> io::Result<()> {
        let appended = self.try_append(line);
        if appended.is_err() {
            // Opened afresh for the next write, in case this handle is
            // what failed.
            self.journal = None;
        }
        appended
    }

    fn try_append(&mut self, line: &[u8]) -> io::Result<()> {
        let len = self.journal_len;
        if self.torn {
            let journal = self.open_journal()?;
            journal.set_len(len)?;
            journal.sync_data()?;
            self.torn = false;
        }
        let journal = self.open_journal()?;
        let appended = journal.write_all(line).and_then(|()| journal.sync_data());
        if let Err(e) = appended {
            // Bytes of a failed write must not stay in front of the next.
            if journal
                .set_len(len)
                .and_then(|()| journal.sync_data())
                .is_err()
            {
                self.torn = true;
            }
            return Err(e);
        }
        self.journal_len += line.len() as u64;
        self.seq += 1;
        Ok(())
    }

    /// Whether the journal has grown enough to fold into the snapshot, and
    /// no compaction runs or failed lately. If so, the caller must run
    /// [`Disk::write_snapshot`] then [`Disk::finish_compaction`].
    pub fn start_compaction(&mut self) -> Option<CompactionJob> {
        let big = self.journal_len > self.compaction.after_bytes.max(self.snapshot_len);
        let resting = self.failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER);
        if !big || resting || self.compacting.is_some() {
            return None;
        }
        Some(self.begin())
    }

    /// Whether a compaction runs.
    pub fn compacting(&self) -> bool {
        self.compacting.is_some()
    }

    /// Starts a compaction whatever the journal's size (at start, or to
    /// drop values from the files at once).
    pub fn begin(&mut self) -> CompactionJob {
        self.compacting = Some(self.journal_len);
        CompactionJob {
            paths: self.paths.clone(),
            seq: self.seq,
        }
    }

    /// Ends a compaction whose snapshot was written (`Ok` with its length)
    /// or not: the journal is replaced by the records the snapshot does not
    /// hold.
    ///
    /// # Errors
    /// The error of the snapshot or of the journal's replacement. Either
    /// way the files still read back to every acknowledged write.
    pub fn finish_compaction(&mut self, snapshot: Result<u64, String>) -> Result<(), String> {
        let covered = self.compacting.take().unwrap_or(0);
        let finished = snapshot.and_then(|len| {
            self.snapshot_len = len;
            self.replace_journal(covered)
                .map_err(|e| format!("{}: {}", self.paths.journal.display(), describe_failure(&e)))
        });
        match &finished {
            Ok(()) => self.failed_at = None,
            Err(_) => self.failed_at = Some(Instant::now()),
        }
        finished
    }

    /// Replaces the journal by its records after byte `covered`.
    fn replace_journal(&mut self, covered: u64) -> Result<(), WriteFailure> {
        let mut later = Vec::new();
        if self.journal_len > covered {
            let mut reader = File::open(&self.paths.journal).map_err(WriteFailure::NotWritten)?;
            reader
                .seek(SeekFrom::Start(covered))
                .and_then(|_| {
                    reader
                        .take(self.journal_len - covered)
                        .read_to_end(&mut later)
                })
                .map_err(WriteFailure::NotWritten)?;
        }
        let replaced = self.paths.replace(&self.paths.journal.clone(), &later);
        if !matches!(replaced, Err(WriteFailure::NotWritten(_))) {
            // The path now names the new file: append to that one.
            self.journal = None;
            self.journal_len = later.len() as u64;
            self.torn = false;
            if let Err(e) = self.open_journal() {
                log::warn!("cannot reopen the journal: {e}; retried at the next write");
            }
        }
        replaced
    }
}

/// A compaction's slow half, run without the writer's lock: the snapshot.
pub struct CompactionJob {
    paths: Paths,
    /// The record the snapshot includes.
    pub seq: u64,
}

impl CompactionJob {
    /// Writes the map as it stood after record `self.seq`; its length.
    ///
    /// # Errors
    /// A message naming the snapshot and what failed.
    pub fn write_snapshot(&self, revision: u64, services: &Services) -> Result<u64, String> {
        let bytes = format::render_snapshot(revision, self.seq, services);
        self.paths
            .replace(&self.paths.snapshot, &bytes)
            .map(|()| bytes.len() as u64)
            .map_err(|e| {
                format!(
                    "{}: {}",
                    self.paths.snapshot.display(),
                    describe_failure(&e)
                )
            })
    }
}

fn describe_failure(failure: &WriteFailure) -> String {
    match failure {
        WriteFailure::NotWritten(e) => e.to_string(),
        WriteFailure::NotSynced(e) => format!("written, but its directory not synced: {e}"),
    }
}

/// Applies the journal's records after the snapshot's to it. Returns how
/// many applied, and the length of the whole lines.
fn replay(snapshot: &mut Snapshot, journal: &[u8]) -> Result<(usize, usize), String> {
    let whole = journal
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |last| last + 1);
    let mut replayed = 0;
    for (index, line) in journal[..whole].split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let record = format::parse_record(line).map_err(|e| format!("line {}: {e}", index + 1))?;
        if record.seq <= snapshot.journal_seq {
            // Folded into the snapshot by a compaction that a crash
            // stopped before it replaced the journal.
            continue;
        }
        if record.seq != snapshot.journal_seq + 1 {
            return Err(format!(
                "line {}: record {} follows record {}; the journal and the data file do not \
                 belong together (was one restored without the other?)",
                index + 1,
                record.seq,
                snapshot.journal_seq
            ));
        }
        apply(snapshot, record);
        replayed += 1;
    }
    Ok((replayed, whole))
}

fn apply(snapshot: &mut Snapshot, record: Record) {
    snapshot.journal_seq = record.seq;
    snapshot.revision = snapshot.revision.max(record.revision);
    for (name, stored) in record.services {
        match stored {
            Some(stored) => snapshot.services.insert(name, stored.into()),
            None => snapshot.services.remove(&name),
        };
    }
}

/// Makes an existing snapshot owner-only; a directory that refuses is
/// only warned about, since the next compaction writes it owner-only.
fn restrict(path: &Path) {
    let restricted = File::open(path).and_then(|file| files::restrict(&file, path));
    if let Err(e) = restricted {
        log::warn!("cannot make {} owner-only: {e}", path.display());
    }
}

#[cfg(test)]
impl Disk {
    /// Swaps the journal for a read-only handle of it, on which the next
    /// append fails; the one after reopens it.
    pub fn break_for_test(&mut self) {
        let read_only = File::open(&self.paths.journal).unwrap();
        self.journal = Some(read_only);
    }
}
