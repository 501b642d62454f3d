//! Timestamps of entries (whole seconds since the Unix epoch, shown as RFC 3339 in UTC) and the
//! `--ttl` durations that set their expiry.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time, in whole seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Time(pub u64);

impl Time {
    /// The current time, rounded down to the second.
    pub fn now() -> Time {
        Time(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )
    }

    /// `ttl` seconds from now, rounded up so an entry never lives shorter than asked.
    pub fn after(ttl: u64) -> Time {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = now.as_secs() + u64::from(now.subsec_nanos() > 0);
        Time(secs.saturating_add(ttl))
    }
}

impl fmt::Display for Time {
    /// RFC 3339 in UTC: `2026-05-01T12:00:00Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0 / 86_400;
        let rem = self.0 % 86_400;
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

/// Year, month, day of the `days`-th day after 1970-01-01 (proleptic Gregorian calendar).
/// Howard Hinnant's `civil_from_days`, restricted to dates after the epoch:
/// <https://howardhinnant.github.io/date_algorithms.html#civil_from_days>
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// What `--ttl` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// Expire this many seconds after the value is set.
    Seconds(u64),
    /// `never`: remove an expiry the entry had.
    Never,
}

/// Parses `--ttl`: a whole number and a unit (`90s`, `30m`, `12h`, `7d`, `2w`), or `never`.
pub fn parse_ttl(s: &str) -> Result<Ttl, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("never") {
        return Ok(Ttl::Never);
    }
    let bad = || {
        format!(
            "invalid duration '{s}': use a number and a unit s, m, h, d or w (30m, 12h, 90d), \
             or never"
        )
    };
    let unit = s.chars().last().ok_or_else(bad)?;
    let mult: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return Err(bad()),
    };
    let n: u64 = s[..s.len() - 1].parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(format!(
            "invalid duration '{s}': must be more than zero (or never)"
        ));
    }
    n.checked_mul(mult)
        .map(Ttl::Seconds)
        .ok_or_else(|| format!("invalid duration '{s}': too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_utc() {
        for (secs, shown) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_777_636_800, "2026-05-01T12:00:00Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
        ] {
            assert_eq!(Time(secs).to_string(), shown, "{secs}");
        }
    }

    #[test]
    fn parses_ttls() {
        for (s, want) in [
            ("1s", Ok(Ttl::Seconds(1))),
            ("30m", Ok(Ttl::Seconds(1800))),
            ("12h", Ok(Ttl::Seconds(43_200))),
            ("7d", Ok(Ttl::Seconds(604_800))),
            ("90d", Ok(Ttl::Seconds(7_776_000))),
            ("2w", Ok(Ttl::Seconds(1_209_600))),
            ("never", Ok(Ttl::Never)),
        ] {
            assert_eq!(parse_ttl(s), want, "{s}");
        }
        for s in [
            "",
            "d",
            "10",
            "0d",
            "-1d",
            "1.5h",
            "7 days",
            "1y",
            "99999999999999999w",
        ] {
            assert!(parse_ttl(s).is_err(), "{s}");
        }
    }

    #[test]
    fn after_rounds_up() {
        let now = Time::now();
        let later = Time::after(10);
        assert!(later.0 >= now.0 + 10 && later.0 <= now.0 + 11);
    }
}
