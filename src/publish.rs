//! Staging, locking, the atomic swap of `OUT/current`, and retention of old runs.
//!
//! Layout of an output folder:
//!
//! ```text
//! OUT/.lock                 held (flock) by the run in progress; released by the OS
//!                           when that process exits or is killed, so never stale
//! OUT/runs/.staging-<id>/   the run being written; invisible to readers
//! OUT/runs/<id>/            a complete run: one folder per table + _manifest.json
//! OUT/current -> runs/<id>  symlink to the latest complete run, replaced by rename(2)
//! ```
//!
//! A run writes only into its staging folder. Publishing renames the staging folder to
//! `runs/<id>` and then renames a fresh symlink over `current`; both are atomic on POSIX
//! file systems, so a reader (or a crash) sees either the old run or the new one, never a
//! half-written one. Staging folders left by killed runs are removed by the next run once
//! it holds the lock.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::fsutil::{is_hidden, name_of, sorted_children};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "output folder {path}: {what}: {err}\n  check that the folder exists and is writable by this user"
    )]
    Io {
        path: PathBuf,
        what: &'static str,
        err: std::io::Error,
    },
    #[error(
        "another run is writing to {path} ({holder}); wait for it to finish\n  \
         (the lock is held by a live process: it is released when that process exits or is killed)"
    )]
    Locked { path: PathBuf, holder: String },
    #[error(
        "{path} exists and is not a symlink; anonymizer publishes `current` as a symlink to runs/<id>.\n  \
         move it away and rerun"
    )]
    CurrentNotSymlink { path: PathBuf },
}

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> PublishError + 'a {
    move |err| PublishError::Io {
        path: path.to_path_buf(),
        what,
        err,
    }
}

/// In OUT: the removal of older runs after an erasure failed and is owed (every run
/// retries it until it succeeds).
pub const ERASED_RUNS_PENDING: &str = ".erased-runs-pending";

/// An output folder locked for one run.
#[derive(Debug)]
pub struct OutputDir {
    root: PathBuf,
    _lock: File,
}

