#!/usr/bin/env bash
# Runs the whole test suite of an already set-up tree (scripts/setup.sh).
# Slow suites (label "slow") run in their bounded mode unless CORTEX_TEST_FULL=1.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${CORTEX_BUILD_DIR:-$repo_root/build/cortex}"
jobs="$(nproc 2>/dev/null || echo 2)"
exec ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" --timeout 900 "$@"
