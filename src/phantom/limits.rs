//! How long and how many: the proxy's time limits per connection and its cap on concurrent
//! connections. The proxy runs inside keyfence's supervising process, next to the real key,
//! and its clients are the very command keyfence does not trust; a client that connects and
//! sends nothing, sends its request a byte at a time (slowloris), drips its body, never reads
//! its response, or opens connections by the thousand must not be able to pin that process's
//! threads, memory and descriptors.
//!
//! The limits are those a careful server sets (Apache's `RequestReadTimeout`, nginx's
//! `client_header_timeout`): a request head must arrive whole within the limit, a body must
//! not pause longer than the limit and must average at least [`MIN_BODY_RATE`], a response
//! write may not wait longer than the limit for the client to read. The upstream gets longer:
//! a model may think for minutes before its first byte.

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The per-connection limit, unless `KEYFENCE_PHANTOM_TIMEOUT_MS` (a testing knob) says
/// otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent client connections; API clients keep a handful (one per parallel request).
pub const MAX_CONNECTIONS: usize = 128;
/// Bytes per second a request body must average once its first `timeout` is used up.
pub const MIN_BODY_RATE: u64 = 1024;
/// How long the upstream may stay silent: API clients themselves wait 10 minutes for a
/// non-streaming response.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(600);
/// The variable that shortens the limit, for tests.
pub const TIMEOUT_ENV: &str = "KEYFENCE_PHANTOM_TIMEOUT_MS";

#[derive(Debug, thiserror::Error)]
#[error(
    "{TIMEOUT_ENV} must be a whole number of milliseconds above 0\n\
     hint: it is a testing knob; unset it for the default of 30 s"
)]
pub struct BadTimeout;

/// The proxy's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// For a request head to arrive, for a body to pause, for a client to read.
    pub timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: DEFAULT_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

impl Limits {
    /// The defaults, with the timeout from `KEYFENCE_PHANTOM_TIMEOUT_MS` when it is set.
    pub fn from_env() -> Result<Limits, BadTimeout> {
        let mut limits = Limits::default();
        if let Some(v) = std::env::var_os(TIMEOUT_ENV).filter(|v| !v.is_empty()) {
            let ms: u64 = v
                .to_str()
                .and_then(|s| s.trim().parse().ok())
                .filter(|&ms| ms > 0)
                .ok_or(BadTimeout)?;
            limits.timeout = Duration::from_millis(ms);
        }
        Ok(limits)
    }
}

/// The client side of a connection, read against a deadline: fixed for the request head,
/// moving with the bytes received for a body.
pub(super) struct Paced {
    stream: TcpStream,
    idle: Duration,
    deadline: Instant,
    /// Bytes per second that push the deadline back; none while reading the head.
    rate: Option<u64>,
}

impl Paced {
    /// For the request head: all of it within `timeout` from now.
    pub fn head(stream: TcpStream, timeout: Duration) -> Paced {
        Paced {
            stream,
            idle: timeout,
            deadline: Instant::now() + timeout,
            rate: None,
        }
    }

    /// From here on, a body: a fresh `timeout`, then [`MIN_BODY_RATE`].
    pub fn body(&mut self) {
        self.deadline = Instant::now() + self.idle;
        self.rate = Some(MIN_BODY_RATE);
    }
}

impl Read for Paced {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left.min(self.idle)))?;
        match self.stream.read(buf) {
            Ok(n) => {
                if let Some(rate) = self.rate {
                    self.deadline += Duration::from_secs_f64(n as f64 / rate as f64);
                }
                Ok(n)
            }
            // SO_RCVTIMEO expiring shows as EAGAIN.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::ErrorKind::TimedOut.into()),
            Err(e) => Err(e),
        }
    }
}

/// Counts connections being served.
#[derive(Debug)]
pub(super) struct Slots {
    active: AtomicUsize,
    max: usize,
}

/// One connection's place; given back when dropped, however its thread ends.
#[derive(Debug)]
pub(super) struct Slot(Arc<Slots>);

impl Slots {
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            active: AtomicUsize::new(0),
            max,
        })
    }

    /// A slot, or none when `max` connections are being served.
    pub fn take(self: &Arc<Self>) -> Option<Slot> {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_given_back() {
        let slots = Slots::new(2);
        let a = slots.take().unwrap();
        let b = slots.take().unwrap();
        assert!(slots.take().is_none());
        drop(a);
        let c = slots.take().unwrap();
        assert!(slots.take().is_none());
        drop((b, c));
        assert_eq!(slots.active.load(Ordering::Acquire), 0);
    }
}
