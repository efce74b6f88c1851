#!/usr/bin/env bash
# The daemon's HTTP API end to end: real daemons (cortex-preload start/run --http), the official
# npm clients `ollama` and `openai` under `node --test`, raw urllib/socket checks of bad input, a
# second daemon with a bearer token and CORS, the `cortex` Ollama provider against it, and the
# loopback rule for the setting.
set -uo pipefail
preload="$1"; cortex="$2"; model="$3"; node_dir="$4"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py=/usr/bin/python3
tmp="$(mktemp -d)"
token_pid=""
cleanup() {
    "$preload" stop --socket "$tmp/d.sock" >/dev/null 2>&1
    [ -n "$token_pid" ] && kill "$token_pid" 2>/dev/null && wait "$token_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
unset CORTEX_PROVIDER LLAMACPP_MODEL OLLAMA_MODEL OLLAMA_HOST CORTEX_PRELOAD CORTEX_PRELOAD_SOCKET XDG_RUNTIME_DIR \
    CORTEX_HTTP CORTEX_HTTP_TOKEN CORTEX_HTTP_CORS_ORIGIN
export CORTEX_HOME="$tmp/home" LLAMACPP_N_CTX=2048 LLAMACPP_N_THREADS=2
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The npm clients, installed from package-lock.json only when missing or stale: npm's record of
# what it installed lists the same packages as the lock file, less the project's own entry.
installed_as_locked() {
    node -e 'const [lock, installed] = process.argv.slice(1).map(f => require(require("path").resolve(f)).packages);
             delete lock[""]; delete installed[""];
             process.exit(JSON.stringify(lock) === JSON.stringify(installed) ? 0 : 1);' \
        "$node_dir/package-lock.json" "$node_dir/node_modules/.package-lock.json" 2>/dev/null
}
if ! installed_as_locked; then
    (cd "$node_dir" && npm ci --prefer-offline --no-audit --no-fund >/dev/null) ||
        { echo "error: npm ci failed in $node_dir"; echo "hint: run it there by hand (it needs the npm registry once)"; exit 1; }
fi

port="$(free_port)"
name="$(basename "$model" .gguf)"
"$preload" start --model "$model" --socket "$tmp/d.sock" --http "127.0.0.1:$port" >/dev/null || { fail "daemon did not start"; exit 1; }
url="http://127.0.0.1:$port"

# A second daemon in the foreground, with a token and one CORS origin from the environment.
tport="$(free_port)"
CORTEX_HTTP_TOKEN=s3cret CORTEX_HTTP_CORS_ORIGIN=http://app.example CORTEX_HTTP="127.0.0.1:$tport" \
    "$preload" run --model "$model" --socket "$tmp/t.sock" --parallel 1 >"$tmp/t.log" 2>&1 &
token_pid=$!
for _ in $(seq 200); do $py -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$tport/health')" 2>/dev/null && break; sleep 0.05; done

echo "== node --test (ollama, openai clients) against $url"
CORTEX_HTTP_URL="$url" CORTEX_HTTP_MODEL="$name" node --test "$node_dir"/ || fail "node --test"

echo "== raw checks (urllib, sockets)"
$py "$here/http_raw_checks.py" "$url" "$name" "http://127.0.0.1:$tport" s3cret || fail "http_raw_checks.py"

echo "== the cortex Ollama provider against the daemon"
# A random-weight model picks a candidate or "none": a plan of real packages or an honest "no
# confident match" (exit 1), and either way the model was asked through Ollama's API.
out="$(CORTEX_PROVIDER=ollama OLLAMA_HOST="$url" OLLAMA_MODEL="$name" "$cortex" install "a tool to watch network traffic" --provider ollama --json 2>"$tmp/cortex.err")"
$py -c '
import json, sys
p = json.load(sys.stdin)["plan"]
assert "(ollama " in p["chosen_by"], p["chosen_by"]
assert p["packages"] or (p["no_confident_match"] and p["candidates"]), p
' <<<"$out" 2>/dev/null || fail "cortex install --provider ollama: ${out:0:300} $(cat "$tmp/cortex.err")"

echo "== a non-loopback address must come from the command line"
out="$(CORTEX_HTTP="0.0.0.0:$(free_port)" "$preload" run --model "$model" --socket "$tmp/x.sock" 2>&1)" && fail "0.0.0.0 from CORTEX_HTTP was accepted"
grep -q "not a loopback address" <<<"$out" || fail "no loopback message: $out"
out="$(CORTEX_HTTP="nonsense:port" "$preload" run --model "$model" --socket "$tmp/x.sock" 2>&1)" && fail "a bad CORTEX_HTTP was accepted"
grep -q "HTTP address" <<<"$out" || fail "no address message: $out"

echo "== /api/pull through the library's downloader, from a loopback mirror"
# A catalog of one model whose bytes and SHA-256 are the test model's, served by a plain HTTP
# server laid out as Hugging Face is (REPO/resolve/main/FILE).
mkdir -p "$tmp/mirror/cortex-test/Tiny-GGUF/resolve/main" "$tmp/pull-home"
cp "$model" "$tmp/mirror/cortex-test/Tiny-GGUF/resolve/main/tiny.gguf"
sum="$(sha256sum "$model" | cut -d' ' -f1)"
size="$(stat -c %s "$model")"
cat >"$tmp/catalog.json" <<JSON
{"version": 1, "models": [{"name": "tiny-test", "aliases": ["tiny-test:latest"], "family": "qwen2", "tier": "small",
  "params": "0.01B", "repo": "cortex-test/Tiny-GGUF", "file": "tiny.gguf", "quantization": "Q8_0", "size": $size,
  "sha256": "$sum", "context_length": 2048, "memory_gb": 0.1, "best_for": "tests"},
 {"name": "tiny-bad", "aliases": [], "family": "qwen2", "tier": "small",
  "params": "0.01B", "repo": "cortex-test/Tiny-GGUF", "file": "tiny.gguf", "quantization": "Q8_0", "size": $size,
  "sha256": "$(printf '0%.0s' $(seq 64))", "context_length": 2048, "memory_gb": 0.1, "best_for": "a wrong checksum"}]}
JSON
mport="$(free_port)"
$py -m http.server "$mport" --bind 127.0.0.1 --directory "$tmp/mirror" >/dev/null 2>&1 &
mirror_pid=$!
pport="$(free_port)"
CORTEX_HOME="$tmp/pull-home" CORTEX_CATALOG="$tmp/catalog.json" CORTEX_MODEL_BASE_URL="http://127.0.0.1:$mport" \
    "$preload" run --model "$model" --socket "$tmp/p.sock" --parallel 1 --http "127.0.0.1:$pport" >"$tmp/p.log" 2>&1 &
pull_pid=$!
for _ in $(seq 200); do $py -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$pport/health'); urllib.request.urlopen('http://127.0.0.1:$mport/')" 2>/dev/null && break; sleep 0.05; done
$py - "http://127.0.0.1:$pport" "$tmp/pull-home/models/tiny-test.gguf" "$sum" <<'PY' || fail "/api/pull"
import hashlib, json, os, sys, urllib.error, urllib.request
base, path, want = sys.argv[1:4]
def post(body):
    req = urllib.request.Request(base + "/api/pull", data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
status, body = post({"model": "tiny-test"})
lines = [json.loads(l) for l in body.splitlines() if l.strip()]
assert status == 200 and lines[0]["status"] == "pulling manifest" and lines[-1] == {"status": "success"}, body[:500]
progress = [l for l in lines if "completed" in l]
assert progress and progress[-1]["completed"] == progress[-1]["total"] == os.path.getsize(path), progress[-3:]
assert hashlib.sha256(open(path, "rb").read()).hexdigest() == want
status, body = post({"model": "tiny-test", "stream": False})   # already there: verified, success
assert status == 200 and json.loads(body)["status"] == "success", body
status, body = post({"model": "tiny-bad", "stream": False})   # the bytes do not match: nothing kept
assert status == 502 and "error" in json.loads(body), (status, body)
assert not os.path.exists(os.path.join(os.path.dirname(path), "tiny-bad.gguf"))
status, body = post({"model": "no-such-model"})
assert status == 404 and set(json.loads(body)) == {"error"}, (status, body)
status, body = post({"name": 42})
assert status == 400 and set(json.loads(body)) == {"error"}, (status, body)
PY
kill "$pull_pid" "$mirror_pid" 2>/dev/null; wait "$pull_pid" "$mirror_pid" 2>/dev/null

echo "test_http: $fails failures"
[ "$fails" = 0 ]
