//! Small file-system helpers shared by input discovery, publishing and queries, so that
//! every listing is sorted (nothing may depend on the order a file system lists in) and
//! names are read one way.

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
