//! The secret pseudonymization key: where it comes from, how it is checked, and the only
//! thing about it that may ever be written down (its key id).
//!
//! Pseudonyms are keyed so that nobody without the key can recompute them from a guessed
//! email or customer id (a plain hash of an email is trivially reversible by dictionary).
//! The key therefore never appears in a flag, the policy text, a log line, an error, the
//! manifest or a panic message: [`Key`] has a redacting `Debug`, is zeroized on drop, and
//! the manifest records only [`Key::id`], a one-way fingerprint.

use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::{Zeroize, Zeroizing};

/// Name of the environment variable that holds the key as 64 hex characters.
pub const KEY_ENV: &str = "ANONYMIZER_KEY";

/// Where a key was loaded from (recorded in the manifest; never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    Env,
    File(PathBuf),
    Provided,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env => write!(f, "environment variable {KEY_ENV}"),
            KeySource::File(p) => write!(f, "key file {}", p.display()),
            KeySource::Provided => write!(f, "a key provided by the caller"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no pseudonymization key: set {KEY_ENV} to 64 hex characters (32 bytes) or name a `key_file` in the policy\n  \
         (generate one with: openssl rand -hex 32)"
    )]
    Missing,
    #[error(
        "the key from {from} is not valid: {problem}\n  \
         a key is exactly 64 hex characters (32 random bytes); generate one with: openssl rand -hex 32"
    )]
    Malformed { from: KeySource, problem: String },
    #[error(
        "cannot read key file {path}: {err}\n  check that the file exists and is readable by this user"
    )]
    Unreadable { path: PathBuf, err: std::io::Error },
    #[error(
        "key file {path} can be {what} by users other than its owner (mode {mode:o})\n  \
         restrict it with: chmod 600 {path}"
    )]
    Permissions {
        path: PathBuf,
        mode: u32,
        /// "read", "written" or "read and written".
        what: &'static str,
    },
    #[error(
        "key file {path} is not a file but {what}\n  \
         name the file holding the key's 64 hex characters in `key_file`"
    )]
    NotAFile {
        path: PathBuf,
        /// "a folder", "a device", "a named pipe", "a socket".
        what: &'static str,
    },
}

/// The most bytes a key file may hold: the key's 64 hex characters with white space
/// (a line end, a trailing blank line) around them.
pub const KEY_FILE_MAX_BYTES: usize = 1024;

/// What a path that is not a regular file is, for an error.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    if meta.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_fifo() {
            return "a named pipe";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "another kind of file, not a regular one"
}

/// A 32-byte secret key. Zeroized on drop; `Debug` prints only the key id.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key {
    bytes: [u8; 32],
}

impl Drop for Key {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.id())
    }
}

