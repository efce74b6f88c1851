#!/usr/bin/env bash
# End-to-end checks of the binaries: the test-model generator is deterministic and rejects bad
# arguments; libllama's log stays quiet unless CORTEX_LOG_LEVEL asks for it.
set -uo pipefail
gen="$1"; vocab_dir="$2"; chat="$3"; model="$4"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
pass=0; fails=0
check() { local name="$1"; shift; if "$@"; then pass=$((pass + 1)); else echo "FAIL: $name" >&2; fails=$((fails + 1)); fi; }

v="$vocab_dir/ggml-vocab-llama-spm.gguf"
"$gen" --vocab "$v" --shape tiny-llama --type q8_0 --seed 7 --out "$tmp/a.gguf" >/dev/null
"$gen" --vocab "$v" --shape tiny-llama --type q8_0 --seed 7 --out "$tmp/b.gguf" >/dev/null --threads 1
"$gen" --vocab "$v" --shape tiny-llama --type q8_0 --seed 8 --out "$tmp/c.gguf" >/dev/null
check "same seed, same bytes (any thread count)" cmp -s "$tmp/a.gguf" "$tmp/b.gguf"
check "other seed, other bytes" bash -c "! cmp -s '$tmp/a.gguf' '$tmp/c.gguf'"
check "no temporary file left" bash -c "! ls '$tmp'/*.tmp 2>/dev/null"

out="$("$gen" --vocab "$v" --shape huge --out "$tmp/x.gguf" 2>&1)"; rc=$?
check "unknown shape fails" test $rc -ne 0
check "unknown shape is named" grep -q "unknown shape 'huge'" <<<"$out"
out="$("$gen" --vocab "$tmp/missing.gguf" --out "$tmp/x.gguf" 2>&1)"; rc=$?
check "missing vocab fails" test $rc -ne 0
check "missing vocab is named" grep -q "cannot read vocab file" <<<"$out"
check "nothing written on failure" test ! -e "$tmp/x.gguf"

"$chat" "$model" "hi" >"$tmp/out" 2>"$tmp/err"
check "chat example works" grep -q "^Tokens/sec: " "$tmp/out"
check "log quiet by default" test ! -s "$tmp/err"
CORTEX_LOG_LEVEL=info "$chat" "$model" "hi" >/dev/null 2>"$tmp/err"
check "CORTEX_LOG_LEVEL=info shows libllama's log" grep -q "llama_model_loader" "$tmp/err"
out="$("$chat" /nonexistent.gguf 2>&1)"; rc=$?
check "missing model: exit 1" test $rc -eq 1
check "missing model: error and hint" bash -c "grep -q '^error: ' <<<\"\$0\" && grep -q '^hint: ' <<<\"\$0\"" "$out"

echo "$pass passed, $fails failed"
test $fails -eq 0
