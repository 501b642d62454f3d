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
