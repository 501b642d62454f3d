//! The vault file format, version 1. All integers little-endian.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "KEYFENCE"
//! 8       1     format version (1)
//! 9       1     key mode: 1 = random data key in a key file, 2 = Argon2id from a passphrase
//! 10      2     length P of the key parameters that follow
//! 12      P     key parameters
//!                 mode 1: check[16]
//!                 mode 2: m_cost u32 (KiB), t_cost u32, p_cost u32, salt[16], check[16]
//! 12+P    24    XChaCha20-Poly1305 nonce, fresh from the OS for every write
//! 36+P    ...   ciphertext of the JSON payload, then the 16-byte Poly1305 tag
//! ```
//!
//! The whole header (bytes `0..36+P`) is the AEAD's associated data, so changing any of it — the
//! mode, the KDF parameters, the nonce — makes decryption fail like changing the ciphertext.
//!
//! `check` is the first 16 bytes of SHA-256 over a domain label and the data key. It only lets
//! keyfence tell "wrong key or passphrase" from "the file was damaged"; it gives a passphrase
//! guesser nothing the AEAD tag does not already give (each guess still costs one Argon2id).

use super::key::{DataKey, KEY_LEN};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub const MAGIC: &[u8; 8] = b"KEYFENCE";
pub const VERSION: u8 = 1;
const MODE_KEY_FILE: u8 = 1;
const MODE_ARGON2ID: u8 = 2;
const FIXED: usize = 12;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const CHECK_LEN: usize = 16;
pub const SALT_LEN: usize = 16;

/// Upper bounds on Argon2id parameters read from a file: a modified header must not be able to
/// make keyfence allocate gigabytes or spin for minutes before the AEAD can reject it.
const MAX_M_COST: u32 = 4 * 1024 * 1024; // 4 GiB
const MAX_T_COST: u32 = 64;
const MAX_P_COST: u32 = 64;

/// How the data key is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMode {
    /// 32 random bytes in the key file.
    KeyFile,
    /// Argon2id over a passphrase.
    Argon2id(Argon2Params),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argon2Params {
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    pub salt: [u8; SALT_LEN],
}

/// A parsed header.
#[derive(Debug, Clone)]
pub struct Header {
    pub mode: KeyMode,
    pub check: [u8; CHECK_LEN],
    /// Length of the header in the file: the associated data.
    len: usize,
}

/// Why a file could not be read as a vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// Damaged: short, bad magic, impossible fields, or the AEAD rejected it.
    Corrupt(&'static str),
    /// A format version this build does not know.
    NewerVersion(u8),
    /// The key does not match the header's check value.
    WrongKey,
}

/// Reads and checks the header; does not need the key.
pub fn parse_header(file: &[u8]) -> Result<Header, FormatError> {
    if file.len() < FIXED {
        return Err(FormatError::Corrupt("the file is too short"));
    }
    if &file[..8] != MAGIC {
        return Err(FormatError::Corrupt(
            "it does not start with the vault magic",
        ));
    }
    if file[8] != VERSION {
        return Err(FormatError::NewerVersion(file[8]));
    }
    let plen = usize::from(u16::from_le_bytes([file[10], file[11]]));
    let len = FIXED + plen + NONCE_LEN;
    if file.len() < len + TAG_LEN {
        return Err(FormatError::Corrupt("the file is truncated"));
    }
    let p = &file[FIXED..FIXED + plen];
    let (mode, check) = match (file[9], plen) {
        (MODE_KEY_FILE, CHECK_LEN) => (KeyMode::KeyFile, p),
        (MODE_ARGON2ID, n) if n == 12 + SALT_LEN + CHECK_LEN => {
            let u = |i: usize| u32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
            let params = Argon2Params {
                m_cost: u(0),
                t_cost: u(4),
                p_cost: u(8),
                salt: p[12..12 + SALT_LEN]
                    .try_into()
                    .map_err(|_| FormatError::Corrupt("bad salt"))?,
            };
            if params.m_cost > MAX_M_COST
                || params.t_cost > MAX_T_COST
                || params.p_cost > MAX_P_COST
            {
                return Err(FormatError::Corrupt("its key parameters are out of range"));
            }
            (KeyMode::Argon2id(params), &p[12 + SALT_LEN..])
        }
        _ => return Err(FormatError::Corrupt("its key mode is unknown")),
    };
    Ok(Header {
        mode,
        check: check
            .try_into()
            .map_err(|_| FormatError::Corrupt("bad key check"))?,
        len,
    })
}

