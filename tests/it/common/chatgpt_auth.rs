//! A Codex CLI logged in with a ChatGPT account, as `codex login` leaves it in
//! `~/.codex/auth.json` (Codex 0.171), every token fake and unique to the test (issue #18).
#![allow(dead_code)]

use crate::common::random_from;

/// Base64url without padding, as JWTs are written.
fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A well-formed JWT that no one signed, its claims `claims`: Codex 0.171 parses the ChatGPT
/// tokens in auth.json (an empty signature segment is refused) but does not check signatures.
pub fn unsigned_jwt(claims: &serde_json::Value) -> String {
    format!(
        "{}.{}.{}",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims.to_string().as_bytes()),
        b64url(random_from("abcdefghijklmnopqrstuvwxyz0123456789", 32).as_bytes())
    )
}

/// ~/.codex/auth.json as `codex login` writes it for a ChatGPT account, every token fake and
/// unique to the run: an id token and an access token (unsigned JWTs) that expire in ten
/// years, a refresh token, `last_refresh` now. Codex refreshes only an expired access token
/// (checked: with `exp` in the past it posts the refresh token to
/// CODEX_REFRESH_TOKEN_URL_OVERRIDE, else to auth.openai.com). Returns the file and
/// (what, value) for each token, and the account id.
pub fn chatgpt_auth() -> (String, Vec<(String, String)>, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let lower = "abcdefghijklmnopqrstuvwxyz0123456789";
    let account = format!("acct-{}", random_from(lower, 16));
    let user = format!("user-{}", random_from(lower, 16));
    let claims = |aud: &str| {
        serde_json::json!({
            "iss": "https://auth.openai.com", "aud": [aud], "sub": user,
            "email": "someone@example.com", "email_verified": true,
            "iat": now, "exp": now + 10 * 365 * 86_400, "jti": random_from(lower, 24),
            "https://api.openai.com/auth": {"chatgpt_plan_type": "plus",
                "chatgpt_user_id": user, "chatgpt_account_id": account, "user_id": user},
        })
    };
    let id = unsigned_jwt(&claims("app_codex_test"));
    let access = unsigned_jwt(&claims("https://api.openai.com/v1"));
    let refresh = format!("rt_{}", random_from(lower, 48));
    let secs = now % 86_400;
    let days = now / 86_400;
    // The date of `days` since the epoch (civil-from-days, proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let last_refresh = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000000Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    let file = serde_json::json!({
        "auth_mode": "chatgpt", "OPENAI_API_KEY": null,
        "tokens": {"id_token": id, "access_token": access, "refresh_token": refresh,
            "account_id": account},
        "last_refresh": last_refresh,
    });
    let tokens = vec![
        ("codex chatgpt id token".to_string(), id),
        ("codex chatgpt access token".to_string(), access),
        ("codex chatgpt refresh token".to_string(), refresh),
    ];
    (
        serde_json::to_string_pretty(&file).unwrap(),
        tokens,
        account,
    )
}
