//! Shannon entropy in bits per byte: how random a candidate value looks.

pub fn shannon(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn uniform_and_constant() {
        assert_eq!(super::shannon(b"aaaa"), 0.0);
        assert!((super::shannon(b"abcd") - 2.0).abs() < 1e-9);
    }
}
