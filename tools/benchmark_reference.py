#!/usr/bin/env python
"""Ours against the seeds' own code, side by side: Rein DINOv2-L + Mask2Former at the same weights.

    git clone https://github.com/w1oves/Rein /tmp/Rein
    git clone https://github.com/facebookresearch/Mask2Former /tmp/Mask2Former
    python tools/benchmark_reference.py --rein-src /tmp/Rein --mask2former-src /tmp/Mask2Former \\
        --variants fp32,bf16 --output docs/benchmarks/rein_l_vs_reference_cpu.json

The reference is Rein's ReinsDinoVisionTransformer (LoRAReins) and the official Mask2Former
pixel decoder, transformer decoder, matcher and criterion, imported at run time from the
checkouts you name (never copied into this project; mmseg's registries and Mask2Former's
compiled op are replaced by stand-ins, see vltseg_d2/benchmarking/reference_rein.py). Its random
weights become ours through our Rein converter, so both compute the same model: the tool first
prints the largest difference of one window's class scores (float32) and, per precision, the
share of pixels of the frame where both give the same class.

Then, for each precision of --variants (fp32, bf16: torch.autocast, as a user of the original
code would wrap it), timed in alternation, repeat after repeat (median and min): the training
step (forward, losses, backward; batch 1 of the crop), the backbone forward alone (no grad), one
window (no grad) and the sliding window over --frame (ours: model.inference with the config's
window_batch; the reference: mmseg's one window per forward). It prints ours / reference per
measure and writes JSON.
"""

import vltseg_d2  # noqa: F401  (first: it silences detectron2's import-time torch.jit warnings)

# isort: split

import importlib.util
import json
import platform
import sys
from pathlib import Path

import torch
from tabulate import tabulate

from vltseg_d2.benchmarking.reference_rein import ReferenceCodeError, ReferenceRein, share_weights
from vltseg_d2.config import add_override_arguments, load_config_for_tool, overrides_of, tool_parser
from vltseg_d2.engine import Trainer
from vltseg_d2.utils.atomic import write_text_atomic

DEFAULT_CONFIG = "configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py"


