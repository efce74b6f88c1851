#!/usr/bin/python3
"""bench_python.py: what Python's cortex.llm adds to a 1-token completion over C++ on the same model.

One process, one loaded Model: rounds alternate between N calls of Model::complete timed in C++
(cortex.llm._native._bench_complete, no Python between the calls) and N calls of
model.complete() timed in Python, so that machine noise hits both alike. The added overhead is
Python's p50 (p99) minus C++'s p50 (p99) over all calls.

    PYTHONPATH=build/cortex/python /usr/bin/python3 bench/bench_python.py \
        --model build/cortex/test-models/tiny-qwen2.gguf [--preload build/cortex/cortex-preload]

--preload also measures the same pair on a Model that runs on a real daemon (cortex-preload run,
started here and stopped at the end). --max-overhead-ms fails the run (exit 1) above that p50.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time


def percentile(values, p):
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def measure(llm, native, model, rounds, per_round, prompt):
    config = llm.GenerationConfig(max_tokens=1, temperature=0)
    for _ in range(5):  # warm the KV cache, the caches, the allocator
        model.complete(prompt, config)
    native._bench_complete(model, prompt, config, 5)
    cpp, py = [], []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        cpp += native._bench_complete(model, prompt, config, per_round)
        for _ in range(per_round):
            t0 = clock()
            model.complete(prompt, config)
            py.append(clock() - t0)
    ms = lambda v: v / 1e6  # noqa: E731
    row = {
        "calls": len(py),
        "cpp_p50_ms": ms(percentile(cpp, 50)),
        "cpp_p99_ms": ms(percentile(cpp, 99)),
        "python_p50_ms": ms(percentile(py, 50)),
        "python_p99_ms": ms(percentile(py, 99)),
    }
    row["added_p50_ms"] = row["python_p50_ms"] - row["cpp_p50_ms"]
    row["added_p99_ms"] = row["python_p99_ms"] - row["cpp_p99_ms"]
    return row


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a .gguf path")
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1, help="n_threads of the model (0 = physical cores)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per-round", type=int, default=25)
    ap.add_argument("--prompt", default="Install nginx")
    ap.add_argument("--preload", metavar="CORTEX_PRELOAD_BIN", help="also measure through a daemon of this binary")
    ap.add_argument("--max-overhead-ms", type=float, help="exit 1 when the in-process added p50 is above this")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    home = tempfile.mkdtemp(prefix="cortex-bench-python-")
    os.environ.update(CORTEX_HOME=home, XDG_RUNTIME_DIR=home, CORTEX_PRELOAD="off", LLAMACPP_N_CTX=str(args.n_ctx),
                      LLAMACPP_N_THREADS=str(args.threads))
    import cortex.llm as llm
    from cortex.llm import _native as native

    config = llm.ModelConfig(n_ctx=args.n_ctx, n_threads=args.threads)
    results = {}
    model = llm.Model.load(args.model, config)
    results["in-process"] = measure(llm, native, model, args.rounds, args.per_round, args.prompt)
    del model

    if args.preload:
        sock = os.path.join(home, "preload.sock")
        daemon = subprocess.Popen([args.preload, "run", "--socket", sock, "--model", args.model, "--parallel", "1"],
                                  stderr=subprocess.DEVNULL)
        try:
            for _ in range(500):
                if os.path.exists(sock):
                    break
                time.sleep(0.02)
            time.sleep(0.2)
            os.environ.update(CORTEX_PRELOAD="required", CORTEX_PRELOAD_SOCKET=sock)
            remote = llm.ModelManager().load_model(args.model, config)
            results["daemon"] = measure(llm, native, remote, args.rounds, args.per_round, args.prompt)
            del remote
        finally:
            daemon.terminate()
            daemon.wait()

    info = {"machine": f"{os.cpu_count()} cores ({cpu_name()})", "python": sys.version.split()[0],
            "model": os.path.basename(args.model), "n_ctx": args.n_ctx, "threads": args.threads, "results": results}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"{info['machine']}, Python {info['python']}, {info['model']}, n_ctx {args.n_ctx}, "
              f"{args.threads} thread(s), 1-token completions of a cached prompt")
        print(f"{'path':<11} {'calls':>6} {'C++ p50':>9} {'C++ p99':>9} {'Py p50':>9} {'Py p99':>9} "
              f"{'added p50':>10} {'added p99':>10}  (ms)")
        for name, r in results.items():
            print(f"{name:<11} {r['calls']:>6} {r['cpp_p50_ms']:>9.3f} {r['cpp_p99_ms']:>9.3f} "
                  f"{r['python_p50_ms']:>9.3f} {r['python_p99_ms']:>9.3f} {r['added_p50_ms']:>+10.3f} "
                  f"{r['added_p99_ms']:>+10.3f}")
    if args.max_overhead_ms is not None and results["in-process"]["added_p50_ms"] > args.max_overhead_ms:
        print(f"error: added p50 {results['in-process']['added_p50_ms']:.3f} ms > {args.max_overhead_ms} ms",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
