//! Writing an edit: refused when the file changed since it was read, a backup first (mode 0600,
//! never over an older one), then the atomic replace of `crate::fsio` with the file's mode and
//! owner.

use super::{FileScan, FixError, io_err};
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Writes the edit: checks that the file still holds what was read, keeps the old bytes as
/// `PATH.keyfence-bak` (or `.keyfence-bak.N`; never overwriting one, mode 0600 since it holds the
/// key), writes the new bytes to a temp file beside the real file with its mode and owner,
/// checks the file once more, and renames the temp file over it. Returns the backup's path.
pub fn write(file: &FileScan, new: &[u8]) -> Result<PathBuf, FixError> {
    let real = &file.real;
    unchanged(file)?;
    let meta = fs::metadata(real).map_err(io_err("read", real))?;
    // Beside the path as found: for a symlink into a dotfiles repository, the backup (which
    // holds the key) stays out of the repository.
    let backup = create_backup(&file.path, &file.original)?;
    let written = crate::fsio::replace_with(
        real,
        new,
        meta.permissions().mode(),
        Some((meta.uid(), meta.gid())),
        || unchanged(file).map_err(WriteError::Changed),
    );
    if let Err(e) = written {
        let _ = fs::remove_file(&backup);
        return Err(match e {
            WriteError::Changed(e) => e,
            WriteError::Io(e) => io_err("replace", real)(e),
        });
    }
    Ok(backup)
}

/// What stopped `fsio::replace_with` in `write`: the file changed under us, or the write.
enum WriteError {
    Changed(FixError),
    Io(io::Error),
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Io(e)
    }
}

/// Refuses when the file no longer holds the bytes it was read with.
fn unchanged(file: &FileScan) -> Result<(), FixError> {
    let now = Zeroizing::new(fs::read(&file.real).map_err(io_err("read", &file.real))?);
    if now.as_slice() != file.original.as_slice() {
        return Err(FixError::Changed {
            shown: file.shown.clone(),
        });
    }
    Ok(())
}

/// `fsio::create_backup`, as a fix error.
fn create_backup(path: &Path, bytes: &[u8]) -> Result<PathBuf, FixError> {
    crate::fsio::create_backup(path, bytes).map_err(io_err("back up", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::plan_edit;
    use crate::fix::testing::{KEY, shell_file};
    use crate::syntax::shell::Dialect;

    #[test]
    fn a_file_changed_after_reading_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".bashrc");
        let text = format!("export ANTHROPIC_API_KEY={KEY}\n");
        fs::write(&path, &text).unwrap();
        let mut f = shell_file(&text, Dialect::Posix);
        f.path = path.clone();
        f.real = path.clone();
        let e = plan_edit(&f, &[0], &|_| String::new()).unwrap();
        // Someone appends a line between the scan and the write.
        fs::write(&path, format!("{text}alias x=y\n")).unwrap();
        let err = write(&f, &e.new).unwrap_err();
        assert!(matches!(err, FixError::Changed { .. }), "{err}");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{text}alias x=y\n")
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no backup or temp file left"
        );
    }

    #[test]
    fn write_keeps_mode_and_numbers_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".zshrc");
        let text = format!("export ANTHROPIC_API_KEY={KEY}\nx\n");
        fs::write(&path, &text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(dir.path().join(".zshrc.keyfence-bak"), "older").unwrap();
        let mut f = shell_file(&text, Dialect::Posix);
        f.path = path.clone();
        f.real = path.clone();
        let e = plan_edit(&f, &[0], &|_| String::new()).unwrap();
        let backup = write(&f, &e.new).unwrap();
        assert_eq!(backup, dir.path().join(".zshrc.keyfence-bak.1"));
        assert_eq!(fs::read_to_string(&backup).unwrap(), text);
        assert_eq!(
            fs::read_to_string(dir.path().join(".zshrc.keyfence-bak")).unwrap(),
            "older"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "x\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let bmode = fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
        assert_eq!(bmode, 0o600);
    }
}
