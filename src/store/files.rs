//! The store's files on disk, and the few ways it touches them: where they
//! are (beside the data file's real target, when it is a symlink), creating
//! a file owner-only and never through a symlink, replacing a file
//! atomically, and syncing the directory that holds them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Only the owner may read or write the files: environment values are
/// often secrets.
const OWNER_ONLY: u32 = 0o600;

/// Where the store's files live.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The snapshot: the data file as configured, or the file its symlink
    /// points at.
    pub snapshot: PathBuf,
    /// The journal of changes since the snapshot, beside it.
    pub journal: PathBuf,
    /// The directory holding both, synced after each rename.
    pub dir: PathBuf,
    /// Locked by the connector using the files, so a second one pointed at
    /// them refuses to start rather than lose writes: each would replace
    /// the files the other appends to.
    pub lock: PathBuf,
}

impl Paths {
    /// The files for the configured `data_file`. A data file that is a
    /// symlink is resolved, and the store writes beside its target: replacing
    /// the symlink by a regular file would silently stop updating the file
    /// it points at.
    ///
    /// # Errors
    /// A message naming the file, for a symlink that leads nowhere or a data
    /// file (or journal) that is not a regular file.
    pub fn resolve(data_file: &Path) -> Result<(Paths, Option<PathBuf>), String> {
        let (snapshot, resolved_from) = match fs::symlink_metadata(data_file) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::canonicalize(data_file).map_err(|e| {
                    format!(
                        "data file {} is a symlink whose target cannot be reached: {e}; point it \
                         at an existing file, or replace it by the file",
                        data_file.display()
                    )
                })?;
                (target, Some(data_file.to_path_buf()))
            }
            _ => (data_file.to_path_buf(), None),
        };
        let dir = match snapshot.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let beside = |suffix: &str| {
            let mut path = snapshot.clone().into_os_string();
            path.push(suffix);
            PathBuf::from(path)
        };
        let paths = Paths {
            journal: beside(".journal"),
            lock: beside(".lock"),
            snapshot,
            dir,
        };
        for path in [&paths.snapshot, &paths.journal] {
            match fs::symlink_metadata(path) {
                Ok(meta) if !meta.file_type().is_file() => {
                    return Err(format!(
                        "{} is not a regular file ({}); the store writes only regular files",
                        path.display(),
                        describe(&meta)
                    ))
                }
                _ => {}
            }
        }
        Ok((paths, resolved_from))
    }

    /// The temporary file that replaces `target`.
    fn temporary(&self, target: &Path) -> PathBuf {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.dir.join(format!(".{name}.tmp"))
    }

    /// Syncs the directory, which makes a created or renamed entry durable.
    pub fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    /// Replaces `target` (the snapshot or the journal) with `bytes` so that
    /// a crash at any moment leaves the old or the new content, never a mix:
    /// written to a temporary file, synced, renamed over `target`, and the
    /// directory synced.
    pub fn replace(&self, target: &Path, bytes: &[u8]) -> Result<(), WriteFailure> {
        let temporary = self.temporary(target);
        let written = (|| {
            let mut file = create_exclusive(&temporary)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&temporary, target)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temporary);
            return Err(WriteFailure::NotWritten(e));
        }
        self.sync_dir().map_err(WriteFailure::NotSynced)
    }
}

/// How a replacement fell short.
#[derive(Debug)]
pub enum WriteFailure {
    /// The old file is untouched.
    NotWritten(io::Error),
    /// The new file is in place, but its directory entry was not synced.
    NotSynced(io::Error),
}

/// Creates `path` afresh for writing, owner-only. Whatever was left there (a
/// stale temporary file with a looser mode, a symlink planted to redirect
/// the write) is unlinked first, never written through: `O_EXCL` with
/// `O_NOFOLLOW` refuses both, so the file written is always the new one.
fn create_exclusive(path: &Path) -> io::Result<File> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(OWNER_ONLY)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Unlinking a symlink removes the link, not its target.
            fs::remove_file(path)?;
            open()
        }
        other => other,
    }
}

