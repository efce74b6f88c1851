#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang in a build of their own, then runs each one
# over a copy of its seed corpus (the repository's corpus is never written). Fails on any crash,
# sanitizer report, leak or timeout, and prints the reproducer.
#
#   tests/test_fuzz.sh SOURCE_DIR FUZZ_BUILD_DIR LLAMA_PREFIX
#
# CORTEX_FUZZ_SECONDS: time per target (default 30; 600 with CORTEX_TEST_FULL=1).
# CORTEX_FUZZ_JOBS: targets run at once (default 2). CORTEX_FUZZ_TARGETS: a subset, e.g. "gguf dotenv".
set -euo pipefail

src="$1"
build="$2"
prefix="$3"
seconds="${CORTEX_FUZZ_SECONDS:-$([ "${CORTEX_TEST_FULL:-0}" = 1 ] && echo 600 || echo 30)}"
jobs="${CORTEX_FUZZ_JOBS:-2}"

for tool in clang clang++; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found (Debian: apt-get install clang libclang-rt-dev)" >&2; exit 1; }
done

# UBSan's reports without a stack trace name only the header line (nlohmann's conversions).
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

t0=$(date +%s)
if [ ! -f "$build/build.ninja" ]; then
    CC=clang CXX=clang++ cmake -S "$src" -B "$build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCORTEX_BUILD_FUZZERS=ON >/dev/null
fi
cmake --build "$build" >"$build/build.log" 2>&1 || { tail -40 "$build/build.log"; exit 1; }
echo "fuzz: built in $(($(date +%s) - t0)) s"

targets="${CORTEX_FUZZ_TARGETS:-$(cd "$src/fuzz/corpus" && ls)}"
runs="$build/runs"
rm -rf "$runs"
mkdir -p "$runs"

# One target: its corpus copied, libFuzzer for $seconds, artifacts (crash-*, leak-*, timeout-*,
# oom-*) kept beside its log.
run_target() {
    local t="$1" dir="$runs/$1"
    mkdir -p "$dir"
    cp -r "$src/fuzz/corpus/$t" "$dir/corpus"
    local dict=()
    [ -f "$src/fuzz/dict/$t.dict" ] && dict=(-dict="$src/fuzz/dict/$t.dict")
    # -timeout: one input may take 10 s at most; -rss_limit_mb: a parser's memory is bounded.
    local rc=0
    "$build/fuzz/fuzz_$t" "$dir/corpus" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$dir/" >"$dir/log" 2>&1 || rc=$?
    echo "$rc" >"$dir/rc"
}

failed=0
report() {
    local t="$1" rc="$2" dir="$runs/$1"
    local stats execs
    stats=$(grep -E '^#[0-9]+' "$dir/log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+' || true)
    execs=$(grep -oE 'number_of_executed_units: [0-9]+' "$dir/log" | grep -oE '[0-9]+' || echo "?")
    if [ "$rc" = 0 ]; then
        echo "fuzz: $t: ok, $execs runs in ${seconds} s, $stats"
        return
    fi
    failed=1
    echo "fuzz: $t: FAILED (exit $rc); its log: $dir/log"
    # The report itself: from the first sanitizer, libFuzzer or invariant line on.
    awk '/==[0-9]+==ERROR|runtime error|^fuzz: |ERROR: libFuzzer/ { p = 1 } p && n < 40 { print; n++ }' "$dir/log"
    for a in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-* "$dir"/slow-unit-*; do
        [ -f "$a" ] || continue
        echo "reproducer: $a ($(stat -c %s "$a") bytes); run again: $build/fuzz/fuzz_$t $a"
        head -c 256 "$a" | od -An -c
    done
}

for t in $targets; do
    [ -x "$build/fuzz/fuzz_$t" ] || { echo "fuzz: no target fuzz_$t"; exit 1; }
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    run_target "$t" &
done
wait
for t in $targets; do report "$t" "$(cat "$runs/$t/rc")"; done
echo "fuzz: $(wc -w <<<"$targets") targets, $seconds s each, $jobs at a time; $(($(date +%s) - t0)) s in all"
exit $failed
