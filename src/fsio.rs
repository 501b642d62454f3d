//! Writing files whole, for every file keyfence writes (the vault and its key, the user's
//! start-up files and agent settings that `fix` and `setup` edit, the canary registry): private
//! directories, the vault's writer lock, and the atomic replace (temp file beside the target,
//! fsync, rename, fsync of the directory), so that a crash leaves the old file or the new one,
//! never half of either.
//!
//! Temp files are named from the process id and random bytes (and, beside a user's file, its
//! name), never from what they hold.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Prefix of temp files in the vault directory; anything with it is left over from a writer
/// that died, once the lock is held.
pub const TEMP_PREFIX: &str = ".tmp.";

/// Creates `dir` (and missing parents, with default permissions) and makes `dir` itself 0700.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::metadata(dir)?;
            if !meta.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a directory",
                ));
            }
            if meta.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// An exclusive lock on `path` (created 0600 if missing), held until the guard is dropped or
/// the process dies — `flock(2)` locks go away with the process, so a killed writer never
/// leaves the vault locked.
pub fn lock(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    f.lock()?;
    Ok(f)
}

/// Writes `bytes` over `path` atomically: into a temp file beside it (`.NAME.keyfence-tmp.*`,
/// 0600 while written), given `mode` and, with `owner`, that uid and gid (root editing a
/// user's file leaves it the user's), flushed, renamed over `path`, and the directory flushed.
/// `check` runs last before the rename: a caller that must not overwrite a file changed
/// meanwhile says so there, and nothing is replaced.
pub fn replace_with<E: From<io::Error>>(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
    check: impl FnOnce() -> Result<(), E>,
) -> Result<(), E> {
    use std::os::unix::fs::MetadataExt;
    let dir = parent(path);
    let mut r = [0u8; 6];
    getrandom::fill(&mut r).map_err(io::Error::other)?;
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.keyfence-tmp.{}.{hex}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        if let Some((uid, gid)) = owner {
            let meta = f.metadata()?;
            if meta.uid() != uid || meta.gid() != gid {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
            }
        }
        f.set_permissions(fs::Permissions::from_mode(mode & 0o7777))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        check()?;
        fs::rename(&tmp, path)?;
        // The rename is done; a directory that cannot be flushed loses nothing already written.
        let _ = sync_dir(dir);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn temp_name(dir: &Path) -> io::Result<PathBuf> {
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).map_err(io::Error::other)?;
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    Ok(dir.join(format!("{TEMP_PREFIX}{}.{hex}", std::process::id())))
}

/// Writes `bytes` to a new 0600 temp file in `dir` and flushes it to disk.
fn write_temp(dir: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let tmp = temp_name(dir)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let r = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = r {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Creates `path` with `bytes`, 0600, only if it does not exist yet (`AlreadyExists` otherwise):
/// written in full to a temp file first and linked into place, so nobody ever sees a partial
/// file.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent(path);
    let tmp = write_temp(dir, bytes)?;
    // link(2) fails with EEXIST instead of replacing: the no-clobber rename.
    let r = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    r?;
    sync_dir(dir)
}

/// Replaces `path` with `bytes` atomically. The file being replaced, if any, is kept as
/// `backup` (a second link to it, so no copy can be half-written). At every instant `path` is
/// either the old file or the new one.
pub fn replace(path: &Path, backup: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent(path);
    let tmp = write_temp(dir, bytes)?;
    let r = (|| {
        if path.exists() {
            keep_backup(path, backup)?;
        }
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// Points `backup` at the current contents of `path`: link under a temp name, rename over.
fn keep_backup(path: &Path, backup: &Path) -> io::Result<()> {
    let dir = parent(backup);
    let tmp = temp_name(dir)?;
    if fs::hard_link(path, &tmp).is_err() {
        // A file system without hard links: copy, flush, then rename.
        fs::copy(path, &tmp)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
        File::open(&tmp)?.sync_all()?;
    }
    fs::rename(&tmp, backup).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Creates the first free `PATH.keyfence-bak`, `PATH.keyfence-bak.1`, ... with `bytes`, mode
/// 0600 since it may hold a key: never over an older backup, and two writers racing each get
/// their own (`O_EXCL`). The error names the backup it could not write.
pub fn create_backup(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let base = format!("{}.keyfence-bak", path.display());
    for n in 0u32..10_000 {
        let candidate = if n == 0 {
            PathBuf::from(&base)
        } else {
            PathBuf::from(format!("{base}.{n}"))
        };
        let named = |what: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("{what} {}: {e}", candidate.display()))
        };
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&candidate)
        {
            Ok(mut f) => {
                if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
                    let _ = fs::remove_file(&candidate);
                    return Err(named("cannot write the backup", e));
                }
                return Ok(candidate);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(named("cannot create the backup", e)),
        }
    }
    Err(io::Error::other("too many backups already exist"))
}

/// Removes temp files left in `dir` by writers that died. Call only while holding the lock.
pub fn remove_stale_temps(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let _ = fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn replace_keeps_the_previous_file_as_backup() {
        let d = tempfile::tempdir().unwrap();
        let (v, b) = (d.path().join("vault"), d.path().join("vault.bak"));
        replace(&v, &b, b"one").unwrap();
        assert!(!b.exists());
        replace(&v, &b, b"two").unwrap();
        replace(&v, &b, b"three").unwrap();
        assert_eq!(fs::read(&v).unwrap(), b"three");
        assert_eq!(fs::read(&b).unwrap(), b"two");
        assert_eq!((mode(&v), mode(&b)), (0o600, 0o600));
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(TEMP_PREFIX))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn write_new_never_clobbers() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("key");
        write_new(&p, b"first").unwrap();
        let e = write_new(&p, b"second").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"first");
        assert_eq!(mode(&p), 0o600);
    }

    #[test]
    fn private_dir_tightens_modes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/keyfence");
        private_dir(&p).unwrap();
        assert_eq!(mode(&p), 0o700);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&p).unwrap();
        assert_eq!(mode(&p), 0o700);
    }
}