impl Key {
    /// Builds a key from raw bytes. Weak keys (every byte the same) are refused.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Key, String> {
        if bytes.iter().all(|b| *b == bytes[0]) {
            return Err("every byte of the key is the same; use random bytes".into());
        }
        Ok(Key { bytes })
    }

    /// Parses 64 hex characters (surrounding whitespace ignored). The error text never
    /// contains the input.
    pub fn from_hex(text: &str, source: KeySource) -> Result<Key, KeyError> {
        let text = text.trim();
        let malformed = |problem: String| KeyError::Malformed {
            from: source.clone(),
            problem,
        };
        if text.is_empty() {
            return Err(malformed("it is empty".into()));
        }
        if text.len() != 64 {
            return Err(malformed(format!(
                "it has {} characters, expected 64",
                text.chars().count()
            )));
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text, bytes.as_mut())
            .map_err(|_| malformed("it contains characters that are not hex digits".into()))?;
        Key::from_bytes(*bytes).map_err(malformed)
    }

    /// A fresh random key (for the demo).
    pub fn random() -> Key {
        loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(k) = Key::from_bytes(bytes) {
                return k;
            }
        }
    }

    /// The key as 64 lowercase hex characters, for writing a key file. Handle with care.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.bytes))
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// A public fingerprint of the key: `kid-` and 16 hex characters of a BLAKE3 key
    /// derivation. It identifies which key produced a run's tokens without revealing it.
    pub fn id(&self) -> String {
        let derived = blake3::derive_key("anonymizer 2026-11 key id", &self.bytes);
        format!("kid-{}", hex::encode(&derived[..8]))
    }

    /// Loads the key: a `key_file` named in the policy wins; otherwise `ANONYMIZER_KEY`.
    pub fn load(key_file: Option<&Path>) -> Result<(Key, KeySource), KeyError> {
        if let Some(path) = key_file {
            let key = Key::from_file(path)?;
            if let Some(env) = std::env::var_os(KEY_ENV) {
                // Said without the variable's value; whether it holds the same key is
                // said by key ids, never by the key.
                let env = Zeroizing::new(env.to_string_lossy().into_owned());
                let same = Key::from_hex(&env, KeySource::Env).is_ok_and(|k| k == key);
                if !same {
                    tracing::warn!(
                        key_file = %path.display(),
                        "{KEY_ENV} is set too, to another key or none: the policy's key_file wins"
                    );
                }
            }
            return Ok((key, KeySource::File(path.to_path_buf())));
        }
        match std::env::var(KEY_ENV) {
            Ok(v) => {
                let v = Zeroizing::new(v);
                Ok((Key::from_hex(&v, KeySource::Env)?, KeySource::Env))
            }
            Err(std::env::VarError::NotPresent) => Err(KeyError::Missing),
            Err(std::env::VarError::NotUnicode(_)) => Err(KeyError::Malformed {
                from: KeySource::Env,
                problem: "it is not valid UTF-8".into(),
            }),
        }
    }

    /// Reads a key file holding 64 hex characters. On Unix the file must not be readable
    /// or writable by group or others.
    pub fn from_file(path: &Path) -> Result<Key, KeyError> {
        let unreadable = |err| KeyError::Unreadable {
            path: path.to_path_buf(),
            err,
        };
        let meta = std::fs::metadata(path).map_err(unreadable)?;
        if !meta.is_file() {
            return Err(KeyError::NotAFile {
                path: path.to_path_buf(),
                what: kind_of(&meta),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                let (read, write) = (mode & 0o044 != 0, mode & 0o022 != 0);
                return Err(KeyError::Permissions {
                    path: path.to_path_buf(),
                    mode,
                    what: match (read, write) {
                        (true, true) => "read and written",
                        (false, true) => "written",
                        _ => "read",
                    },
                });
            }
        }
        // At most a little more than a key with its line end: a large file named by
        // mistake (an export, a disk image) is refused without being read whole. The
        // capacity is the most `take` lets through, so `read_to_end` never reallocates
        // and leaves no unzeroized copy of the key behind.
        let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_FILE_MAX_BYTES + 1));
        {
            use std::io::Read;
            std::fs::File::open(path)
                .and_then(|f| {
                    f.take(KEY_FILE_MAX_BYTES as u64 + 1)
                        .read_to_end(&mut bytes)
                })
                .map_err(unreadable)?;
        }
        if bytes.len() > KEY_FILE_MAX_BYTES {
            return Err(KeyError::Malformed {
                from: KeySource::File(path.to_path_buf()),
                problem: format!(
                    "the file holds {} bytes, more than a key file's {KEY_FILE_MAX_BYTES} at most: is it the right file?",
                    // (the file may have grown since its size was read)
                    meta.len().max(bytes.len() as u64)
                ),
            });
        }
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return Err(KeyError::Malformed {
                from: KeySource::File(path.to_path_buf()),
                problem: format!(
                    "the file holds {} bytes that are not text; write the key as 64 hex characters (e.g. openssl rand -hex 32 > {})",
                    bytes.len(),
                    path.display()
                ),
            });
        };
        Key::from_hex(text, KeySource::File(path.to_path_buf()))
    }

    /// Writes the key as hex to `path` with mode 0600 (creating or truncating it).
    pub fn write_file(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(self.to_hex().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn parses_hex_and_never_echoes_it() {
        let k = Key::from_hex(HEX, KeySource::Provided).unwrap();
        assert!(!format!("{k:?}").contains("0102"));
        assert!(k.id().starts_with("kid-") && k.id().len() == 20);
        let short = &HEX[..40];
        let err = Key::from_hex(short, KeySource::Env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("40 characters"), "{err}");
        assert!(!err.contains(short));
        let bad = HEX.replace('a', "z");
        let err = Key::from_hex(&bad, KeySource::Env).unwrap_err().to_string();
        assert!(!err.contains(&bad));
        assert!(Key::from_hex(&"ab".repeat(32), KeySource::Env).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_that_is_not_a_private_text_file_is_refused_clearly() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let hex = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";
        std::fs::write(&p, format!("{hex}\r\n")).unwrap();
        let set = |mode| std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode));
        set(0o600).unwrap();
        assert!(Key::from_file(&p).is_ok());
        for (mode, what) in [
            (0o620, "can be written by"),
            (0o640, "can be read by"),
            (0o666, "can be read and written by"),
        ] {
            set(mode).unwrap();
            let e = Key::from_file(&p).unwrap_err().to_string();
            assert!(e.contains(what), "{mode:o}: {e}");
        }
        set(0o600).unwrap();
        std::fs::write(&p, [0x9fu8; 32]).unwrap();
        let e = Key::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("32 bytes that are not text"), "{e}");
        let e = Key::from_file(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is not a file but a folder"), "{e}");
        // A device (`key_file = "/dev/zero"`) is named as one, never read.
        let e = Key::from_file(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a file but a device"), "{e}");
        // A big file named by mistake: refused by its size, its text not shown. The key
        // with white space around it (up to the limit) still reads.
        std::fs::write(
            &p,
            format!("\n{hex}\n{}", " ".repeat(KEY_FILE_MAX_BYTES - 66)),
        )
        .unwrap();
        assert!(Key::from_file(&p).is_ok());
        std::fs::write(&p, hex.repeat(1000)).unwrap();
        let e = Key::from_file(&p).unwrap_err().to_string();
        assert!(
            e.contains("the file holds 64000 bytes, more than a key file's 1024 at most")
                && !e.contains(hex),
            "{e}"
        );
    }

    #[test]
    fn dropping_a_key_zeroizes_its_bytes() {
        let mut k = std::mem::ManuallyDrop::new(Key::from_hex(HEX, KeySource::Provided).unwrap());
        // SAFETY: the key is dropped once and its (inline, plain) bytes are only read
        // back, not used as a key.
        unsafe { std::mem::ManuallyDrop::drop(&mut k) };
        assert_eq!(k.bytes, [0u8; 32]);
    }

    #[test]
    fn key_id_differs_per_key() {
        let a = Key::from_hex(HEX, KeySource::Provided).unwrap();
        let b = Key::random();
        assert_ne!(a.id(), b.id());
    }
}
