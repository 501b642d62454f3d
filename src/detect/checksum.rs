//! Offline checksums that some token formats carry.
//!
//! GitHub (github.blog 2021-04-05) and npm (github.blog 2021-09-23) tokens end in six base62
//! characters that encode the CRC32 (IEEE) of the random part before them; the prefix is not
//! included. Hand-edited "example" tokens fail this check, which filters fixtures and placeholders.

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Base62 of `n`, left-padded with `0` to six characters.
pub fn base62_6(mut n: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    let mut i = 6;
    while n > 0 && i > 0 {
        i -= 1;
        out[i] = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// `token` is the whole token including its `xxx_` prefix.
pub fn base62_crc32_ok(token: &[u8]) -> bool {
    let Some(underscore) = token.iter().position(|&b| b == b'_') else {
        return false;
    };
    let body = &token[underscore + 1..];
    if body.len() < 7 {
        return false;
    }
    let (random, check) = body.split_at(body.len() - 6);
    base62_6(crc32fast::hash(random)) == check
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_token_built_with_the_documented_algorithm() {
        let random = b"Zq8yR2vN0kT5mW7pL3xB9cF6hJ1dG4";
        let mut token = b"ghp_".to_vec();
        token.extend_from_slice(random);
        token.extend_from_slice(&base62_6(crc32fast::hash(random)));
        assert!(base62_crc32_ok(&token));
        let last = token.len() - 1;
        token[last] = if token[last] == b'a' { b'b' } else { b'a' };
        assert!(!base62_crc32_ok(&token));
    }

    #[test]
    fn pads_small_values() {
        assert_eq!(&base62_6(0), b"000000");
        assert_eq!(&base62_6(61), b"00000z");
    }
}
