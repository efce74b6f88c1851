#!/usr/bin/python3
"""The planner's evaluation: every request of a set through the real `cortex` binary.

    bench_install_eval.py CORTEX [--set data/eval/install-requests.tsv] [--jobs 2] [--check]
                          [--model] [--json-out FILE]

Each row of the set (operation, request, acceptable packages, category) runs as
`cortex <operation> <request> --dry-run --json --no-model` on this machine's real apt index.
`acceptable` is groups separated by ',' (each must be planned) of alternatives separated by '|';
'-' means the request must get no plan. Printed: acceptable top pick %, recall of an acceptable
package among the top 10 candidates, confidently wrong plans (high confidence, nothing
acceptable), no-plan requests refused, and every miss. --check exits 1 below the targets.
--model drops --no-model (LLAMACPP_MODEL and friends choose the model) and checks only that every
answer is a valid plan of real packages or "no confident match".
"""
import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time

TARGETS = {"top_pick": 0.95, "recall10": 0.98, "confidently_wrong": 0, "refused": 1.0}
HIGH = 0.8  # kExecuteConfidence in src/interpreter/plan.h


def load_set(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[:3] != ["operation", "request", "acceptable"]:
            sys.exit(f"{path}: the header must start with operation, request, acceptable")
        for n, line in enumerate(f, start=2):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) < 3 or cols[0] not in ("install", "remove", "upgrade"):
                sys.exit(f"{path}:{n}: malformed row: {line!r}")
            groups = None if cols[2] == "-" else [set(g.split("|")) for g in cols[2].split(",")]
            rows.append({"line": n, "op": cols[0], "request": cols[1], "groups": groups,
                         "category": cols[3] if len(cols) > 3 else ""})
    return rows


def package_name(spec):
    for sep in "=/:":
        spec = spec.split(sep)[0] if not spec.startswith("/") else spec
    return spec


def run_one(cortex, row, use_model, choose_only=False):
    argv = [cortex, row["op"], row["request"], "--dry-run", "--json"] + (["--choose-only"] if choose_only else [])
    if not use_model:
        argv.append("--no-model")
    start = time.monotonic()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - start
    try:
        out = json.loads(p.stdout)
    except json.JSONDecodeError:
        out = {"error": {"code": "no_json", "message": (p.stdout + p.stderr)[-300:], "hint": ""}}
    return row, p.returncode, out, elapsed


