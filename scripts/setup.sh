#!/usr/bin/env bash
# Sets up everything Cortex needs on Debian 12 and builds it: Debian packages, the pinned
# llama.cpp for this machine's hardware, the Cortex library, tools, tests and test models.
# Safe to run again: each step skips what is already done.
#
#   scripts/setup.sh [auto|cpu|cuda|rocm|metal]     (default: $CORTEX_BACKEND or auto)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
backend="${1:-${CORTEX_BACKEND:-auto}}"
build_dir="${CORTEX_BUILD_DIR:-$repo_root/build/cortex}"

packages=(cmake ninja-build g++ pkg-config git xz-utils ca-certificates ccache
          libgtest-dev libgmock-dev nlohmann-json3-dev libcli11-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev libcpp-httplib-dev curl systemd pybind11-dev python3-dev python3-pytest
          dpkg-dev
          clang libclang-rt-dev)  # clang's libFuzzer, for the fuzz test (tests/test_fuzz.sh)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "error: missing Debian packages: ${missing[*]}" >&2
        echo "hint: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# `cortex` plans from apt's package lists; a fresh container may have none yet.
if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: downloading apt's package lists (apt-get update)" >&2
        apt-get update -q >/dev/null
    else
        echo "setup: note: apt has no package lists; cortex needs them: sudo apt-get update" >&2
    fi
fi

prefix="$("$repo_root/scripts/build_llamacpp.sh" "$backend")"

if [ ! -f "$build_dir/build.ninja" ] || ! grep -q "CMAKE_PREFIX_PATH:UNINITIALIZED=$prefix\$" "$build_dir/CMakeCache.txt" 2>/dev/null; then
    cmake -S "$repo_root" -B "$build_dir" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
fi
cmake --build "$build_dir"
echo "setup: built into $build_dir (llama.cpp from $prefix)" >&2
