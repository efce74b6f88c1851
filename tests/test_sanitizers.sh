#!/usr/bin/env bash
# Cortex under the sanitizers (docs/RELIABILITY.md, "Sanitizers"): configures and builds this
# source twice more, instrumented with AddressSanitizer + UndefinedBehaviorSanitizer and with
# ThreadSanitizer (llama.cpp from the same prefix, not instrumented), runs tests in each tree,
# and fails on any report from any process: the tests, the daemons and CLIs they start, Python.
# The runtimes write their reports into a folder instead of stderr, so no test's check of a
# child's output is disturbed and a report from a daemon that a test only kills is still seen.
#
#   tests/test_sanitizers.sh SOURCE_DIR LLAMA_PREFIX WORK_DIR [MAIN_BUILD_DIR]
#
# Bounded mode (the default, CI): only what the chosen tests need is built; under ASan+UBSan run
# every unit test (the executables labelled unit in MAIN_BUILD_DIR's test list), in-process
# generation and the daemon; under TSan the daemon's and the library's concurrency tests.
# CORTEX_TEST_FULL=1: every target, and every unit, model and e2e test in both trees.
# CORTEX_SANITIZERS: the trees, "asan tsan" by default. CORTEX_SANITIZE_JOBS: build and test
# parallelism (default: the number of CPUs). CORTEX_SANITIZE_TESTS: a ctest -R expression that
# replaces the mode's tests (with CORTEX_TEST_FULL=1, to run a few again after a full run).
set -uo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 SOURCE_DIR LLAMA_PREFIX WORK_DIR [MAIN_BUILD_DIR]" >&2
    exit 2
fi
src="$(cd "$1" && pwd)"; prefix="$2"; work="$3"; main_build="${4:-}"
read -r -a kinds <<<"${CORTEX_SANITIZERS:-asan tsan}"
full="${CORTEX_TEST_FULL:-0}"
jobs="${CORTEX_SANITIZE_JOBS:-$(nproc 2>/dev/null || echo 2)}"
supp="$src/tests/sanitizers"
py=/usr/bin/python3
mkdir -p "$work"
for tool in ninja "$py"; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found"; echo "hint: scripts/setup.sh installs it"; exit 1; }
done

# Tests that do not exercise Cortex's C++ under a sanitizer, in either mode: the llama.cpp build
# script and the Debian package (shell and packaging), the fuzzers (a clang build of their own),
# and the soak test (an hour of the daemon paths that test_preload covers in minutes).
never='^(build_script|deb_package|fuzz.*|load_soak)$'

# Bounded mode, ASan+UBSan: the unit test executables, in-process generation (test_llm), model
# files good and corrupt (test_model_files), the daemon (test_preload: protocol, scheduler,
# server, client, faults), the package index and planner (test_interpreter), the example and
# socket activation; every test of these executables, whatever its name. Without MAIN_BUILD_DIR
# the unit executables are the ones listed here.
asan_unit_exes=(test_text_stream test_subprocess test_config test_catalog test_download test_ollama)
asan_exes=(test_llm test_model_files test_preload test_interpreter)
asan_scripts=(chat_example socket_activation)
asan_targets=(cortex cortex-bin cortex-model cortex-preload cortex-chat-example test-models)
# Bounded mode, TSan: every daemon test (concurrent clients, status and stop during requests,
# cancellation, reload under load, disconnects, faults, sampling helpers) and concurrent in-process
# models.
tsan_targets=(cortex cortex-preload test-models test_preload test_llm test_thread_team)
tsan_tests='^(Preload|PreloadFaults|PreloadProtocol|Concurrency|ThreadTeam)\.'

# The GoogleTest executables that hold tests labelled `unit` in the built tree $1.
unit_executables_of() {
    ctest --test-dir "$1" --show-only=json-v1 | "$py" -c '
import json, os, sys
tests_dir = os.path.join(sys.argv[1], "tests") + os.sep
exes = set()
for t in json.load(sys.stdin)["tests"]:
    labels = [v for p in t.get("properties", []) if p["name"] == "LABELS" for v in p["value"]]
    command = (t.get("command") or [""])[0]
    if "unit" in labels and command.startswith(tests_dir) and not command.endswith(".sh"):
        exes.add(os.path.basename(command))
print(" ".join(sorted(exes)))' "$(cd "$1" && pwd)"
}

# A ctest -R expression for every test of the executables $2 (the GoogleTest suites they hold)
# and the script tests $3, from the tree's own test list.
tests_of() {
    ctest --test-dir "$1" --show-only=json-v1 | "$py" -c '
import json, os, sys
exes, scripts = sys.argv[1].split(), sys.argv[2].split()
suites = set()
for t in json.load(sys.stdin)["tests"]:
    if os.path.basename((t.get("command") or [""])[0]) in exes:
        suites.add(t["name"].split(".")[0])
if not suites:
    sys.exit("none of " + " ".join(exes) + " has tests")
print("^(%s)\\.|^(%s)$" % ("|".join(sorted(suites)), "|".join(scripts)))' "$2" "$3"
}

