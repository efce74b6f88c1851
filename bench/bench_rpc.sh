#!/usr/bin/env bash
# Loopback RPC split vs local (issue #9, docs/PERFORMANCE.md): what llama.cpp's RPC backend
# costs on one machine. Two ggml-rpc-server processes on 127.0.0.1 (CPU backend) get half the
# layers each; the same model then runs locally. Each run is Cortex against llama-bench of the
# same build with the same split, so the table shows both the RPC overhead and Cortex's ratio.
#
#   bench/bench_rpc.sh BUILD_DIR [MODEL]   (default model: a generated qwen2.5-0.5b Q4_K_M)
# BENCH_THREADS (default 2): threads of the local run and of each server; BENCH_ROUNDS, BENCH_REPS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build="${1:?usage: bench/bench_rpc.sh BUILD_DIR [MODEL]}"
prefix="$(grep -m1 '^llama_DIR:' "$build/CMakeCache.txt" | cut -d= -f2)/../../.."
server="$prefix/bin/ggml-rpc-server"
[ -x "$server" ] || { echo "error: $server not found; hint: scripts/build_llamacpp.sh builds it unless LLAMA_RPC=0" >&2; exit 1; }
threads="${BENCH_THREADS:-2}"
model="${2:-build/bench-models/qwen2.5-0.5b-q4_k_m.gguf}"
if [ ! -f "$model" ]; then
    mkdir -p "$(dirname "$model")"
    "$build/cortex-make-test-model" --vocab "$prefix/share/llama.cpp/models/ggml-vocab-qwen2.gguf" \
        --shape qwen2.5-0.5b --type q4_k_m --out "$model" >/dev/null
fi
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
ports=(50711 50712)
for port in "${ports[@]}"; do
    "$server" -H 127.0.0.1 -p "$port" -t "$threads" >/dev/null 2>&1 &
    pids+=($!)
done
sleep 1
common=(-m "$model" -t "$threads" -p "${BENCH_PP:-128}" -n "${BENCH_TG:-64}" --rounds "${BENCH_ROUNDS:-3}" -r "${BENCH_REPS:-3}")
echo "== local (CPU, $threads threads)"
"$build/bench/cortex-bench-llm" "${common[@]}"
echo "== RPC split over 127.0.0.1:${ports[0]} and 127.0.0.1:${ports[1]} (layer, 1:1; $threads threads each)"
"$build/bench/cortex-bench-llm" "${common[@]}" --split-mode layer --tensor-split 1,1 --rpc "127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}"
