#!/usr/bin/env bash
# Socket activation as systemd does it (systemd-socket-activate passes the listening socket as
# fd 3): the first connection starts cortex-preload and is answered once the model is loaded.
set -uo pipefail
preload="$1"; model="$2"
command -v systemd-socket-activate >/dev/null || { echo "systemd-socket-activate missing: apt-get install systemd"; exit 1; }
tmp="$(mktemp -d)"
mkdir -p "$tmp/models" && cp "$model" "$tmp/models/tiny.gguf"
export CORTEX_HOME="$tmp" LLAMACPP_MODEL=tiny LLAMACPP_N_CTX=512
systemd-socket-activate -E CORTEX_HOME -E LLAMACPP_MODEL -E LLAMACPP_N_CTX -l "$tmp/act.sock" \
    "$preload" run --socket "$tmp/act.sock" >"$tmp/log" 2>&1 &
activator=$!
trap 'kill $activator 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do [ -S "$tmp/act.sock" ] && break; sleep 0.1; done
fails=0
out="$("$preload" status --json --socket "$tmp/act.sock")" || { echo "FAIL: status through the activation socket"; cat "$tmp/log"; fails=1; }
grep -q '"running": true' <<<"$out" || { echo "FAIL: not running: $out"; fails=1; }
grep -q "Execing" "$tmp/log" || { echo "FAIL: the daemon was not started by the connection"; fails=1; }
"$preload" stop --socket "$tmp/act.sock" >/dev/null || fails=1
[ -S "$tmp/act.sock" ] || { echo "FAIL: the daemon removed the socket systemd owns"; fails=1; }
echo "socket activation: $((fails == 0 ? 1 : 0)) passed, $fails failed"
exit $fails
