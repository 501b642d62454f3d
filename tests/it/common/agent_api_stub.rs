//! Loopback stubs of the APIs Codex CLI 0.171 and Gemini CLI 0.61 speak, enough for one shell
//! tool call in their non-interactive modes (issue #18):
//! - Codex: the Responses API (`POST /v1/responses`, server-sent events). The first turn is
//!   answered with a function call to `exec_command` (the shell tool 0.171 offers a custom
//!   provider's model), every later one with a final message.
//! - Gemini: `generateContent` / `streamGenerateContent` under `/v1beta/models/` (an API key,
//!   `GOOGLE_GEMINI_BASE_URL`), or on Vertex AI in express mode under
//!   `/v1beta1/publishers/google/models/` (`GOOGLE_API_KEY`, `GOOGLE_VERTEX_BASE_URL`; the same
//!   body and `x-goog-api-key`), answered with a function call to `run_shell_command`, then a
//!   text; logged in with Google (`oauth-personal`), the same turns under Code Assist's
//!   `/v1internal:` (`CODE_ASSIST_ENDPOINT`), wrapped in `{"response": ...}`, after its
//!   `loadCodeAssist` set-up call.
//!
//! Every request is recorded (headers and body) so tests can check which key reached the API
//! and that the tool's output came back.
#![allow(dead_code)]

use super::http_request;
pub use http_request::Request;

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Codex,
    Gemini,
}

pub struct Stub {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
    api: Api,
}

impl Stub {
    /// Starts the stub; `command` is what the shell tool call asks the agent to run.
    pub fn start(api: Api, command: &str) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let command = command.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let recorded = recorded.clone();
                let command = command.clone();
                std::thread::spawn(move || serve(api, stream, &recorded, &command));
            }
        });
        Stub { url, requests, api }
    }

    /// The model turns (not the other calls the CLIs make).
    pub fn turns(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| is_turn(self.api, &r.path))
            .cloned()
            .collect()
    }

    /// Whether a turn carried the shell tool's result back (the agent survived the tool).
    pub fn tool_result_came_back(&self) -> bool {
        let marker = match self.api {
            Api::Codex => "function_call_output",
            Api::Gemini => "functionResponse",
        };
        self.turns().iter().any(|r| r.body.contains(marker))
    }

    /// The credential each turn carried: Codex's bearer token, Gemini's `x-goog-api-key`.
    pub fn credentials(&self) -> Vec<Option<String>> {
        self.turns()
            .iter()
            .map(|r| {
                let bearer = r
                    .header("authorization")
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::to_string);
                match self.api {
                    Api::Codex => bearer,
                    // Code Assist (a Google login) takes the OAuth token as a bearer token.
                    Api::Gemini if r.path.starts_with("/v1internal") => bearer,
                    Api::Gemini => r.header("x-goog-api-key").map(str::to_string),
                }
            })
            .collect()
    }
}

fn is_turn(api: Api, path: &str) -> bool {
    match api {
        Api::Codex => path.starts_with("/v1/responses"),
        Api::Gemini => path.contains("enerateContent"),
    }
}

fn serve(api: Api, stream: TcpStream, recorded: &Mutex<Vec<Request>>, command: &str) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut stream = stream;
    while let Some(req) = http_request::read(&mut reader) {
        let (path, body) = (req.path.clone(), req.body.clone());
        recorded.lock().unwrap().push(req);
        let response = if path.contains(":loadCodeAssist") {
            let tier = serde_json::json!({"currentTier": {"id": "standard-tier"},
                "allowedTiers": [{"id": "standard-tier", "isDefault": true}],
                "cloudaicompanionProject": "stub-project"});
            http("application/json", &tier.to_string())
        } else if !is_turn(api, &path) {
            http("application/json", "{}")
        } else {
            match api {
                Api::Codex => codex_turn(&body, command),
                Api::Gemini => gemini_turn(&path, &body, command),
            }
        };
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn http(ctype: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// One Responses API turn as server-sent events: a call of `exec_command` first, then "done".
fn codex_turn(body: &str, command: &str) -> String {
    let item = if body.contains("function_call_output") {
        serde_json::json!({"type": "message", "role": "assistant", "id": "msg_stub",
            "content": [{"type": "output_text", "text": "done"}]})
    } else {
        let args = serde_json::json!({ "cmd": command, "yield_time_ms": 30000 });
        serde_json::json!({"type": "function_call", "id": "fc_stub", "call_id": "call_stub",
            "name": "exec_command", "arguments": args.to_string()})
    };
    let events = [
        serde_json::json!({"type": "response.created", "response": {"id": "resp_stub"}}),
        serde_json::json!({"type": "response.output_item.done", "item": item}),
        serde_json::json!({"type": "response.completed", "response": {"id": "resp_stub",
            "usage": {"input_tokens": 1, "input_tokens_details": null, "output_tokens": 1,
                "output_tokens_details": null, "total_tokens": 2}}}),
    ];
    let sse: String = events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("")))
        .collect();
    http("text/event-stream", &sse)
}

/// One Gemini turn: a call of `run_shell_command` first, then "done"; streamed (`alt=sse`)
/// or whole, as asked.
fn gemini_turn(path: &str, body: &str, command: &str) -> String {
    let parts = if body.contains("functionResponse") {
        serde_json::json!([{ "text": "done" }])
    } else {
        serde_json::json!([{ "functionCall": { "name": "run_shell_command",
            "args": { "command": command } } }])
    };
    let mut resp = serde_json::json!({
        "candidates": [{ "content": { "role": "model", "parts": parts }, "finishReason": "STOP",
            "index": 0 }],
        "usageMetadata": { "promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2 },
        "modelVersion": "gemini-stub",
    });
    if path.starts_with("/v1internal") {
        resp = serde_json::json!({ "response": resp, "traceId": "stub" });
    }
    if path.contains(":streamGenerateContent") {
        http("text/event-stream", &format!("data: {resp}\r\n\r\n"))
    } else {
        http("application/json", &resp.to_string())
    }
}
