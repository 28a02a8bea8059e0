#!/usr/bin/env python
"""Speed of this checkout against another one (e.g. an older commit), measured in alternation.

    git worktree add /tmp/baseline <commit>
    python tools/compare_checkouts.py --baseline /tmp/baseline --rounds 3 --variant bf16 \\
        --config-file configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py -- --train-batch 1 --frame 512 1024
    python tools/compare_checkouts.py --baseline /tmp/baseline --rounds 2 --command tools/run_demo.py

Benchmark mode (default) runs this checkout's tools/benchmark.py once per checkout and round,
alternating (baseline, this, baseline, this, ...), each process importing the package of its
checkout (PYTHONPATH) and reading the config of its checkout; the same harness times both. It
reports, per measure (training step, whole-image and sliding-window inference), the median over
the rounds of each run's median and the baseline / this ratio, so slow drift of a shared machine
cancels out. ``--command`` mode times a whole script (e.g. the demo, end to end) the same way.
Arguments after ``--`` go to benchmark.py (``--train-batch``, ``--frame``, config overrides).
"""

import vltseg_d2  # noqa: F401  (first: it silences detectron2's import-time torch.jit warnings)

# isort: split

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from vltseg_d2.config import tool_parser
from vltseg_d2.utils.atomic import write_text_atomic

HERE = Path(__file__).resolve().parents[1]
MEASURES = {
    "train step": "train_step_s",
    "inference whole": "inference_whole_ms",
    "inference slide": "inference_slide_ms",
}


def run_in(checkout: Path, args, log) -> float:
    """Run ``args`` with this interpreter in ``checkout`` importing its package; returns wall seconds."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    start = time.perf_counter()
    with open(log, "w") as out:
        result = subprocess.run([sys.executable, *args], cwd=checkout, env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} failed in {checkout} (exit {result.returncode}); its output: {log}")
    return time.perf_counter() - start


def main(argv=None):
    parser = tool_parser(__doc__)
    parser.add_argument("--baseline", required=True, type=Path, help="the other checkout (a git worktree)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each checkout, in alternation")
    parser.add_argument("--command", default=None, help="a script (and arguments) to time end to end instead")
    parser.add_argument("--config-file", help="benchmark mode: the config (path inside each checkout)")
    parser.add_argument("--variant", default="fp32", help="precision variant of this checkout (fp32, bf16)")
    parser.add_argument("--baseline-variant", default="fp32", help="precision variant of the baseline")
    parser.add_argument("--iters", type=int, default=3, help="benchmark repeats per run")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repeats per run")
    parser.add_argument("--output", default=None, help="JSON file to write")
    parser.add_argument("benchmark_args", nargs=argparse.REMAINDER, help="after --: passed to benchmark.py")
    args = parser.parse_args(argv)
    extra = [a for a in args.benchmark_args if a != "--"]
    baseline = args.baseline.resolve()
    if not (baseline / "vltseg_d2").is_dir():
        parser.error(f"--baseline {baseline} is not a vltseg_d2 checkout (no vltseg_d2/ in it)")
    if args.command is None and not args.config_file:
        parser.error("give --config-file (benchmark mode) or --command")
    sides = {"baseline": (baseline, args.baseline_variant), "this": (HERE, args.variant)}
    logs = Path(tempfile.mkdtemp(prefix="compare_checkouts_"))
    runs = {side: [] for side in sides}
    for r in range(args.rounds):
        for side, (checkout, variant) in sides.items():
            log = logs / f"{side}_{r}.log"
            if args.command:
                runs[side].append({"wall_s": run_in(checkout, args.command.split(), log)})
            else:
                out = logs / f"{side}_{r}.json"
                bench = [HERE / "tools" / "benchmark.py", "--config-file", args.config_file, "--variants", variant]
                bench += ["--iters", str(args.iters), "--warmup", str(args.warmup), "--skip-data", "--skip-flops"]
                run_in(checkout, bench + ["--output", out] + extra, log)
                v = json.loads(out.read_text())["variants"][variant]
                runs[side].append({m: v[key]["median"] for m, key in MEASURES.items() if v[key] is not None})
            print(f"round {r + 1}/{args.rounds}: {side} ({variant}) {runs[side][-1]}", flush=True)
    measures = list(runs["this"][0])
    medians = {side: {m: statistics.median(x[m] for x in rs) for m in measures} for side, rs in runs.items()}
    result = {
        "baseline": str(baseline),
        "variants": {side: variant for side, (_, variant) in sides.items()},
        "command": args.command,
        "config": args.config_file,
        "benchmark_args": extra,
        "rounds": runs,
        "median": medians,
        "speedup": {m: medians["baseline"][m] / medians["this"][m] for m in measures},
    }
    rows = [[m, f"{medians['baseline'][m]:.4g}", f"{medians['this'][m]:.4g}", f"{result['speedup'][m]:.2f}x"]
            for m in measures]  # fmt: skip
    print(tabulate(rows, headers=["measure (s; ms for inference)", "baseline", "this", "speed-up"], tablefmt="github"))
    if args.output:
        write_text_atomic(args.output, json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