impl OutputDir {
    /// Creates `root` (and `root/runs`) if needed and takes the run lock, or fails with
    /// [`PublishError::Locked`] if another process holds it.
    pub fn lock(root: &Path) -> Result<OutputDir, PublishError> {
        fs::create_dir_all(root).map_err(io(root, "cannot create"))?;
        let runs = root.join("runs");
        fs::create_dir_all(&runs).map_err(io(&runs, "cannot create"))?;
        let lock_path = root.join(".lock");
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io(&lock_path, "cannot open the lock file"))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&lock_path)
                    .ok()
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or_else(|| "unknown process".into());
                return Err(PublishError::Locked {
                    path: root.to_path_buf(),
                    holder: holder.trim().to_string(),
                });
            }
            Err(fs::TryLockError::Error(err)) => {
                return Err(PublishError::Io {
                    path: lock_path,
                    what: "cannot lock",
                    err,
                });
            }
        }
        f.set_len(0)
            .map_err(io(&lock_path, "cannot write the lock file"))?;
        let _ = write!(
            f,
            "pid {} since {}",
            std::process::id(),
            crate::manifest::rfc3339(chrono::Utc::now())
        );
        // Refuse before any work, not at the swap after a whole run.
        let current = root.join("current");
        if let Ok(meta) = fs::symlink_metadata(&current)
            && !meta.file_type().is_symlink()
        {
            return Err(PublishError::CurrentNotSymlink { path: current });
        }
        // Publishing makes a link in OUT and moves a folder in OUT/runs: both must be
        // writable, checked now rather than after the whole run.
        for dir in [root.to_path_buf(), root.join("runs")] {
            let probe = dir.join(format!(".write-check-{}", std::process::id()));
            fs::File::create(&probe).map_err(io(&dir, "cannot write in (publishing needs to)"))?;
            let _ = fs::remove_file(&probe);
        }
        let out = OutputDir {
            root: root.to_path_buf(),
            _lock: f,
        };
        out.remove_stale_staging()?;
        Ok(out)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// A fresh run id: the UTC start time to the millisecond, unique within this folder.
    pub fn new_run_id(&self) -> String {
        let base = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ").to_string();
        let mut id = base.clone();
        let mut n = 1;
        while self.runs_dir().join(&id).exists() || self.staging_path(&id).exists() {
            n += 1;
            id = format!("{base}-{n}");
        }
        id
    }

    fn staging_path(&self, run_id: &str) -> PathBuf {
        self.runs_dir().join(format!(".staging-{run_id}"))
    }

    /// Creates and returns the staging folder of a run.
    pub fn create_staging(&self, run_id: &str) -> Result<PathBuf, PublishError> {
        let p = self.staging_path(run_id);
        fs::create_dir_all(&p).map_err(io(&p, "cannot create the staging folder"))?;
        Ok(p)
    }

    /// Removes a staging folder after a failed run (best effort).
    pub fn discard_staging(&self, run_id: &str) {
        let _ = fs::remove_dir_all(self.staging_path(run_id));
    }

    fn remove_stale_staging(&self) -> Result<(), PublishError> {
        let runs = self.runs_dir();
        for e in fs::read_dir(&runs)
            .map_err(io(&runs, "cannot list"))?
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with(".staging-") {
                tracing::info!(path = %e.path().display(), "removing staging folder of an interrupted run");
                let _ = fs::remove_dir_all(e.path());
            }
        }
        // The new `current` link of a run killed between making it and renaming it over
        // `current` (runs hold the lock, so none is in use).
        for e in fs::read_dir(&self.root).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(".current-")
                && e.file_type().is_ok_and(|t| t.is_symlink())
            {
                tracing::info!(path = %e.path().display(), "removing the link of an interrupted run");
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(())
    }

    /// The run `current` points at, if any.
    pub fn current(&self) -> Option<PathBuf> {
        current_run(&self.root)
    }

    /// Moves a complete staging folder into `runs/<id>` and points `current` at it.
    pub fn publish(&self, run_id: &str) -> Result<PathBuf, PublishError> {
        let staging = self.staging_path(run_id);
        let final_dir = self.runs_dir().join(run_id);
        sync_dir(&staging);
        fs::rename(&staging, &final_dir)
            .map_err(io(&final_dir, "cannot move the staged run into place"))?;
        sync_dir(&self.runs_dir());

        let current = self.root.join("current");
        if let Ok(meta) = fs::symlink_metadata(&current)
            && !meta.file_type().is_symlink()
        {
            return Err(PublishError::CurrentNotSymlink { path: current });
        }
        let tmp = self.root.join(format!(".current-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        symlink(&Path::new("runs").join(run_id), &tmp)
            .map_err(io(&tmp, "cannot create a symlink"))?;
        fs::rename(&tmp, &current).map_err(io(&current, "cannot swap the current symlink"))?;
        sync_dir(&self.root);
        Ok(final_dir)
    }

    /// Deletes all but the newest `keep` complete runs; never the one `current` names.
    /// Returns the ids removed.
    pub fn prune(&self, keep: usize) -> Result<Vec<String>, PublishError> {
        let runs = self.runs_dir();
        // Only folders named as runs are: anything else a person put there (a backup,
        // notes) is neither counted nor removed.
        let ids: Vec<String> = sorted_children(&runs, |p| p.is_dir() && !is_hidden(p))
            .map_err(io(&runs, "cannot list"))?
            .iter()
            .map(|p| name_of(p))
            .filter(|n| is_run_id(n))
            .collect();
        let current = self
            .current()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        let mut removed = Vec::new();
        let mut failed = None;
        let excess = ids.len().saturating_sub(keep);
        // Every run is tried, the first failure reported after.
        for id in ids.into_iter().take(excess) {
            if Some(&id) == current.as_ref() {
                continue;
            }
            let dir = runs.join(&id);
            match fs::remove_dir_all(&dir) {
                Ok(()) => removed.push(id),
                Err(err) => {
                    failed.get_or_insert(PublishError::Io {
                        path: dir,
                        what: "cannot remove an old run",
                        err,
                    });
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }
}

/// Whether `name` is shaped like a run id of [`Output::new_run_id`]:
/// `YYYYMMDDTHHMMSSmmmZ`, maybe with `-N` after it.
pub fn is_run_id(name: &str) -> bool {
    let b = name.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() >= 19
        && digits(0..8)
        && b[8] == b'T'
        && digits(9..18)
        && b[18] == b'Z'
        && (b.len() == 19
            || (b[19] == b'-' && b.len() > 20 && b[20..].iter().all(u8::is_ascii_digit)))
}

/// The run folder `OUT/current` points at (resolved), if it exists.
pub fn current_run(root: &Path) -> Option<PathBuf> {
    let link = fs::read_link(root.join("current")).ok()?;
    let p = root.join(link);
    p.is_dir().then_some(p)
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_dir(target, link)
}

/// fsync a directory so renames inside it are durable (best effort).
fn sync_dir(p: &Path) {
    if let Ok(f) = File::open(p) {
        let _ = f.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_told_from_other_folders() {
        for id in [
            "20261203T091632579Z",
            "20261203T091632579Z-2",
            "20261203T091632579Z-17",
        ] {
            assert!(is_run_id(id), "{id}");
        }
        for not in [
            "my-backup",
            "20261203T091632579",
            "20261203T091632579Z-",
            "20261203T091632579Z-x",
            "2026120xT091632579Z",
            ".staging-20261203T091632579Z",
            "",
        ] {
            assert!(!is_run_id(not), "{not}");
        }
    }
}
