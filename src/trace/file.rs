//! The `--trace=FILE` file: opened by keyfence before it restricts itself (the sandbox may
//! leave the file's directory read-only to keyfence too: `--trace=$HOME/trace.jsonl` under the
//! install profile), and only if it is the user's own regular file.
//!
//! What an earlier traced tree, or another user sharing the directory, can leave at FILE is
//! refused rather than written through: a symbolic link (keyfence would write, and first
//! truncate, wherever it points, as the user), a FIFO or device (a FIFO would hang the
//! start), a file owned by someone else (root filling a user's file, or a file another user
//! placed for keyfence to fill and read). An existing file of the user's is emptied as a
//! shell's `>` does — a trace describes one run — and loses any access by group and others:
//! it names every program the tree ran and every credential file it touched.
//!
//! Nothing is checked by path and then opened: the owner and type are read from the open
//! descriptor (`fstat`), and the file is truncated only after they pass, so a refused file is
//! left as it was.
//!
//! Not covered: a link among the directories on the way is followed, as every tool follows
//! one (the user chose the path); and a process that opened a world-readable FILE before
//! keyfence tightened it keeps its descriptor (what it can read is masked).

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TraceFileError {
    #[error(
        "{0} is a symbolic link; keyfence does not follow a link to write the trace\nhint: \
         give the path of the file itself, or remove the link"
    )]
    Symlink(PathBuf),
    #[error(
        "{0} is not a regular file\nhint: give the path of a file (keyfence creates it, mode \
         0600)"
    )]
    NotRegular(PathBuf),
    #[error(
        "{path} belongs to another user (uid {owner}); keyfence writes a trace only to a file \
         of its own user\nhint: choose another path, or remove that file first"
    )]
    OtherOwner { path: PathBuf, owner: u32 },
    #[error("cannot open {path} for the trace: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The open trace file, and where it is (to tell at the end whether it is still there).
#[derive(Debug)]
pub struct TraceFile {
    pub file: File,
    pub path: PathBuf,
}

/// Opens (creating it, mode 0600) or takes over the user's file at `path` for the trace.
pub fn open(path: &Path) -> Result<TraceFile, TraceFileError> {
    let io = |source| TraceFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    // O_NOFOLLOW refuses a link at the last component (also one pointing at nothing, which
    // O_CREAT would otherwise create); O_NONBLOCK keeps a FIFO with no reader from hanging
    // the open (it fails with ENXIO instead, and one with a reader is refused below). No
    // O_TRUNC: a file that is refused must be left as it was.
    // Readable too: the end of the run reads it back to tell whether anything else wrote to it.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            match e.raw_os_error() {
                Some(nix::libc::ELOOP) if link => TraceFileError::Symlink(path.to_path_buf()),
                Some(nix::libc::ENXIO) => TraceFileError::NotRegular(path.to_path_buf()),
                _ => io(e),
            }
        })?;
    let meta = f.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(TraceFileError::NotRegular(path.to_path_buf()));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(TraceFileError::OtherOwner {
            path: path.to_path_buf(),
            owner: meta.uid(),
        });
    }
    // Before anything is written: a reader that opens it later gets nothing.
    if meta.permissions().mode() & 0o077 != 0 {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    f.set_len(0).map_err(io)?;
    Ok(TraceFile {
        file: f,
        path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_new_file_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        open(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn empties_and_tightens_an_existing_file_of_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        std::fs::write(&p, "old\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        open(&p).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.mode() & 0o777, m.len()), (0o600, 0));
    }

    #[test]
    fn refuses_a_link_a_fifo_and_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(open(&link), Err(TraceFileError::Symlink(_))));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(open(&fifo), Err(TraceFileError::NotRegular(_))));
        let e = open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("cannot open") && e.contains("directory"), "{e}");
    }
}
