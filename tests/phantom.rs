//! The phantom proxy with a client that streams its request body in chunks (Python's
//! http.client with `encode_chunked`), against the loopback stub of the Messages API as the
//! upstream: the body arrives whole, and the upstream sees the real key, the client only the
//! stand-in.

#[path = "common/claude_stub.rs"]
mod claude_stub;
mod common;

use claude_stub::Stub;
use common::*;

const CLIENT: &str = r#"
import http.client, json, os, urllib.parse
base = urllib.parse.urlparse(os.environ["ANTHROPIC_BASE_URL"])
key = os.environ["ANTHROPIC_API_KEY"]
body = json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "chunked hello"}]}).encode()
parts = (body[i:i + 7] for i in range(0, len(body), 7))
c = http.client.HTTPConnection(base.hostname, base.port)
c.request("POST", "/v1/messages", body=parts, encode_chunked=True,
          headers={"x-api-key": key, "content-type": "application/json"})
r = c.getresponse()
print("status", r.status, len(r.read()) > 0)
print("prefix", key[:13])
"#;

#[test]
fn phantom_relays_chunked_request_bodies() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    fx.store_secret("ANTHROPIC_API_KEY", &key);
    fx.project_file("client.py", CLIENT);
    let stub = Stub::start("true");
    let r = fx.run(
        &[
            "run",
            "--phantom",
            "ANTHROPIC_API_KEY",
            "--upstream",
            &stub.url,
            "--",
            "python3",
            "client.py",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("status 200 True"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert!(r.stdout.contains("prefix sk-ant-api03-"), "{}", r.stdout);
    let msgs = stub.messages();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].header("x-api-key"), Some(key.as_str()));
    assert_eq!(msgs[0].header("transfer-encoding"), Some("chunked"));
    assert!(msgs[0].body.contains("chunked hello"), "{}", msgs[0].body);
}

const CUSTOM_CLIENT: &str = r#"
import http.client, os, urllib.parse
base = urllib.parse.urlparse(os.environ["MISTRAL_BASE_URL"])
key = os.environ["MISTRAL_API_KEY"]
c = http.client.HTTPConnection(base.hostname, base.port)
c.request("POST", base.path + "/v1/messages", body=b"{}",
          headers={"authorization": "Bearer " + key, "x-api-key": key})
print("status", c.getresponse().status)
"#;

/// A provider keyfence has no defaults for, configured per secret in the user's profile:
/// base-URL variable, upstream and the one header that carries the key. The stand-in is swapped
/// only in that header.
#[test]
fn phantom_per_secret_configuration_in_a_profile() {
    let mut fx = Fixture::new();
    let key = fx.key("token");
    fx.store_secret("MISTRAL_API_KEY", &key);
    let stub = Stub::start("true");
    fx.home_file(
        ".config/keyfence/config.toml",
        &format!(
            "[[profile]]\nname = \"mistral\"\n\n[[profile.phantom]]\nvar = \"MISTRAL_API_KEY\"\n\
             base_url_var = \"MISTRAL_BASE_URL\"\nupstream = \"{}/api\"\nheaders = [\"Authorization\"]\n",
            stub.url
        ),
    );
    fx.project_file("client.py", CUSTOM_CLIENT);
    let r = fx.run(
        &["run", "--profile", "mistral", "--", "python3", "client.py"],
        &[],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("status 200"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    let reqs = stub.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].path, "/api/v1/messages");
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {key}").as_str())
    );
    // Not a configured header: left as the client sent it, the stand-in.
    let other = reqs[0].header("x-api-key").unwrap_or_default();
    assert!(!other.is_empty() && other != key, "x-api-key was swapped");
}

/// A project's keyfence.toml may not choose where the real key goes.
#[test]
fn a_project_profile_cannot_redirect_a_phantom_upstream() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    fx.store_secret("ANTHROPIC_API_KEY", &key);
    fx.project_file(
        "keyfence.toml",
        "[[profile]]\nname = \"agent2\"\n\n[[profile.phantom]]\nvar = \"ANTHROPIC_API_KEY\"\nupstream = \"http://127.0.0.1:9\"\n",
    );
    let r = fx.run(&["run", "--profile", "agent2", "--", "true"], &[]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("may not set upstream"), "{}", r.stderr);
}
