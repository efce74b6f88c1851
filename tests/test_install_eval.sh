#!/usr/bin/env bash
# The planner's evaluation set (data/eval/install-requests.tsv) through the real `cortex` binary
# on this machine's apt index: index only, with apt's simulation, must stay at or above the
# measured figures (bench/bench_install_eval.py --floor); and through the model path, with a
# generated model (random weights) behind a real preload daemon, every answer must be a valid
# plan of real packages or "no confident match".
set -uo pipefail
repo="$1"; cortex="$2"; preload="$3"; model="$4"
py=/usr/bin/python3
tmp="$(mktemp -d)"
trap '"$preload" stop --socket "$tmp/d.sock" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
unset CORTEX_PROVIDER LLAMACPP_MODEL OLLAMA_MODEL OLLAMA_HOST CORTEX_PRELOAD CORTEX_PRELOAD_SOCKET XDG_RUNTIME_DIR
export CORTEX_HOME="$tmp/home" LLAMACPP_N_CTX=4096 LLAMACPP_N_THREADS=2
status=0
# Floors: the figures measured when the set was written (docs/PERFORMANCE.md), less a little.
$py "$repo/bench/bench_install_eval.py" "$cortex" --set "$repo/data/eval/install-requests.tsv" \
    --floor "${CORTEX_EVAL_FLOOR:-0.66,0.83,1,0.97}" || status=1
"$preload" start --socket "$tmp/d.sock" --model "$model" >/dev/null 2>&1 || { echo "cortex-preload start failed"; exit 1; }
CORTEX_PRELOAD=required CORTEX_PRELOAD_SOCKET="$tmp/d.sock" LLAMACPP_MODEL="$model" \
    $py "$repo/bench/bench_install_eval.py" "$cortex" --set "$repo/data/eval/install-requests.tsv" --model --choose-only || status=1
exit $status
