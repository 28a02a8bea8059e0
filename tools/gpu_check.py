#!/usr/bin/env python
"""The GPU check (`make gpu-check`): everything that needs CUDA, in one run of a few minutes.

    python tools/gpu_check.py            # writes docs/benchmarks/gpu_<device>.json

1. The CUDA tests (tests marked `cuda`: CPU/GPU agreement, every precision, the deformable
   attention, cached casts, torch.compile, the predictor, train_net in fp32 and bf16, and a
   2-process NCCL training when two GPUs are there).
2. Rein DINOv2-L with tools/benchmark.py: a training step (batch 4 of 512, the recipe's per-GPU
   batch) and the sliding window over a 512x1024 frame, in fp32 and bf16, eager and with
   torch.compile; step and frame time, FLOP utilisation against the GPU's peak (looked up by
   its name: H100, H200, A100, L40S), peak memory.
Exits with status 1 if any part failed; the JSON records each part's outcome and figures.
"""

import vltseg_d2  # noqa: F401  (first: it silences detectron2's import-time torch.jit warnings)

# isort: split

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from vltseg_d2.config import tool_parser
from vltseg_d2.utils.atomic import write_text_atomic

REIN_L = "configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py"


def run_part(name, cmd, timeout):
    """Run one part; returns (passed, seconds). Its output goes to the console as it comes."""
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    try:
        passed = subprocess.run(cmd, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        print(f"error: {name} ran past {timeout} s", file=sys.stderr)
        passed = False
    return passed, round(time.perf_counter() - start, 1)


def main(argv=None):
    parser = tool_parser(__doc__)
    parser.add_argument("--output-dir", default="docs/benchmarks", help="where gpu_<device>.json goes")
    parser.add_argument("--bench-timeout", type=int, default=330, help="seconds the Rein-L benchmark may take")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("error: no CUDA GPU here (torch.cuda.is_available() is False); make gpu-check needs one")
    device = torch.cuda.get_device_name()
    record = {"device": device, "gpus": torch.cuda.device_count(), "torch": torch.__version__,
              "cuda": torch.version.cuda, "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    passed, record["cuda_tests_s"] = run_part(
        "CUDA tests", [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"], 240
    )
    record["cuda_tests"] = "passed" if passed else "failed"
    with tempfile.TemporaryDirectory() as tmp:
        bench_json = Path(tmp) / "rein_l.json"
        bench = [sys.executable, "tools/benchmark.py", "--config-file", REIN_L, "--train-batch", "4",
                 "--frame", "512", "1024", "--variants", "fp32,bf16,fp32+compile,bf16+compile", "--iters", "5",
                 "--warmup", "2", "--skip-data", "--output", str(bench_json)]  # fmt: skip
        bench_ok, record["rein_l_benchmark_s"] = run_part("Rein-L benchmark", bench, args.bench_timeout)
        record["rein_l"] = json.loads(bench_json.read_text()) if bench_ok and bench_json.is_file() else None
    record["rein_l_benchmark"] = "passed" if bench_ok else "failed"
    slug = re.sub(r"[^A-Za-z0-9]+", "_", device).strip("_").lower()
    output = Path(args.output_dir) / f"gpu_{slug}.json"
    write_text_atomic(output, json.dumps(record, indent=2))
    print(f"wrote {output}: CUDA tests {record['cuda_tests']}, Rein-L benchmark {record['rein_l_benchmark']}")
    if not (passed and bench_ok):
        sys.exit(1)


if __name__ == "__main__":
    main()
