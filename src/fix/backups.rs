//! The `.keyfence-bak` files `fix` and `setup` leave whose change is checked (every key in them
//! is in the store and gone from the file), which `fix` offers to delete.

use crate::detect::{self, Mode};
use std::fs;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// A `FILE.keyfence-bak[.N]` that `fix` or `setup claude` left, whose change is checked: every
/// key in it is in the store and no longer in FILE. Then it is only a copy of those keys in
/// clear, and deleting it loses nothing the user needs.
#[derive(Debug)]
pub struct CheckedBackup {
    pub path: PathBuf,
    pub original: PathBuf,
    pub keys: usize,
}

/// The checked backups in `dirs` (audit's `backup_dirs`), given the fingerprints of the
/// store's entries. A backup whose file is gone, or that holds no key, stays: it is the user's.
pub fn checked_backups(dirs: &[PathBuf], stored: &[String]) -> Vec<CheckedBackup> {
    let detector = detect::detector();
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        let mut backups: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
            .collect();
        backups.sort();
        for path in backups {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some((stem, suffix)) = name.split_once(".keyfence-bak") else {
                continue;
            };
            if !(suffix.is_empty()
                || suffix
                    .strip_prefix('.')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
            {
                continue;
            }
            let original = dir.join(stem);
            let (Ok(text), Ok(now)) = (fs::read(&path), fs::read(&original)) else {
                continue;
            };
            let (text, now) = (Zeroizing::new(text), Zeroizing::new(now));
            let keys = detector.scan(&text, Mode::Assignment);
            let checked = !keys.is_empty()
                && keys.iter().all(|m| {
                    stored.contains(&m.value.fingerprint())
                        && memchr::memmem::find(&now, m.value.expose()).is_none()
                });
            if checked {
                out.push(CheckedBackup {
                    path,
                    original,
                    keys: keys.len(),
                });
            }
        }
    }
    out
}
