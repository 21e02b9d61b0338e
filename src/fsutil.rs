//! Small file-system helpers shared by input discovery, publishing and queries, so that
//! every listing is sorted (nothing may depend on the order a file system lists in) and
//! names are read one way; and the spill folders of the aggregates and the gate, locked
//! while they live so that a killed run's can be told apart and removed.

use std::io;
use std::path::{Path, PathBuf};

/// The entries of `dir` that `keep` accepts, sorted by path.
pub fn sorted_children(dir: &Path, keep: impl Fn(&Path) -> bool) -> io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| keep(p))
        .collect();
    out.sort();
    Ok(out)
}

/// The last component of `p` as text (lossy), or "" for none.
pub fn name_of(p: &Path) -> String {
    p.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Whether a name marks a file that tools leave alone (`.staging-*`, `_SUCCESS`, ...).
pub fn is_hidden(p: &Path) -> bool {
    let n = name_of(p);
    n.starts_with('.') || n.starts_with('_')
}

/// The name prefix of the aggregates' spill folders.
pub const AGGREGATE_SPILL: &str = ".aggregate-spill-";
/// The name prefix of the gate's spill folders.
pub const VERIFY_SPILL: &str = ".verify-spill-";
/// The name prefixes of every spill folder, which the cleanup looks for.
pub const SPILL_PREFIXES: [&str; 2] = [AGGREGATE_SPILL, VERIFY_SPILL];

/// The lock file inside a spill folder.
const SPILL_LOCK: &str = ".lock";

/// A spill folder (`PREFIX` + random letters) in a folder that several runs may share
/// (`--spill-dir`, the system's temporary folder): removed when dropped, and holding a
/// lock file (flock) for as long as it lives. The OS releases the lock when the process
/// exits or is killed, so a later run can tell a killed run's folder (lock free) from a
/// live run's (held) and remove only the first ([`remove_abandoned_spills`]).
pub struct SpillFolder {
    // Fields drop in order: the folder (and the lock file in it) first, then the lock.
    dir: tempfile::TempDir,
    _lock: std::fs::File,
}

impl SpillFolder {
    /// Makes a spill folder in `under` and takes its lock.
    pub fn new(under: &Path, prefix: &str) -> io::Result<SpillFolder> {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(under)?;
        // Locked under another name, then renamed: another run never finds the lock file
        // free between its creation and its lock (it would take this folder for a killed
        // run's).
        let locking = dir.path().join(".locking");
        let lock = std::fs::File::create(&locking)?;
        // On a file system without locks the spill still works; its folder then never
        // looks free to another run either (taking the lock fails there too), so a
        // killed run's stays for the user to delete.
        if let Err(e) = lock.try_lock() {
            tracing::debug!(path = %locking.display(), error = %e, "spill folder: cannot lock");
        }
        std::fs::rename(&locking, dir.path().join(SPILL_LOCK))?;
        Ok(SpillFolder { dir, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the spill folders of killed runs in `under`: those named with a
/// [`SPILL_PREFIXES`] prefix whose lock file exists and is not held. A folder whose lock
/// is held belongs to a live run; one without a lock file is left alone too (a run
/// between making its folder and its lock, or a folder not made by this tool). Best
/// effort: returns the folders removed.
pub fn remove_abandoned_spills(under: &Path) -> Vec<PathBuf> {
    let Ok(found) = sorted_children(under, |p| {
        let n = name_of(p);
        // A real folder, not a link to one (whose target is not ours to empty).
        SPILL_PREFIXES.iter().any(|x| n.starts_with(x))
            && std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
    }) else {
        return vec![];
    };
    let mut removed = vec![];
    for dir in found {
        let Ok(lock) = std::fs::File::open(dir.join(SPILL_LOCK)) else {
            continue;
        };
        if lock.try_lock().is_ok() && std::fs::remove_dir_all(&dir).is_ok() {
            tracing::info!(path = %dir.display(), "removed the spill folder of an interrupted run");
            removed.push(dir);
        }
    }
    removed
}

/// Opens `path` for writing (appending, or truncating), creating it readable and
/// writable by its owner only (mode 0600 on Unix): for files that hold personal data,
/// such as the erasure requests and the ledger. An existing file keeps its mode.
pub fn open_private(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_spill_folders_of_dead_runs_are_removed() {
        let under = tempfile::tempdir().unwrap();
        // A killed run's folder: its lock file is there, nobody holds it.
        let dead = under.path().join(".aggregate-spill-dead");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(SPILL_LOCK), b"").unwrap();
        std::fs::write(dead.join("part-00000"), vec![0u8; 100]).unwrap();
        // A live run's folder (this process holds its lock).
        let live = SpillFolder::new(under.path(), ".verify-spill-").unwrap();
        std::fs::write(live.path().join("bucket-00"), b"x").unwrap();
        // Folders this tool did not lock, or did not make.
        let unlocked = under.path().join(".verify-spill-nolock");
        std::fs::create_dir(&unlocked).unwrap();
        let other = under.path().join("mine");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join(SPILL_LOCK), b"").unwrap();
        // A link named like a spill folder, to a folder with a free lock file.
        let link = under.path().join(".aggregate-spill-link");
        std::os::unix::fs::symlink(&other, &link).unwrap();

        assert_eq!(remove_abandoned_spills(under.path()), vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(live.path().join("bucket-00").exists());
        assert!(unlocked.exists() && other.join(SPILL_LOCK).exists() && link.exists());
        // The live folder's lock file is in place under its final name.
        assert!(live.path().join(SPILL_LOCK).exists());
        assert!(!live.path().join(".locking").exists());

        // Dropped, the live folder goes; nothing is left for the next run to remove.
        let live_path = live.path().to_path_buf();
        drop(live);
        assert!(!live_path.exists());
        assert!(remove_abandoned_spills(under.path()).is_empty());
    }
}
