#!/usr/bin/env bash
# The GPU run of docs/PERFORMANCE.md: CUDA build, model tests with every layer on the GPU, and
# the 7B benchmark against llama-bench of the same build.
#
#   bench/gpu.sh build   # llama.cpp for CUDA (CUDA_ARCHITECTURES, default 90) + Cortex
#   bench/gpu.sh test    # the model-labelled tests on the GPU build
#   bench/gpu.sh bench   # generate a qwen2.5-7b-shaped Q4_K_M model and compare with llama-bench
#   bench/gpu.sh preload # the preload daemon's benchmark on that model
# Extra CMake prefixes (a sysroot with GoogleTest and nlohmann-json) come from CORTEX_EXTRA_PREFIX.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=build/cuda
prefix="$(scripts/build_llamacpp.sh cuda --print-prefix)"
case "${1:-}" in
    build)
        # llama-server too: the daemon's throughput is compared with it.
        LLAMA_BUILD_SERVER=1 CUDA_ARCHITECTURES="${CUDA_ARCHITECTURES:-90}" \
            scripts/build_llamacpp.sh cuda --jobs "$(nproc)"
        cmake -S . -B "$build" -G Ninja "-DCMAKE_PREFIX_PATH=$prefix;${CORTEX_EXTRA_PREFIX:-}" >/dev/null
        cmake --build "$build"
        ;;
    test)
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
        ctest --test-dir "$build" -L model --output-on-failure -j 4
        ;;
    bench)
        models="$prefix/share/llama.cpp"
        mkdir -p build/bench-models
        m=build/bench-models/qwen2.5-7b-q4_k_m.gguf
        [ -f "$m" ] || "$build/cortex-make-test-model" --vocab "$models/models/ggml-vocab-qwen2.gguf" \
            --template "$models/templates/Qwen-Qwen2.5-7B-Instruct.jinja" --shape qwen2.5-7b --type q4_k_m --out "$m"
        ls -la "$m"
        "$build/bench/cortex-bench-llm" -m "$m" -ngl 99 -t "${BENCH_THREADS:-8}" --rounds "${BENCH_ROUNDS:-3}" -r "${BENCH_REPS:-5}"
        ;;
    preload)
        m=build/bench-models/qwen2.5-7b-q4_k_m.gguf
        # Which libraries a client process maps at start: with the GPU backend as a module, no CUDA.
        echo "libraries the one-shot client maps: $(ldd "$build/bench/cortex-bench-preload" | grep -c -E 'libcuda|libcublas|libcudart') CUDA ones"
        "$build/bench/cortex-bench-preload" "$m" "$build/cortex-preload" "$prefix/bin/llama-batched-bench" "${BENCH_THREADS:-8}" 99 \
            "$prefix/bin/llama-server"
        ;;
    *) echo "usage: bench/gpu.sh build|test|bench|preload" >&2; exit 2 ;;
esac