def _harness():
    """tools/benchmark.py's timing helpers (alternation, random batches, autocast)."""
    spec = importlib.util.spec_from_file_location("vltseg_benchmark", Path(__file__).with_name("benchmark.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_pair(cfg, rein_src, m2f_src):
    torch.manual_seed(0)
    reference = ReferenceRein(rein_src, m2f_src)
    cfg.model.backbone.pretrained = None
    ours = Trainer.build_model(cfg)
    left = share_weights(reference, ours)
    if any(left.values()):
        raise SystemExit(f"error: the weights did not transfer completely: {left}")
    return ours, reference


def agreement(ours, reference, image, crop, stride, precision, bench):
    """(largest difference of one window's scores, share of equal argmax over the frame)."""
    ours.eval(), reference.eval()
    normalized = ours._normalize(image)
    with torch.no_grad(), bench.precision_context(ours.device, precision):
        window = normalized[None, :, : crop[0], : crop[1]]
        diff = (ours.predict_scores(window).float() - reference.window_scores(window).float()).abs().max().item()
        mine = ours.inference([{"image": image}], test_mode="slide")[0]["sem_seg"].argmax(0)
        theirs = reference.slide(normalized, crop, stride).argmax(0)
    return diff, (mine == theirs).float().mean().item()


def measures(ours, reference, batch, image, crop, stride, precision, wanted, bench):
    device = ours.device
    trainable = reference.set_trainable()
    normalized = ours._normalize(image)
    images = torch.stack([ours._normalize(r["image"]) for r in batch])
    targets = [{"labels": r["instances"].gt_classes, "masks": r["instances"].gt_masks} for r in batch]
    window = normalized[None, :, : crop[0], : crop[1]]

    def train_ours():
        ours.train()
        with bench.precision_context(device, precision):
            loss = sum(ours(batch).values())
        loss.backward()
        ours.zero_grad(set_to_none=True)

    def train_reference():
        reference.set_trainable()
        with bench.precision_context(device, precision):
            loss = reference.loss(images, targets)
        loss.backward()
        for p in trainable:
            p.grad = None

    def no_grad(fn, module):
        def run():
            module.eval()
            with torch.no_grad(), bench.precision_context(device, precision):
                fn()

        return run

    ours_runs = {
        "train step": train_ours,
        "backbone forward": no_grad(lambda: ours.backbone(window), ours),
        "one window": no_grad(lambda: ours.predict_scores(window), ours),
        "sliding window": no_grad(lambda: ours.inference([{"image": image}], test_mode="slide"), ours),
    }
    reference_runs = {
        "train step": train_reference,
        "backbone forward": no_grad(lambda: reference.features(window), reference),
        "one window": no_grad(lambda: reference.window_scores(window), reference),
        "sliding window": no_grad(lambda: reference.slide(normalized, crop, stride), reference),
    }
    keep = {m for m in ours_runs if m.split()[0] in wanted or m in wanted}
    return {k: v for k, v in ours_runs.items() if k in keep}, {k: v for k, v in reference_runs.items() if k in keep}


def main(argv=None):
    parser = tool_parser(__doc__)
    parser.add_argument("--rein-src", required=True, help="a checkout of github.com/w1oves/Rein")
    parser.add_argument(
        "--mask2former-src", required=True, help="a checkout of github.com/facebookresearch/Mask2Former"
    )
    parser.add_argument("--config-file", default=DEFAULT_CONFIG, help="our config of the same model")
    parser.add_argument("--variants", default="fp32,bf16", help="precisions, each timed for both codes")
    parser.add_argument(
        "--frame", nargs=2, type=int, default=[512, 1024], metavar=("H", "W"), help="frame to slide over"
    )
    parser.add_argument("--iters", type=int, default=3, help="timed repeats of every measurement")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repeats first")
    parser.add_argument(
        "--measures", default="train,backbone,one,sliding", help="what to time: train, backbone, one (window), sliding"
    )
    parser.add_argument("--output", help="JSON file to write")
    add_override_arguments(parser)
    args = parser.parse_args(argv)
    cfg = load_config_for_tool(parser, args.config_file, overrides_of(args))
    bench = _harness()
    try:
        ours, reference = build_pair(cfg, args.rein_src, args.mask2former_src)
    except ReferenceCodeError as e:
        parser.error(str(e))
    crop, stride = tuple(ours.test_crop), tuple(ours.test_stride)
    batch = bench.random_batch(1, *crop)
    image = torch.randint(0, 255, (3, *args.frame), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    wanted = set(args.measures.split(","))
    runs, checks = {}, {}
    for variant in args.variants.split(","):
        precision, _ = bench.parse_variant(variant)
        diff, same = agreement(ours, reference, image, crop, stride, precision, bench)
        checks[variant] = {"window_scores_max_abs_diff": diff, "frame_same_argmax": same}
        print(f"{variant}: one window's scores differ by at most {diff:.3g}; same class on {100 * same:.3f}% of pixels")
        runs[f"ours {variant}"], runs[f"reference {variant}"] = measures(
            ours, reference, batch, image, crop, stride, precision, wanted, bench
        )
    times = bench.compare_variants(runs, args.iters, args.warmup, ours.device)
    rows = []
    for variant in args.variants.split(","):
        for measure, (median, low) in times[f"ours {variant}"].items():
            ref_median, ref_low = times[f"reference {variant}"][measure]
            rows.append([measure, variant, f"{ref_median:.3f} ({ref_low:.3f})", f"{median:.3f} ({low:.3f})",
                         f"{ref_median / median:.2f}x"])  # fmt: skip
    print(tabulate(rows, headers=["measure", "precision", "reference s (min)", "ours s (min)", "ours speed-up"]))
    if args.output:
        record = {"device": platform.processor() or platform.machine(), "torch": torch.__version__,
                  "threads": torch.get_num_threads(), "frame": args.frame, "crop": crop, "stride": stride,
                  "checks": checks, "times": times, "argv": sys.argv[1:]}  # fmt: skip
        write_text_atomic(args.output, json.dumps(record, indent=2))
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
