//! `file:PATH`: a value kept in a file of its own, as container platforms and CI runners mount
//! secrets (`/run/secrets/NAME` in Docker and Compose, a Kubernetes secret volume, a systemd
//! credential in `$CREDENTIALS_DIRECTORY`). The file's whole content is the value, less the
//! line break editors and `echo` leave at its end. `~/` is the home.
//!
//! Read by keyfence before the command starts, which is why a project's keyfence.toml may not
//! name one (command/run.rs): it would choose a file for keyfence to read outside the sandbox
//! and the fence, and hand its content to the project's command.
//!
//! Errors name the file and what went wrong, never what it holds.

use crate::secret::SecretValue;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A secret is a line, not a document.
const MAX_SIZE: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(
        "file:{0}: the path must be absolute or start with ~/\nhint: a relative path would \
         depend on the directory the command is started from"
    )]
    Relative(String),
    #[error("file:{}: {source}\nhint: {hint}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("file:{}: it is empty\nhint: write the secret into it, or name another file", .0.display())]
    Empty(PathBuf),
    #[error("file:{}: it is larger than 64 KiB, which is not a secret", .0.display())]
    TooLarge(PathBuf),
    #[error(
        "file:{}: it holds a NUL byte, which no environment variable can carry",
        .0.display()
    )]
    Nul(PathBuf),
}

/// Where `file:SPEC` points, `~/` expanded with `home`.
pub fn path_of(spec: &str, home: Option<&Path>) -> Result<PathBuf, FileError> {
    match (spec.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => Ok(home.join(rest)),
        _ if Path::new(spec).is_absolute() => Ok(PathBuf::from(spec)),
        _ => Err(FileError::Relative(spec.to_string())),
    }
}

/// The value in `path`.
pub fn read(path: &Path) -> Result<SecretValue, FileError> {
    let failed = |source: std::io::Error| {
        let hint = match source.kind() {
            std::io::ErrorKind::NotFound => {
                "check the path; a container's secrets are mounted \
                                             only inside it"
            }
            std::io::ErrorKind::PermissionDenied => {
                "the file is not readable by you (under \
                                                     keyfence's guard or sandbox, nor by a \
                                                     command below it)"
            }
            _ => "a secret file is a regular file holding the value",
        };
        FileError::Read {
            path: path.to_path_buf(),
            source,
            hint,
        }
    };
    let file = std::fs::File::open(path).map_err(failed)?;
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    file.take(MAX_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.len() as u64 > MAX_SIZE {
        return Err(FileError::TooLarge(path.to_path_buf()));
    }
    let mut end = bytes.len();
    while end > 0 && matches!(bytes[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    let value = &bytes[..end];
    if value.is_empty() {
        return Err(FileError::Empty(path.to_path_buf()));
    }
    if value.contains(&0) {
        return Err(FileError::Nul(path.to_path_buf()));
    }
    Ok(SecretValue::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_is_the_content_less_its_last_line_break() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        for (content, want) in [
            (&b"abc\n"[..], Some(&b"abc"[..])),
            (b"abc\r\n", Some(b"abc")),
            (b"a b c", Some(b"a b c")),
            (b"\n\n", None),
            (b"a\0b", None),
        ] {
            std::fs::write(&p, content).unwrap();
            assert_eq!(
                read(&p).ok().as_ref().map(|v| v.expose()),
                want,
                "{content:?}"
            );
        }
        std::fs::write(&p, vec![b'x'; 70_000]).unwrap();
        assert!(matches!(read(&p), Err(FileError::TooLarge(_))));
        assert!(matches!(
            read(&dir.path().join("missing")),
            Err(FileError::Read { .. })
        ));
    }

    #[test]
    fn paths_are_absolute_or_in_the_home() {
        let home = Path::new("/home/u");
        assert_eq!(
            path_of("~/.secrets/k", Some(home)).unwrap(),
            Path::new("/home/u/.secrets/k")
        );
        assert_eq!(
            path_of("/run/secrets/k", Some(home)).unwrap(),
            Path::new("/run/secrets/k")
        );
        assert!(matches!(
            path_of("secrets/k", Some(home)),
            Err(FileError::Relative(_))
        ));
        assert!(matches!(path_of("~/k", None), Err(FileError::Relative(_))));
    }
}