/// The check value stored in the header for `key`.
pub fn key_check(key: &DataKey) -> [u8; CHECK_LEN] {
    let mut h = Sha256::new();
    h.update(b"keyfence vault key check v1\0");
    h.update(key.as_slice());
    let d = h.finalize();
    let mut out = [0u8; CHECK_LEN];
    out.copy_from_slice(&d[..CHECK_LEN]);
    out
}

/// Decrypts the payload of `file`, whose header is `header`.
pub fn open(
    file: &[u8],
    header: &Header,
    key: &DataKey,
) -> Result<Zeroizing<Vec<u8>>, FormatError> {
    if key_check(key) != header.check {
        return Err(FormatError::WrongKey);
    }
    let aad = &file[..header.len];
    let nonce = XNonce::try_from(&file[header.len - NONCE_LEN..header.len])
        .map_err(|_| FormatError::Corrupt("bad nonce"))?;
    let cipher = XChaCha20Poly1305::new_from_slice(key.as_slice())
        .map_err(|_| FormatError::Corrupt("bad key length"))?;
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &file[header.len..],
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| FormatError::Corrupt("authentication failed"))
}

/// Encrypts `plaintext` into a complete vault file, with a fresh nonce.
pub fn seal(mode: &KeyMode, key: &DataKey, plaintext: &[u8]) -> std::io::Result<Vec<u8>> {
    let check = key_check(key);
    let mut params = Vec::with_capacity(12 + SALT_LEN + CHECK_LEN);
    let mode_byte = match mode {
        KeyMode::KeyFile => MODE_KEY_FILE,
        KeyMode::Argon2id(a) => {
            params.extend_from_slice(&a.m_cost.to_le_bytes());
            params.extend_from_slice(&a.t_cost.to_le_bytes());
            params.extend_from_slice(&a.p_cost.to_le_bytes());
            params.extend_from_slice(&a.salt);
            MODE_ARGON2ID
        }
    };
    params.extend_from_slice(&check);
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(std::io::Error::other)?;

    let mut out = Vec::with_capacity(FIXED + params.len() + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(mode_byte);
    // At most 44 bytes of parameters: always fits.
    out.extend_from_slice(&(params.len() as u16).to_le_bytes());
    out.extend_from_slice(&params);
    out.extend_from_slice(&nonce);
    let cipher =
        XChaCha20Poly1305::new_from_slice(key.as_slice()).map_err(std::io::Error::other)?;
    let ct = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &out,
            },
        )
        // Only a payload past ChaCha20's 256 GiB limit fails.
        .map_err(|_| std::io::Error::other("the vault payload is too large to encrypt"))?;
    out.extend_from_slice(&ct);
    Ok(out)
}

const _: () = assert!(KEY_LEN == 32);

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> DataKey {
        Zeroizing::new([b; KEY_LEN])
    }

    fn argon() -> KeyMode {
        KeyMode::Argon2id(Argon2Params {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
            salt: [7; SALT_LEN],
        })
    }

    #[test]
    fn round_trips_in_both_modes() {
        for mode in [KeyMode::KeyFile, argon()] {
            let file = seal(&mode, &key(1), b"{\"entries\":[]}").unwrap();
            let h = parse_header(&file).unwrap();
            assert_eq!(h.mode, mode);
            assert_eq!(&open(&file, &h, &key(1)).unwrap()[..], b"{\"entries\":[]}");
            assert_eq!(open(&file, &h, &key(2)).unwrap_err(), FormatError::WrongKey);
        }
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let file = seal(&argon(), &key(3), b"payload").unwrap();
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x40;
            let r = parse_header(&bad).and_then(|h| open(&bad, &h, &key(3)));
            assert!(r.is_err(), "flipping byte {i} went unnoticed");
        }
    }

    #[test]
    fn every_truncation_is_rejected() {
        let file = seal(&KeyMode::KeyFile, &key(4), b"payload").unwrap();
        for n in 0..file.len() {
            let r = parse_header(&file[..n]).and_then(|h| open(&file[..n], &h, &key(4)));
            assert!(r.is_err(), "truncation to {n} bytes went unnoticed");
        }
    }

    #[test]
    fn nonces_differ_between_writes() {
        let a = seal(&KeyMode::KeyFile, &key(5), b"same").unwrap();
        let b = seal(&KeyMode::KeyFile, &key(5), b"same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn unknown_version_is_reported_as_newer() {
        let mut file = seal(&KeyMode::KeyFile, &key(6), b"x").unwrap();
        file[8] = 9;
        assert_eq!(
            parse_header(&file).unwrap_err(),
            FormatError::NewerVersion(9)
        );
    }
}
