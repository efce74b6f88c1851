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

# The npm clients, installed from package-lock.json only when missing or stale.
if [ ! -f "$node_dir/node_modules/.package-lock.json" ] || ! cmp -s <(sed -n '/"packages"/,$p' "$node_dir/package-lock.json" | grep -v '"": {' ) \
    <(sed -n '/"packages"/,$p' "$node_dir/node_modules/.package-lock.json" | grep -v '"": {') 2>/dev/null; then
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
out="$(CORTEX_PROVIDER=ollama OLLAMA_HOST="$url" OLLAMA_MODEL="$name" "$cortex" install "a tool to watch network traffic" --provider ollama --json 2>"$tmp/cortex.err")" ||
    fail "cortex install --provider ollama: $(cat "$tmp/cortex.err")"
$py -c 'import json,sys; p=json.load(sys.stdin)["plan"]; assert p["packages"], p' <<<"$out" 2>/dev/null || fail "no plan: ${out:0:300}"

echo "== a non-loopback address must come from the command line"
out="$(CORTEX_HTTP="0.0.0.0:$(free_port)" "$preload" run --model "$model" --socket "$tmp/x.sock" 2>&1)" && fail "0.0.0.0 from CORTEX_HTTP was accepted"
grep -q "not a loopback address" <<<"$out" || fail "no loopback message: $out"
out="$(CORTEX_HTTP="nonsense:port" "$preload" run --model "$model" --socket "$tmp/x.sock" 2>&1)" && fail "a bad CORTEX_HTTP was accepted"
grep -q "HTTP address" <<<"$out" || fail "no address message: $out"

echo "test_http: $fails failures"
[ "$fails" = 0 ]
