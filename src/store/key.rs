//! The data key: 32 random bytes kept in a key file, or derived with Argon2id from a passphrase.
//! Key material stays in zeroizing buffers; a passphrase is read from the file named by
//! `KEYFENCE_PASSPHRASE_FILE` or asked for on the terminal (`/dev/tty`, no echo), never from argv
//! or an environment variable's value.

use super::format::{Argon2Params, SALT_LEN};
use crate::fsio;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::io;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

pub const KEY_LEN: usize = 32;
pub type DataKey = Zeroizing<[u8; KEY_LEN]>;

/// Names a file holding the passphrase, for scripts and tests.
pub const PASSPHRASE_FILE_ENV: &str = "KEYFENCE_PASSPHRASE_FILE";

/// Argon2id parameters for new vaults: RFC 9106's second recommended option (64 MiB, 3 passes),
/// with one lane since the `argon2` crate computes lanes one after the other without its
/// `parallel` feature. Each stored vault carries its own parameters, so these can grow later.
pub const M_COST: u32 = 64 * 1024;
pub const T_COST: u32 = 3;
pub const P_COST: u32 = 1;

/// Why a key could not be had.
#[derive(Debug)]
pub enum KeyError {
    Missing,
    Malformed(&'static str),
    Io(io::Error),
}

/// A fresh random data key.
pub fn random() -> io::Result<DataKey> {
    let mut k = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(k.as_mut_slice()).map_err(io::Error::other)?;
    Ok(k)
}

/// Reads a key file: comment lines starting with `#`, then the key in base64 on one line.
pub fn read_key_file(path: &Path) -> Result<DataKey, KeyError> {
    let text = match std::fs::read(path) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(KeyError::Missing),
        Err(e) => return Err(KeyError::Io(e)),
    };
    let line = text
        .split(|&b| b == b'\n')
        .map(|l| l.trim_ascii())
        .find(|l| !l.is_empty() && !l.starts_with(b"#"))
        .ok_or(KeyError::Malformed("it holds no key"))?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    // One spare byte: a longer key decodes past KEY_LEN and is refused below.
    let mut buf = Zeroizing::new([0u8; KEY_LEN + 3]);
    let n = B64
        .decode_slice(line, buf.as_mut_slice())
        .map_err(|_| KeyError::Malformed("the key is not valid base64"))?;
    if n != KEY_LEN {
        return Err(KeyError::Malformed("the key is not 32 bytes long"));
    }
    key.copy_from_slice(&buf[..KEY_LEN]);
    Ok(key)
}

/// Creates the key file for `vault` with a new random key, unless one already exists (then
/// that key is returned): a key file is never overwritten, since a vault may still need it.
pub fn create_key_file(path: &Path, vault: &Path) -> Result<DataKey, KeyError> {
    if let Some(dir) = path.parent() {
        fsio::private_dir(dir).map_err(KeyError::Io)?;
    }
    let key = random().map_err(KeyError::Io)?;
    let mut text = Zeroizing::new(format!(
        "# keyfence data key for {}\n\
         # Keep this file off backups and dotfile repositories that hold the vault: anyone with\n\
         # both files can read every secret. Without it the vault cannot be decrypted.\n",
        vault.display()
    ));
    text.push_str(&Zeroizing::new(B64.encode(key.as_slice())));
    text.push('\n');
    match fsio::write_new(path, text.as_bytes()) {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_key_file(path),
        Err(e) => Err(KeyError::Io(e)),
    }
}

/// Derives the data key from a passphrase.
pub fn derive(passphrase: &[u8], p: &Argon2Params) -> Result<DataKey, argon2::Error> {
    let params = argon2::Params::new(p.m_cost, p.t_cost, p.p_cost, Some(KEY_LEN))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    a.hash_password_into(passphrase, &p.salt, key.as_mut_slice())?;
    Ok(key)
}

/// Parameters for a new passphrase vault, with a fresh salt.
pub fn new_params() -> io::Result<Argon2Params> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(io::Error::other)?;
    Ok(Argon2Params {
        // Unit tests of the library use the minimum cost; the binary always uses the real one.
        m_cost: if cfg!(test) { 64 } else { M_COST },
        t_cost: if cfg!(test) { 1 } else { T_COST },
        p_cost: P_COST,
        salt,
    })
}

/// Where a passphrase comes from.
pub trait PassphraseSource {
    /// The passphrase for `vault`. `new`: the vault is being created, so ask twice.
    fn passphrase(&self, vault: &Path, new: bool) -> Result<Zeroizing<Vec<u8>>, PassphraseError>;
}

