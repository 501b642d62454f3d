//! A loopback stub of the Anthropic Messages API, enough for the real Claude Code CLI in
//! `-p` mode: the first request is answered with one Bash tool call, every later one with a
//! final text. It records every request (headers and body) so tests can check what reached
//! the API: which key, and what the tool results contained.
#![allow(dead_code)]

use super::http_request;
pub use http_request::Request;

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A tool's result in a request's messages, as Claude Code writes it.
pub const TOOL_RESULT: &str = "\"type\":\"tool_result\"";

pub struct Stub {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl Stub {
    /// Starts the stub; `command` is what the Bash tool call asks Claude Code to run.
    pub fn start(command: &str) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let command = command.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let recorded = recorded.clone();
                let command = command.clone();
                std::thread::spawn(move || serve(stream, &recorded, &command));
            }
        });
        Stub { url, requests }
    }

    pub fn messages(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with("/v1/messages") && !r.path.contains("count_tokens"))
            .cloned()
            .collect()
    }

    /// The bodies of the turns that carried a tool's result back, joined.
    pub fn tool_results(&self) -> String {
        self.messages()
            .iter()
            .filter(|r| r.body.contains(TOOL_RESULT))
            .map(|r| r.body.clone())
            .collect()
    }
}

fn serve(stream: TcpStream, recorded: &Mutex<Vec<Request>>, command: &str) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut stream = stream;
    while let Some(req) = http_request::read(&mut reader) {
        let (path, body) = (req.path.clone(), req.body.clone());
        let n_messages = {
            let mut r = recorded.lock().unwrap();
            r.push(req);
            r.iter()
                .filter(|r| r.path.starts_with("/v1/messages") && !r.path.contains("count_tokens"))
                .count()
        };
        let response = if path.starts_with("/v1/messages") && !path.contains("count_tokens") {
            let stream_mode = body.contains("\"stream\":true");
            // By its JSON, not the bare word: Claude Code sends the workspace's git log
            // along, and a commit message may well say "tool_result".
            let first = n_messages == 1 && !body.contains(TOOL_RESULT);
            reply(first, stream_mode, command)
        } else if path.contains("count_tokens") {
            http(200, "application/json", "{\"input_tokens\":10}")
        } else {
            http(200, "application/json", "{}")
        };
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A chunked request body, decoded (RFC 9112 §7.1; extensions and trailers ignored).
fn http(status: u16, ctype: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nrequest-id: req_stub\r\n\r\n{body}",
        body.len()
    )
}

fn reply(tool_call: bool, stream: bool, command: &str) -> String {
    let usage = "{\"input_tokens\":10,\"output_tokens\":5}";
    let input = serde_json::json!({ "command": command, "description": "run the test command" });
    let (content, stop) = if tool_call {
        (
            serde_json::json!([{ "type": "tool_use", "id": "toolu_stub_1", "name": "Bash", "input": input }]),
            "tool_use",
        )
    } else {
        (
            serde_json::json!([{ "type": "text", "text": "done" }]),
            "end_turn",
        )
    };
    if !stream {
        let msg = serde_json::json!({
            "id": "msg_stub", "type": "message", "role": "assistant", "model": "claude-stub",
            "content": content, "stop_reason": stop, "stop_sequence": null,
            "usage": serde_json::from_str::<serde_json::Value>(usage).unwrap(),
        });
        return http(200, "application/json", &msg.to_string());
    }
    let mut events = Vec::new();
    let start = serde_json::json!({"type":"message_start","message":{"id":"msg_stub","type":"message","role":"assistant","model":"claude-stub","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}});
    events.push(("message_start", start));
    if tool_call {
        events.push(("content_block_start", serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_stub_1","name":"Bash","input":{}}})));
        events.push(("content_block_delta", serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json": input.to_string()}})));
    } else {
        events.push(("content_block_start", serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})));
        events.push(("content_block_delta", serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"done"}})));
    }
    events.push((
        "content_block_stop",
        serde_json::json!({"type":"content_block_stop","index":0}),
    ));
    events.push(("message_delta", serde_json::json!({"type":"message_delta","delta":{"stop_reason":stop,"stop_sequence":null},"usage":{"output_tokens":5}})));
    events.push(("message_stop", serde_json::json!({"type":"message_stop"})));
    let body: String = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    http(200, "text/event-stream", &body)
}

/// The Claude Code CLI scripts/test-all installs (`KEYFENCE_TEST_CLAUDE` names another).
pub fn claude_bin() -> std::path::PathBuf {
    let p = std::env::var_os("KEYFENCE_TEST_CLAUDE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/test-tools/node_modules/.bin/claude")
        });
    assert!(
        p.exists(),
        "Claude Code CLI not found at {}: run `npm install --prefix target/test-tools \
         @anthropic-ai/claude-code` (scripts/test-all does)",
        p.display()
    );
    p
}