def judge(row, status, out):
    """-> dict(planned, top_ok, recall_ok, high, refused, packages, candidates, why)."""
    plan = out.get("plan") if isinstance(out, dict) else None
    planned = status == 0 and plan is not None and not plan.get("no_confident_match")
    packages = [package_name(p) for p in plan.get("packages", [])] if planned else []
    candidates = [c["package"] for c in (plan or {}).get("candidates", [])][:10]
    confidence = plan.get("confidence", 0) if planned else 0
    r = {"planned": planned, "packages": packages, "candidates": candidates, "confidence": confidence,
         "high": planned and confidence >= HIGH, "method": (plan or {}).get("method", ""),
         "error": (out.get("error") or {}).get("message", "") if isinstance(out, dict) else ""}
    groups = row["groups"]
    if groups is None:
        r["refused"] = not planned
        r["top_ok"] = r["recall_ok"] = r["refused"]
        return r
    if len(groups) == 1:
        r["top_ok"] = planned and bool(packages) and packages[0] in groups[0]
    else:
        r["top_ok"] = planned and all(any(p in g for p in packages) for g in groups)
    seen = set(packages) | set(candidates)
    r["recall_ok"] = all(bool(g & seen) for g in groups)
    return r


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cortex")
    ap.add_argument("--set", default=os.path.join(here, "..", "data", "eval", "install-requests.tsv"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--check", action="store_true", help="exit 1 below the targets")
    ap.add_argument("--floor", metavar="TOP,RECALL,WRONG,REFUSED",
                    help="exit 1 below these figures instead (a regression guard, e.g. 0.65,0.84,2,0.97)")
    ap.add_argument("--model", action="store_true", help="plan through the configured model")
    ap.add_argument("--json-out")
    ap.add_argument("--choose-only", action="store_true",
                    help="judge the choice alone, without apt's simulation (fast; for development)")
    args = ap.parse_args()

    rows = load_set(args.set)
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for row, status, out, elapsed in pool.map(lambda r: run_one(args.cortex, r, args.model, args.choose_only), rows):
            results.append((row, status, out, elapsed, judge(row, status, out)))

    if args.model:
        # Random weights choose nothing sensible; what must hold is that every answer is a plan of
        # real packages (apt simulated it) or an honest "no confident match" / error.
        bad = []
        for row, status, out, _, j in results:
            plan = out.get("plan") if isinstance(out, dict) else None
            if status == 0 and (plan is None or plan.get("no_confident_match") or not plan.get("commands") and
                                not plan.get("already_installed") and not plan.get("not_installed")):
                bad.append((row, "exit 0 without a plan"))
            elif status != 0 and not (isinstance(out, dict) and ("error" in out or (plan or {}).get("no_confident_match"))):
                bad.append((row, f"exit {status} without an error or 'no confident match'"))
        models = sum(1 for r in results if r[4]["method"] == "model")
        print(f"model path: {len(results)} requests, {models} chosen by the model, {len(bad)} invalid answers")
        for row, why in bad:
            print(f"  INVALID line {row['line']}: {row['op']} {row['request']!r}: {why}")
        print(f"{len(results) - len(bad)} passed, {len(bad)} failed")
        return 1 if bad else 0

    plan_rows = [r for r in results if r[0]["groups"] is not None]
    noplan_rows = [r for r in results if r[0]["groups"] is None]
    top = sum(r[4]["top_ok"] for r in plan_rows) / max(1, len(plan_rows))
    recall = sum(r[4]["recall_ok"] for r in plan_rows) / max(1, len(plan_rows))
    wrong = [r for r in plan_rows if r[4]["high"] and not r[4]["top_ok"]] + \
            [r for r in noplan_rows if r[4]["high"]]
    refused = sum(r[4]["refused"] for r in noplan_rows) / max(1, len(noplan_rows))
    times = sorted(r[3] for r in results)

    print(f"install evaluation: {len(results)} requests ({len(plan_rows)} with a right answer, "
          f"{len(noplan_rows)} that must get no plan), {os.path.relpath(args.set)}")
    print(f"  acceptable top pick      {100 * top:6.1f} %   (target >= {100 * TARGETS['top_pick']:.0f} %)")
    print(f"  recall@10                {recall:8.3f}   (target >= {TARGETS['recall10']:.2f})")
    print(f"  confidently wrong        {len(wrong):6d}     (target {TARGETS['confidently_wrong']})")
    print(f"  no-plan requests refused {sum(r[4]['refused'] for r in noplan_rows):3d} of {len(noplan_rows)}")
    print(f"  cortex process time      p50 {1000 * statistics.median(times):.0f} ms, "
          f"p90 {1000 * times[int(0.9 * (len(times) - 1))]:.0f} ms (apt's simulation included)")
    by_cat = {}
    for row, _, _, _, j in results:
        c = by_cat.setdefault(row["category"], [0, 0])
        c[0] += j["top_ok"]
        c[1] += 1
    print("  by category: " + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(by_cat.items())))
    print("misses:")
    for row, status, out, _, j in results:
        if j["top_ok"] and not (j["high"] and not j["top_ok"]):
            continue
        want = "-" if row["groups"] is None else ",".join("|".join(sorted(g)) for g in row["groups"])
        got = (",".join(j["packages"]) + f" ({j['method']}, {j['confidence']:.2f})") if j["planned"] else \
            ("no confident match" if (out.get("plan") or {}).get("no_confident_match") else "error: " + j["error"][:90])
        flag = "CONFIDENTLY WRONG " if (j["high"] and not j["top_ok"]) else ""
        print(f"  {flag}line {row['line']} {row['op']} {row['request']!r}: got {got}; want {want[:80]}; "
              f"top10 {','.join(j['candidates'][:10])[:120]}")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump([{"line": r[0]["line"], "request": r[0]["request"], "status": r[1], "judgement": r[4]}
                       for r in results], f, indent=1)
    ok = (top >= TARGETS["top_pick"] and recall >= TARGETS["recall10"] and
          len(wrong) <= TARGETS["confidently_wrong"] and refused >= TARGETS["refused"])
    print("targets: " + ("all met" if ok else "NOT met"))
    passed = sum(1 for r in results if r[4]["top_ok"])
    print(f"{passed} passed, {len(results) - passed} failed")
    if args.check and not ok:
        print("below target", file=sys.stderr)
        return 1
    if args.floor:
        f_top, f_recall, f_wrong, f_refused = (float(x) for x in args.floor.split(","))
        if top < f_top or recall < f_recall or len(wrong) > f_wrong or refused < f_refused:
            print(f"regression: below the floor {args.floor}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