#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    #[error(
        "cannot ask for the passphrase of {vault}: no terminal\n\
         hint: put the passphrase in a file readable only by you and set {PASSPHRASE_FILE_ENV} to its path"
    )]
    NoTerminal { vault: PathBuf },
    #[error("reading the passphrase from {path} ({PASSPHRASE_FILE_ENV}): {source}")]
    File { path: PathBuf, source: io::Error },
    #[error("reading the passphrase: {0}")]
    Prompt(io::Error),
    #[error("the passphrase is empty")]
    Empty,
    #[error("the two passphrases differ")]
    Mismatch,
}

/// `KEYFENCE_PASSPHRASE_FILE` if set, else a no-echo prompt on `/dev/tty`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Interactive;

impl PassphraseSource for Interactive {
    fn passphrase(&self, vault: &Path, new: bool) -> Result<Zeroizing<Vec<u8>>, PassphraseError> {
        let p = match std::env::var_os(PASSPHRASE_FILE_ENV).filter(|v| !v.is_empty()) {
            Some(file) => read_passphrase_file(Path::new(&file))?,
            None => {
                // rpassword reads from and prompts on /dev/tty; without a controlling terminal
                // that open fails, and the user needs to hear about the file instead.
                if std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/tty")
                    .is_err()
                {
                    return Err(PassphraseError::NoTerminal {
                        vault: vault.to_path_buf(),
                    });
                }
                let ask = |prompt: String| {
                    rpassword::prompt_password(prompt)
                        .map(|s| Zeroizing::new(s.into_bytes()))
                        .map_err(PassphraseError::Prompt)
                };
                if new {
                    let a = ask("new passphrase for the keyfence vault: ".into())?;
                    let b = ask("the same passphrase again: ".into())?;
                    if a != b {
                        return Err(PassphraseError::Mismatch);
                    }
                    a
                } else {
                    ask(format!("passphrase for {}: ", vault.display()))?
                }
            }
        };
        if p.is_empty() {
            return Err(PassphraseError::Empty);
        }
        Ok(p)
    }
}

/// The file's contents without one trailing newline.
fn read_passphrase_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, PassphraseError> {
    let mut p = Zeroizing::new(std::fs::read(path).map_err(|source| PassphraseError::File {
        path: path.to_path_buf(),
        source,
    })?);
    strip_newline(&mut p);
    Ok(p)
}

/// Removes one trailing `\n` or `\r\n`, as `read -r` and `$(cat file)` users expect.
pub fn strip_newline(v: &mut Vec<u8>) {
    if v.last() == Some(&b'\n') {
        v.pop();
        if v.last() == Some(&b'\r') {
            v.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_and_is_never_overwritten() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("state/keyfence/vault.key");
        let vault = d.path().join("vault");
        let k1 = create_key_file(&path, &vault).unwrap();
        assert_eq!(*read_key_file(&path).unwrap(), *k1);
        let k2 = create_key_file(&path, &vault).unwrap();
        assert_eq!(*k2, *k1);
    }

    #[test]
    fn malformed_key_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("k");
        assert!(matches!(read_key_file(&path), Err(KeyError::Missing)));
        for text in ["", "# only a comment\n", "not base64!\n", "AAAA\n"] {
            std::fs::write(&path, text).unwrap();
            assert!(
                matches!(read_key_file(&path), Err(KeyError::Malformed(_))),
                "{text:?}"
            );
        }
        std::fs::write(&path, format!("{}\n", B64.encode([1u8; 33]))).unwrap();
        assert!(matches!(read_key_file(&path), Err(KeyError::Malformed(_))));
    }

    #[test]
    fn strips_one_newline() {
        for (input, want) in [
            (&b"pw\n"[..], &b"pw"[..]),
            (b"pw\r\n", b"pw"),
            (b"pw\n\n", b"pw\n"),
            (b"pw", b"pw"),
            (b"", b""),
        ] {
            let mut v = input.to_vec();
            strip_newline(&mut v);
            assert_eq!(v, want);
        }
    }

    #[test]
    fn derivation_depends_on_passphrase_and_salt() {
        let mut p = Argon2Params {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
            salt: [1; SALT_LEN],
        };
        let a = derive(b"one", &p).unwrap();
        assert_eq!(*a, *derive(b"one", &p).unwrap());
        assert_ne!(*a, *derive(b"two", &p).unwrap());
        p.salt = [2; SALT_LEN];
        assert_ne!(*a, *derive(b"one", &p).unwrap());
    }
}