/// Opens the journal at `path` for appending, creating it owner-only if
/// there is none; never through a symlink. A journal readable by others
/// (restored from a backup, say) is made owner-only, with a warning.
pub fn open_append(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(OWNER_ONLY)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    restrict(&file, path)?;
    Ok(file)
}

/// Makes `file` owner-only if it is not, saying so.
pub fn restrict(file: &File, path: &Path) -> io::Result<()> {
    let mode = file.metadata()?.mode() & 0o777;
    if mode & !OWNER_ONLY != 0 {
        log::warn!(
            "{} had mode {mode:o}; made it {OWNER_ONLY:o}, since it holds environment values",
            path.display()
        );
        file.set_permissions(fs::Permissions::from_mode(OWNER_ONLY))?;
    }
    Ok(())
}

/// Holds the lock on the store's files while it lives.
#[derive(Debug)]
pub struct FilesLock(#[allow(dead_code)] File);

/// Takes the lock on the files, without waiting.
///
/// # Errors
/// A message naming the lock file when another process holds it or it
/// cannot be opened.
pub fn lock(paths: &Paths) -> Result<FilesLock, String> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(OWNER_ONLY)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&paths.lock)
        .map_err(|e| format!("cannot open the lock file {}: {e}", paths.lock.display()))?;
    // SAFETY: flock only reads the descriptor, which `file` keeps open.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        return Err(format!(
            "{} is locked: another connector uses the data file {}; stop it, or give this one \
             another data_file",
            paths.lock.display(),
            paths.snapshot.display()
        ));
    }
    Ok(FilesLock(file))
}

fn describe(meta: &fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_symlink() {
        "a symlink"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_planted_symlink_or_stale_file_is_replaced_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, _) = Paths::resolve(&dir.path().join("services.json")).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::write(&elsewhere, "untouched").unwrap();
        let temporary = paths.temporary(&paths.snapshot);
        symlink(&elsewhere, &temporary).unwrap();
        paths.replace(&paths.snapshot, b"{}").unwrap();
        assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "untouched");
        let meta = fs::symlink_metadata(&paths.snapshot).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.mode() & 0o777, OWNER_ONLY);

        fs::write(&temporary, "stale").unwrap();
        fs::set_permissions(&temporary, fs::Permissions::from_mode(0o644)).unwrap();
        paths.replace(&paths.snapshot, b"{\"a\": 1}").unwrap();
        let meta = fs::metadata(&paths.snapshot).unwrap();
        assert_eq!(meta.mode() & 0o777, OWNER_ONLY);
        assert!(!temporary.exists());
    }

    #[test]
    fn a_symlinked_data_file_resolves_to_its_target() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("real")).unwrap();
        let target = dir.path().join("real/data.json");
        fs::write(&target, "{}").unwrap();
        let link = dir.path().join("services.json");
        symlink(&target, &link).unwrap();
        let (paths, from) = Paths::resolve(&link).unwrap();
        assert_eq!(paths.snapshot, fs::canonicalize(&target).unwrap());
        assert_eq!(paths.journal.file_name().unwrap(), "data.json.journal");
        assert_eq!(from.as_deref(), Some(link.as_path()));

        let dangling = dir.path().join("dangling.json");
        symlink(dir.path().join("nowhere"), &dangling).unwrap();
        let message = Paths::resolve(&dangling).unwrap_err();
        assert!(message.contains("dangling.json"), "{message}");
    }

    #[test]
    fn a_second_user_of_the_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, _) = Paths::resolve(&dir.path().join("services.json")).unwrap();
        let held = lock(&paths).unwrap();
        let message = lock(&paths).unwrap_err();
        assert!(message.contains("another connector"), "{message}");
        drop(held);
        lock(&paths).unwrap();
    }

    #[test]
    fn a_journal_that_is_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("services.json");
        symlink(
            dir.path().join("x"),
            dir.path().join("services.json.journal"),
        )
        .unwrap();
        let message = Paths::resolve(&data).unwrap_err();
        assert!(message.contains("not a regular file"), "{message}");
    }
}
