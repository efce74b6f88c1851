#!/usr/bin/env bash
# The 2-GPU run of issue #9 (docs/PERFORMANCE.md, "Multi-GPU and RPC"): a generated
# qwen2.5-14b-shaped Q4_K_M model split by layer over two local GPUs, tokens/second through
# Cortex against llama-bench of the same build with the same split (-sm layer), then the same
# model on one GPU. Needs the CUDA toolkit and at least two NVIDIA GPUs.
#
#   bench/multi_gpu.sh          # build (CUDA, like bench/gpu.sh build) + model + both runs
#   bench/multi_gpu.sh bench    # the runs only (after a build)
# CUDA_ARCHITECTURES (default 90), BENCH_THREADS (8), BENCH_ROUNDS (3), BENCH_REPS (5),
# BENCH_MIN_RATIO (0.97: the run fails when Cortex is slower than that against llama-bench).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=build/cuda
prefix="$(scripts/build_llamacpp.sh cuda --print-prefix)"
if [ "${1:-all}" = all ]; then
    CUDA_ARCHITECTURES="${CUDA_ARCHITECTURES:-90}" scripts/build_llamacpp.sh cuda --jobs "$(nproc)"
    cmake -S . -B "$build" -G Ninja "-DCMAKE_PREFIX_PATH=$prefix;${CORTEX_EXTRA_PREFIX:-}" >/dev/null
    cmake --build "$build" --target cortex-make-test-model cortex-bench-llm
fi
n_gpus="$(nvidia-smi -L | grep -c '^GPU ' || true)"
[ "$n_gpus" -ge 2 ] || { echo "error: $n_gpus NVIDIA GPU(s) seen; this benchmark needs 2" >&2; exit 1; }
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader

models="$prefix/share/llama.cpp"
m=build/bench-models/qwen2.5-14b-q4_k_m.gguf
mkdir -p build/bench-models
[ -f "$m" ] || "$build/cortex-make-test-model" --vocab "$models/models/ggml-vocab-qwen2.gguf" \
    --template "$models/templates/Qwen-Qwen2.5-7B-Instruct.jinja" --shape qwen2.5-14b --type q4_k_m --out "$m"
ls -la "$m"
common=(-m "$m" -ngl 99 -t "${BENCH_THREADS:-8}" --rounds "${BENCH_ROUNDS:-3}" -r "${BENCH_REPS:-5}" --json)
echo "== 2 GPUs, split by layer (Cortex vs llama-bench -sm layer)"
two="$(CUDA_VISIBLE_DEVICES=0,1 "$build/bench/cortex-bench-llm" "${common[@]}" --split-mode layer)"
echo "$two"
echo "== 1 GPU (CUDA_VISIBLE_DEVICES=0, -sm none)"
one="$(CUDA_VISIBLE_DEVICES=0 "$build/bench/cortex-bench-llm" "${common[@]}" --split-mode none)"
echo "$one"
python3 - "$two" "$one" "${BENCH_MIN_RATIO:-0.97}" <<'PY'
import json, sys
two, one, floor = json.loads(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
print(f"{'':22} {'pp t/s':>10} {'tg t/s':>10}")
for name, r in (("2 GPUs cortex", two), ("2 GPUs llama-bench", two), ("1 GPU cortex", one), ("1 GPU llama-bench", one)):
    key = "cortex" if "cortex" in name else "llama_bench"
    print(f"{name:22} {r[key + '_pp']:10.1f} {r[key + '_tg']:10.1f}")
print(f"cortex/llama-bench, 2 GPUs: pp {two['ratio_pp']:.3f}, tg {two['ratio_tg']:.3f} (required >= {floor})")
print(f"2 GPUs / 1 GPU through Cortex: pp {two['cortex_pp'] / one['cortex_pp']:.2f}x, tg {two['cortex_tg'] / one['cortex_tg']:.2f}x")
sys.exit(0 if min(two["ratio_pp"], two["ratio_tg"]) >= floor else 1)
PY
