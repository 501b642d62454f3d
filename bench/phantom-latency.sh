#!/usr/bin/env bash
# Added latency of the phantom proxy per request on loopback (budget <= 1 ms), and streaming
# throughput through it: the same Python client talks to a local upstream directly, then
# through `keyfence run --phantom` (which swaps the stand-in for the real key).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kf=${KEYFENCE:-$here/../target/release/keyfence}
[ -x "$kf" ] || { echo "no keyfence binary at $kf: cargo build --release" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill "${srv:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
export HOME=$work/home
mkdir -p "$HOME"
key="sk-ant-api03-$(head -c 200 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 93)AA"
printf '%s' "$key" | "$kf" secret set ANTHROPIC_API_KEY -q

cat > "$work/upstream.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a): pass
    def do_POST(self):
        n = int(self.headers.get("content-length", 0)); self.rfile.read(n)
        big = self.path.endswith("/big")
        body = b"x" * (64 << 20) if big else b'{"ok":true}'
        self.send_response(200 if self.headers.get("x-api-key", "").endswith("AA") else 401)
        self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 "$work/upstream.py" "$port" & srv=$!
sleep 0.5

cat > "$work/client.py" <<'PY'
import http.client, os, sys, time, urllib.parse
u = urllib.parse.urlparse(os.environ["ANTHROPIC_BASE_URL"])
key = os.environ["ANTHROPIC_API_KEY"]
def req(path):
    c = http.client.HTTPConnection(u.hostname, u.port)
    c.connect(); c.sock.setsockopt(6, 1, 1)  # TCP_NODELAY: headers and body are separate writes
    c.request("POST", path, body=b'{"model":"x"}', headers={"x-api-key": key, "content-type": "application/json"})
    r = c.getresponse(); data = r.read(); c.close()
    assert r.status == 200, r.status
    return len(data)
def parent_cpu():
    # CPU time of the parent: keyfence (its proxy threads) when run under it. Unlike the
    # wall-clock latency, it does not move with what else the machine is running.
    f = open(f"/proc/{os.getppid()}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
n = 500
for _ in range(20): req("/v1/messages")
cpu = parent_cpu()
t = time.perf_counter()
for _ in range(n): req("/v1/messages")
lat = (time.perf_counter() - t) / n * 1000
cpu_us = (parent_cpu() - cpu) / n * 1e6
t = time.perf_counter(); size = req("/v1/big"); thr = size / (time.perf_counter() - t) / (1 << 20)
print(f"{lat:.3f} {thr:.0f} {cpu_us:.0f}")
PY
read -r direct_ms direct_mib _ < <(ANTHROPIC_BASE_URL="http://127.0.0.1:$port" ANTHROPIC_API_KEY="$key" python3 "$work/client.py")
read -r proxy_ms proxy_mib proxy_cpu < <("$kf" run --phantom ANTHROPIC_API_KEY --upstream "http://127.0.0.1:$port" -- python3 "$work/client.py")
printf '%-34s %12s %14s\n' "path" "ms/request" "64 MiB MiB/s"
printf '%-34s %12s %14s\n' "client -> upstream" "$direct_ms" "$direct_mib"
printf '%-34s %12s %14s\n' "client -> phantom proxy -> upstream" "$proxy_ms" "$proxy_mib"
python3 -c "print(f'added latency per request: {float($proxy_ms)-float($direct_ms):.3f} ms (budget 1 ms)')"
echo "keyfence CPU per proxied request: $proxy_cpu us (clock ticks of 10 ms over 500 requests)"
