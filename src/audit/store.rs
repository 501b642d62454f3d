//! `store`: entries of the embedded vault whose value is older than their rotation age (90 days
//! unless set with `--rotate-after`). A finding about the entry, never about its value: no
//! preview, no secret part; the fingerprint only in the message, to recognise the key.
//!
//! The audit never prompts: a passphrase vault is read only when `KEYFENCE_PASSPHRASE_FILE`
//! names its passphrase, and otherwise is an entry in `errors`.

use super::{Context, Output, display_path};
use crate::finding::{Finding, Location, Severity, Source};
use crate::store::{
    Interactive, PASSPHRASE_FILE_ENV, PassphraseError, PassphraseSource, Paths, Store, StoreError,
    Time,
};
use std::path::Path;
use zeroize::Zeroizing;

/// The passphrase file if there is one; never a prompt.
struct NoPrompt;

impl PassphraseSource for NoPrompt {
    fn passphrase(&self, vault: &Path, new: bool) -> Result<Zeroizing<Vec<u8>>, PassphraseError> {
        if std::env::var_os(PASSPHRASE_FILE_ENV).is_some_and(|v| !v.is_empty()) {
            return Interactive.passphrase(vault, new);
        }
        Err(PassphraseError::NoTerminal {
            vault: vault.to_path_buf(),
        })
    }
}

/// The vault of the audited home: `$XDG_*` when it is the user's own home.
fn paths(ctx: &Context) -> Option<Paths> {
    let own = std::env::var_os("HOME").is_some_and(|h| Path::new(&h) == ctx.home());
    if own {
        return Paths::from_env().ok();
    }
    let home = ctx.home();
    Some(Paths::new(
        home.join(".local/share/keyfence"),
        &home.join(".local/state/keyfence"),
    ))
}

/// The stored entries' fingerprints and names, for saying "already stored" where a stored key
/// is found elsewhere (`audit::mark_stored`); empty when the vault cannot be read without a
/// prompt.
pub fn fingerprints(ctx: &Context) -> Vec<(String, String)> {
    let Some(paths) = paths(ctx) else {
        return Vec::new();
    };
    let Ok(store) = Store::open(paths, &NoPrompt) else {
        return Vec::new();
    };
    store
        .entries()
        .iter()
        .filter_map(|e| Some((e.fingerprint.clone()?, e.name.clone())))
        .collect()
}

pub fn audit(ctx: &Context, out: &mut Output) {
    let Some(paths) = paths(ctx) else { return };
    let vault = paths.vault.clone();
    let store = match Store::open(paths, &NoPrompt) {
        Ok(s) => s,
        Err(StoreError::NoVault { .. }) => return,
        Err(StoreError::Passphrase(_)) => {
            out.error(
                Source::Store,
                Some(&vault),
                format!(
                    "the vault is passphrase-protected: rotation ages not checked (set \
                     {PASSPHRASE_FILE_ENV} to check them)"
                ),
            );
            return;
        }
        Err(e) => {
            out.error(Source::Store, Some(&vault), e.to_string());
            return;
        }
    };
    let now = Time::now();
    for e in store.entries().iter() {
        let Some(due) = e.rotation_due(now) else {
            continue;
        };
        let last = e.rotated.unwrap_or(e.created);
        let days = now.0.saturating_sub(last.0) / 86_400;
        let what = match (&e.kind, &e.fingerprint) {
            (Some(k), Some(fp)) => format!(" ({k}, fingerprint {fp})"),
            (Some(k), None) => format!(" ({k})"),
            (None, Some(fp)) => format!(" (fingerprint {fp})"),
            (None, None) => String::new(),
        };
        out.findings.push(Finding {
            rule: "store-rotation-due".into(),
            severity: Severity::Low,
            source: Source::Store,
            location: Location::file(display_path(ctx.home(), &vault), 1),
            secret: None,
            message: format!(
                "store entry {}{what} was last set {days} days ago ({last}); it has been due for \
                 rotation since {due}",
                e.name
            ),
            fix: format!(
                "create a new key with its provider, store it with `keyfence secret rotate {}`, \
                 then revoke the old one",
                e.name
            ),
        });
    }
}
