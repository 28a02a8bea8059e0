#!/usr/bin/env python
"""The main job on the built-in default (`make demo`): on a CPU, in about five minutes,

1. generate the synthetic multi-domain benchmark (skipped when already there),
2. train the tiny recipe (configs/demo/tiny_synthetic_cpu.py) on the source domain,
3. evaluate on the source val and every target domain and print the cross-domain table,
4. draw Visualizer overlays for a few frames of each domain,

and print where everything went.

Pass --iters to train longer or shorter, --output to put the run elsewhere; any extra
key=value pairs are config overrides for training.
"""

import importlib.util
import json
import sys
import time
from pathlib import Path

from detectron2.config import LazyConfig
from detectron2.data import DatasetCatalog

import vltseg_d2  # noqa: F401  (registers the synthetic splits)
from vltseg_d2.config import add_override_arguments, apply_overrides, overrides_of, tool_parser
from vltseg_d2.data.synthetic import format_summary, generate
from vltseg_d2.data.synthetic_domains import DOMAINS
from vltseg_d2.engine import Predictor
from vltseg_d2.evaluation import format_cross_domain_table
from vltseg_d2.visualization import run_images

CONFIG = "configs/demo/tiny_synthetic_cpu.py"
TOOLS = Path(__file__).resolve().parent
SOURCE_MIOU_TARGET = 40.0


def train(overrides):
    """``tools/train_net.py --config-file CONFIG overrides`` in this process: a second interpreter
    would spend ~5 s importing torch, detectron2 and timm again. The command is printed to rerun."""
    args = ["--config-file", CONFIG] + overrides
    print("+ " + " ".join([sys.executable, str(TOOLS / "train_net.py")] + args), flush=True)
    spec = importlib.util.spec_from_file_location("train_net", TOOLS / "train_net.py")
    train_net = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_net)
    train_net.launch_with_requeue(train_net.parse_args(args))


def main(argv=None):
    parser = tool_parser(__doc__)
    parser.add_argument("--output", default="output/demo", help="where the run goes")
    parser.add_argument("--iters", type=int, default=None, help="training iterations (default: the config's)")
    parser.add_argument("--frames-per-domain", type=int, default=2, help="overlays drawn per domain")
    add_override_arguments(parser, what="extra training overrides key=value")
    args = parser.parse_args(argv)
    start = time.time()
    out = Path(args.output)

    print("== 1/4 synthetic benchmark", flush=True)
    print(format_summary(generate()), flush=True)

    print("== 2/4 training the tiny recipe on synthetic_source_train (and evaluating every domain)", flush=True)
    overrides = (
        [f"train.output_dir={out}"] + ([f"train.max_iter={args.iters}"] if args.iters else []) + overrides_of(args)
    )
    train(overrides)

    print("== 3/4 cross-domain table", flush=True)
    table_dir = out / "eval" / "model_final"
    summary = json.loads((table_dir / "cross_domain.json").read_text())
    print(format_cross_domain_table(summary), flush=True)

    print("== 4/4 Visualizer overlays", flush=True)
    vis_dir = out / "visualizations"
    cfg = apply_overrides(LazyConfig.load(CONFIG), overrides_of(args))  # the model that was trained, overrides included
    predictor = Predictor(cfg, str(out / "model_final.pth"), input_format="RGB")  # one model for every domain
    for domain in DOMAINS:
        records = DatasetCatalog.get(f"synthetic_{domain}_val")[: args.frames_per_domain]
        run_images(predictor, [Path(r["file_name"]) for r in records], vis_dir / domain, side_by_side=True)

    source = next(r["mIoU"] for r in summary["rows"] if r["in_domain"])
    print(f"\nDone in {time.time() - start:.0f} s.")
    print(f"  checkpoint:        {out / 'model_final.pth'}")
    print(f"  training log:      {out / 'log.txt'} (TensorBoard: {out}, metrics: {out / 'metrics.json'})")
    print(f"  cross-domain table: {table_dir / 'cross_domain.md'} and {table_dir / 'cross_domain.json'}")
    print(f"  overlays:          {vis_dir}/<domain>/*_seg.png")
    verdict = (
        "learned"
        if source >= SOURCE_MIOU_TARGET
        else f"below the {SOURCE_MIOU_TARGET:.0f} expected: train longer (--iters)"
    )
    print(f"  source-domain mIoU {source:.1f} ({verdict}); mean over target domains {summary['mean_mIoU']:.1f}")
    return summary


if __name__ == "__main__":
    main()
