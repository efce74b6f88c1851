#!/usr/bin/env bash
# End-to-end checks of scripts/build_llamacpp.sh: help, prefix, fast failures with the missing
# tool named, the list of source places tried, and idempotence of a finished build.
set -uo pipefail
script="$1"          # scripts/build_llamacpp.sh
backend_prefix="$2"  # the prefix the current build uses
fails=0
pass=0
check() {  # check NAME CONDITION...
    local name="$1"; shift
    if "$@"; then pass=$((pass + 1)); else echo "FAIL: $name" >&2; fails=$((fails + 1)); fi
}
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

out="$("$script" --help)"; rc=$?
check "--help exits 0" test $rc -eq 0
check "--help lists backends" grep -q "auto   CUDA" <<<"$out"
check "--help names the prefix option" grep -q -- "--print-prefix" <<<"$out"

out="$("$script" cpu --print-prefix)"
check "--print-prefix prints the cpu prefix" test "$out" = "$backend_prefix"

out="$("$script" vulkan 2>&1)"; rc=$?
check "unknown backend fails" test $rc -ne 0
check "unknown backend says so" grep -q "unknown argument 'vulkan'" <<<"$out"

# A backend without its toolkit fails at once, naming the tool and how to get it.
start=$SECONDS
out="$(PATH=/usr/bin:/bin ROCM_PATH=/nonexistent CORTEX_LLAMA_BUILD_DIR="$tmp/b" "$script" rocm 2>&1)"; rc=$?
check "rocm without hipcc fails" test $rc -ne 0
check "rocm error names hipcc" grep -q "hipcc was not found" <<<"$out"
check "rocm error has a hint" grep -q "^hint:" <<<"$out"
check "rocm fails fast" test $((SECONDS - start)) -lt 5
check "rocm builds nothing" test ! -d "$tmp/b/rocm/build"
if [ "$(uname -s)" != Darwin ]; then
    out="$(CORTEX_LLAMA_BUILD_DIR="$tmp/b" "$script" metal 2>&1)"; rc=$?
    check "metal off macOS fails" test $rc -ne 0
    check "metal error says why" grep -q "needs macOS on Apple Silicon" <<<"$out"
fi
if [ ! -e /usr/local/cuda/bin/nvcc ] && [ -z "${CUDA_HOME:-}" ]; then
    out="$(PATH=/usr/bin:/bin CORTEX_LLAMA_BUILD_DIR="$tmp/b" "$script" cuda 2>&1)"; rc=$?
    check "cuda without nvcc fails" test $rc -ne 0
    check "cuda error names nvcc" grep -q "nvcc was not found" <<<"$out"
fi

# No source anywhere: the error lists every place tried, in order.
mkdir -p "$tmp/repo/scripts"
cp "$script" "$tmp/repo/scripts/"
out="$(LLAMA_CPP_GIT_URL="file://$tmp/no-such-repo" CORTEX_LLAMA_BUILD_DIR="$tmp/b" "$tmp/repo/scripts/build_llamacpp.sh" cpu 2>&1)"; rc=$?
check "no source fails" test $rc -ne 0
check "no source lists the tarball" grep -q "$tmp/repo/../shared/third_party/llama.cpp-v0.5.0.tar.xz" <<<"$out"
check "no source lists git" grep -q "git clone --depth 1 --branch v0.5.0" <<<"$out"
out="$(LLAMA_CPP_SOURCE="$tmp/nothing-here" CORTEX_LLAMA_BUILD_DIR="$tmp/b" "$script" cpu 2>&1)"; rc=$?
check "bad LLAMA_CPP_SOURCE fails" test $rc -ne 0
check "bad LLAMA_CPP_SOURCE is named" grep -q "LLAMA_CPP_SOURCE=$tmp/nothing-here is neither" <<<"$out"
printf 'not a tarball' >"$tmp/bad.tar.xz"
out="$(LLAMA_CPP_SOURCE="$tmp/bad.tar.xz" CORTEX_LLAMA_BUILD_DIR="$tmp/b" "$script" cpu 2>&1)"; rc=$?
check "corrupt tarball fails" test $rc -ne 0
check "corrupt tarball is named" grep -q "could not unpack $tmp/bad.tar.xz" <<<"$out"

# A second run of the finished build does nothing, in seconds.
start=$SECONDS
out="$("$script" cpu 2>&1)"; rc=$?
check "rebuild succeeds" test $rc -eq 0
check "rebuild is a no-op" grep -q "is up to date" <<<"$out"
check "rebuild takes seconds" test $((SECONDS - start)) -lt 10
out="$("$script" cpu 2>/dev/null)"
check "stdout is the prefix alone, for \$(...)" test "$out" = "$backend_prefix"
check "find_package files installed" test -f "$backend_prefix/lib/cmake/llama/llama-config.cmake"
check "common headers installed" test -f "$backend_prefix/include/llama-common/chat.h"
check "llama-bench installed and runs" bash -c "\"$backend_prefix/bin/llama-bench\" --help >/dev/null"

echo "$pass passed, $fails failed"
test $fails -eq 0
