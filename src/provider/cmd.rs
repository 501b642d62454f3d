//! `cmd:PROGRAM ARGS...`: a value printed by another program (`op read op://...`,
//! `pass show ...`, a cloud CLI). The program runs without a shell, with keyfence's stderr and,
//! when it is a terminal, its stdin (so it can prompt), its stdout captured and trimmed, and a
//! time limit. Piped input is left for the command keyfence runs: the provider gets none.
//!
//! Errors name the program and what went wrong, never what it printed.

use crate::secret::SecretValue;
use std::io::{IsTerminal, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How long a provider command may take, unless `KEYFENCE_CMD_TIMEOUT` (seconds) says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_OUTPUT: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("cmd:{program}: cannot start it: {source}")]
    Start {
        program: String,
        source: std::io::Error,
    },
    #[error("cmd:{program} failed ({status}); its own message, if any, is above")]
    Failed { program: String, status: String },
    #[error(
        "cmd:{program} did not finish within {secs} s and was stopped\n\
         hint: it may be waiting for input or a login; run it by hand once, or raise \
         KEYFENCE_CMD_TIMEOUT (seconds)"
    )]
    Timeout { program: String, secs: f64 },
    #[error("cmd:{program} printed nothing on stdout\nhint: run it by hand to see why")]
    Empty { program: String },
    #[error("cmd:{program} printed more than 1 MiB; that is not a secret")]
    TooLong { program: String },
    #[error("KEYFENCE_CMD_TIMEOUT must be a number of seconds")]
    BadTimeout,
}

/// The time limit from `KEYFENCE_CMD_TIMEOUT`, or the default.
pub fn timeout_from_env() -> Result<Duration, CmdError> {
    match std::env::var("KEYFENCE_CMD_TIMEOUT") {
        Ok(s) if !s.is_empty() => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|f| Duration::try_from_secs_f64(f).ok())
            .filter(|d| !d.is_zero())
            .ok_or(CmdError::BadTimeout),
        _ => Ok(DEFAULT_TIMEOUT),
    }
}

/// Splits `op read "op://a b/c"` into words: whitespace separates, single and double quotes
/// group, nothing is expanded. `None` when a quote is left open.
pub fn split(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        words.push(cur);
    }
    Some(words)
}

/// Runs `argv` and returns its stdout, trimmed of surrounding whitespace.
pub fn run(argv: &[String], timeout: Duration) -> Result<SecretValue, CmdError> {
    let program = argv.first().cloned().unwrap_or_default();
    let stdin = if std::io::stdin().is_terminal() {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    let mut child = Command::new(&program)
        .args(&argv[1..])
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| CmdError::Start {
            program: program.clone(),
            source,
        })?;
    let mut out = child.stdout.take();
    // The reader is not joined on a timeout: a grandchild may hold the pipe open for ever,
    // and keyfence is about to exit with an error anyway.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Zeroizing::new(Vec::with_capacity(4096));
        let r = match out.as_mut() {
            Some(o) => o.take(MAX_OUTPUT + 1).read_to_end(&mut buf).map(drop),
            None => Ok(()),
        };
        let _ = tx.send(r.map(|()| buf));
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CmdError::Timeout {
                    program,
                    secs: timeout.as_secs_f64(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => return Err(CmdError::Start { program, source }),
        }
    };
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        let status = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "unknown status".into(),
        };
        return Err(CmdError::Failed { program, status });
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    let buf = match rx.recv_timeout(remaining.max(Duration::from_millis(100))) {
        Ok(Ok(buf)) => buf,
        Ok(Err(source)) => return Err(CmdError::Start { program, source }),
        Err(_) => {
            return Err(CmdError::Timeout {
                program,
                secs: timeout.as_secs_f64(),
            });
        }
    };
    if buf.len() as u64 > MAX_OUTPUT {
        return Err(CmdError::TooLong { program });
    }
    let value = buf.trim_ascii();
    if value.is_empty() {
        return Err(CmdError::Empty { program });
    }
    Ok(SecretValue::new(value.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_and_quotes() {
        for (s, want) in [
            ("op read op://v/i/f", vec!["op", "read", "op://v/i/f"]),
            ("  pass   show  a/b ", vec!["pass", "show", "a/b"]),
            (
                "op read \"op://my vault/i\"",
                vec!["op", "read", "op://my vault/i"],
            ),
            ("printf '%s' ''", vec!["printf", "%s", ""]),
            ("a'b c'd", vec!["ab cd"]),
        ] {
            assert_eq!(split(s).unwrap(), want, "{s}");
        }
        assert_eq!(split("op read 'open"), None);
        assert_eq!(split("   ").unwrap(), Vec::<String>::new());
    }
}
