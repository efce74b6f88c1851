#!/usr/bin/env bash
# Installs Cortex into a fresh prefix and builds the issue's C++ example against the installed
# headers and library only (pkg-config), then runs it on a model named qwen2.5-7b in the store.
set -euo pipefail
build_dir="$1"; example="$2"; model="$3"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build_dir" --prefix "$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
c++ "$example" -o "$tmp/example" $(pkg-config --cflags --libs cortex)
mkdir -p "$tmp/home/models"
cp "$model" "$tmp/home/models/qwen2.5-7b.gguf"
out="$(CORTEX_HOME="$tmp/home" LLAMACPP_MODEL=qwen2.5-7b "$tmp/example")"
grep -q "^Tokens/sec: [0-9]" <<<"$out" || { echo "no Tokens/sec line in: $out" >&2; exit 1; }
# Without a default model the quick_* call fails with the library's clear error, not a crash.
# The example does not catch it, so it ends in std::terminate's abort, which is no finding of a
# sanitizer build (tests/test_sanitizers.sh): its runtime is told not to report that abort.
if CORTEX_HOME="$tmp/home" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_abort=0" env -u LLAMACPP_MODEL "$tmp/example" 2>"$tmp/err"; then
    echo "expected a failure without LLAMACPP_MODEL" >&2; exit 1
fi
grep -q "LLAMACPP_MODEL is not set" "$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
echo "install test: 1 passed, 0 failed"