# Builds tests/sanitizers/canary.cpp with the tree's compiler and flags, runs each of its bugs and
# checks that the report reached the folder: an empty folder means nothing only after that.
check_canaries() {
    local kind="$1" dir="$2" reports="$3" sanitize="$4" cxx check bug pattern
    cxx="$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$dir/CMakeCache.txt")"
    local flags=(-g -pthread -fsanitize="$sanitize" -fno-omit-frame-pointer)
    [[ "$sanitize" == *undefined* ]] && flags+=(-fno-sanitize-recover=undefined)
    "${cxx:-c++}" "${flags[@]}" "$supp/canary.cpp" -o "$dir/sanitizer-canary" ||
        { echo "FAIL: $kind: cannot build the canary"; return 1; }
    local checks=("heap:heap-buffer-overflow" "ub:__ubsan_handle_add_overflow")
    [ "$kind" = tsan ] && checks=("race:data race")
    for check in "${checks[@]}"; do
        bug="${check%%:*}"; pattern="${check#*:}"
        "$dir/sanitizer-canary" "$bug" >/dev/null 2>&1
        if ! grep -qs "$pattern" "$reports"/*; then
            echo "FAIL: $kind: the '$bug' canary left no report with '$pattern' in $reports"
            return 1
        fi
        rm -f "$reports"/*
    done
}

# The runtimes' options. Each writes "<prefix>.<pid>" into the report folder for a process that
# reports anything; halting on the first error keeps a report from being buried under its
# consequences.
export_options() {
    local reports="$1"
    # GCC's UBSan runtime is a library of its own beside ASan's, and prints to stderr whatever
    # its log_path says (that path goes to ASan's runtime instead). So a UB report aborts
    # (abort_on_error) and ASan, which handles SIGABRT (handle_abort), writes the stack through
    # the UBSan handler to the faulting line into the folder; any other abort is reported too.
    export ASAN_OPTIONS="log_path=$reports/asan:halt_on_error=1:handle_abort=1:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
    export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1:abort_on_error=1"
    # TSan's interceptors (memcpy, malloc, ...) check only calls from instrumented code. TSan
    # sees nothing else of libllama/ggml (not their atomics and spin barriers either), so checks
    # of their calls alone could only mislead, and they make a model load twice as slow; every
    # access of Cortex's own to a buffer it shares with them is still checked.
    export TSAN_OPTIONS="log_path=$reports/tsan:suppressions=$supp/tsan.supp:print_suppressions=0:second_deadlock_stack=1:halt_on_error=0:ignore_noninstrumented_modules=1"
}

run_kind() {
    local kind="$1" sanitize targets=() tests="" dir="$work/$1" reports="$work/$1-reports" t0=$SECONDS
    case "$kind" in
        asan)
            sanitize="address,undefined"
            local unit=("${asan_unit_exes[@]}")
            if [ -n "$main_build" ] && [ "$full" != 1 ]; then
                read -r -a unit <<<"$(unit_executables_of "$main_build")"
                [ ${#unit[@]} -gt 0 ] || { echo "FAIL: asan: no unit test executables in $main_build"; return 1; }
            fi
            targets=("${asan_targets[@]}" "${unit[@]}" "${asan_exes[@]}")
            ;;
        tsan) sanitize="thread"; targets=("${tsan_targets[@]}"); tests="$tsan_tests" ;;
        *) echo "FAIL: unknown sanitizer tree '$kind' (asan or tsan)"; return 1 ;;
    esac
    if [ "$full" = 1 ]; then
        targets=(all)
        tests="${CORTEX_SANITIZE_TESTS:-.}"
    fi

    # Configured once and kept: a second run rebuilds only what changed.
    if [ ! -f "$dir/build.ninja" ] || ! grep -q "^CORTEX_SANITIZE:STRING=$sanitize\$" "$dir/CMakeCache.txt" 2>/dev/null; then
        echo "== $kind: configuring $dir"
        cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Debug \
            -DCORTEX_SANITIZE="$sanitize" -DCORTEX_BUILD_BENCH=OFF >"$work/$kind-configure.log" 2>&1 ||
            { tail -30 "$work/$kind-configure.log"; echo "FAIL: $kind: configure"; return 1; }
    fi
    echo "== $kind: building ${targets[*]}"
    nice -n 5 cmake --build "$dir" -j "$jobs" --target "${targets[@]}" >"$work/$kind-build.log" 2>&1 ||
        { grep -A20 -m3 'FAILED\|error:' "$work/$kind-build.log" | head -80; echo "FAIL: $kind: build"; return 1; }
    local t1=$SECONDS
    if [ -z "$tests" ]; then
        tests="$(tests_of "$dir" "${unit[*]} ${asan_exes[*]}" "${asan_scripts[*]}")" || { echo "FAIL: $kind: no test list"; return 1; }
    fi

    rm -rf "$reports" && mkdir -p "$reports"
    export_options "$reports"
    check_canaries "$kind" "$dir" "$reports" "$sanitize" || return 1
    echo "== $kind: ctest -R '$tests'"
    local status=0
    ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 900 -R "$tests" -E "$never" || status=1
    unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS

    local n
    n="$(find "$reports" -type f | wc -l)"
    if [ "$n" -gt 0 ]; then
        for f in "$reports"/*; do
            echo "== $kind report: $f"
            head -c 20000 "$f"
        done
        echo "FAIL: $kind: $n sanitizer report(s) in $reports"
        status=1
    fi
    summary+=("$kind: built in $((t1 - t0)) s, tested in $((SECONDS - t1)) s, $n report(s), ctest $([ $status = 0 ] && echo passed || echo FAILED)")
    return $status
}

fails=0
summary=()
for kind in "${kinds[@]}"; do
    run_kind "$kind" || fails=$((fails + 1))
done
echo "sanitizers ($([ "$full" = 1 ] && echo full || echo bounded) mode, $SECONDS s):"
printf '  %s\n' "${summary[@]}"
exit $((fails > 0))
