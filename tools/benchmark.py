#!/usr/bin/env python
"""Speed and memory of any config: training, whole-image and sliding-window inference.

    python tools/benchmark.py --config-file configs/demo/tiny_synthetic_cpu.py --output docs/benchmarks/demo_cpu.json
    python tools/benchmark.py --config-file configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py \\
        --train-batch 4 --frame 512 1024

Reports training iterations/s and images/s, inference latency per image (whole image at the
crop size, sliding window over --frame), peak memory (CUDA, or process RSS on CPU), parameter
counts, forward FLOPs per image (fvcore), model FLOPs utilisation against --peak-tflops, and
where the time goes (backbone, pixel decoder, transformer decoder, matching + losses, backward
+ step, data loading). Inputs are random tensors of the config's crop size, so no dataset is
needed; data loading is timed separately on the config's own loader when its data exists.
Prints a table and writes JSON.
"""

import argparse
import json
import platform
import resource
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from detectron2.config import instantiate
from fvcore.nn import FlopCountAnalysis
from tabulate import tabulate

from vltseg_d2.config import load_config_for_tool
from vltseg_d2.engine import Trainer, resolve_device
from vltseg_d2.engine.train_step import autocast, resolve_precision
from vltseg_d2.modeling import count_parameters

# Dense bf16 tensor-core peaks (TFLOP/s) used when --peak-tflops is not given.
KNOWN_PEAKS = {"H100": 800.0, "H200": 800.0, "A100": 312.0}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class StageTimer:
    """Wall time of module forwards (hooks), synchronised on CUDA."""

    def __init__(self, device):
        self.device, self.totals, self._starts = device, defaultdict(float), {}

    def attach(self, name, module):
        module.register_forward_pre_hook(lambda *_: self._start(name))
        module.register_forward_hook(lambda *_: self._stop(name))

    def _start(self, name):
        sync(self.device)
        self._starts[name] = time.perf_counter()

    def _stop(self, name):
        sync(self.device)
        self.totals[name] += time.perf_counter() - self._starts.pop(name)

    @contextmanager
    def stage(self, name):
        self._start(name)
        yield
        self._stop(name)


def random_batch(n, h, w, num_classes=19, seed=0):
    """Records like the training mapper's: image, sem_seg and per-class masks."""
    from vltseg_d2.data.mapper import per_class_instances

    g = torch.Generator().manual_seed(seed)
    batch = []
    for _ in range(n):
        coarse = torch.randint(0, num_classes, (max(h // 64, 1), max(w // 64, 1)), generator=g)
        sem = torch.nn.functional.interpolate(coarse[None, None].float(), size=(h, w), mode="nearest")[0, 0].long()
        batch.append(
            {
                "image": torch.randint(0, 255, (3, h, w), dtype=torch.uint8, generator=g),
                "sem_seg": sem,
                "instances": per_class_instances(sem),
                "height": h,
                "width": w,
            }
        )
    return batch


def peak_memory_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def forward_flops(model, h, w):
    """fvcore's count for one image at (h, w), whole-image inference (ops it cannot count are skipped)."""
    model.eval()
    image = torch.zeros(1, 3, h, w, device=model.device)
    counter = FlopCountAnalysis(_ScoresOnly(model), image)
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return counter.total()


class _ScoresOnly(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model.predict_scores(images)


def bench_train(model, optimizer, batch, iters, warmup, precision, device, timer):
    model.train()
    times = []
    for i in range(warmup + iters):
        sync(device)
        start = time.perf_counter()
        with autocast(device, precision):
            losses = model(batch)
        with timer.stage("backward + step"):
            optimizer.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            optimizer.step()
        sync(device)
        times.append(time.perf_counter() - start)
        if i == warmup - 1:
            timer.totals.clear()
    return float(np.median(times[warmup:]))


def bench_inference(model, image, iters, warmup, precision, device, mode):
    model.eval()
    model.test_mode = mode
    times = []
    with torch.no_grad():
        for _ in range(warmup + iters):
            sync(device)
            start = time.perf_counter()
            with autocast(device, precision):
                model([{"image": image, "height": image.shape[1], "width": image.shape[2]}])
            sync(device)
            times.append(time.perf_counter() - start)
    return float(np.median(times[warmup:]))


def bench_data_loading(cfg, iters):
    try:
        loader = iter(instantiate(cfg.dataloader.train))
        next(loader)
        start = time.perf_counter()
        for _ in range(iters):
            next(loader)
        return (time.perf_counter() - start) / iters
    except (FileNotFoundError, KeyError) as e:  # no data for this config on this machine
        return f"skipped ({type(e).__name__}: {str(e)[:80]})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--train-batch", type=int, default=None, help="images per training step (default: config)")
    parser.add_argument(
        "--frame",
        nargs=2,
        type=int,
        default=None,
        metavar=("H", "W"),
        help="frame for sliding-window inference (default: 2 x crop width)",
    )
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak for utilisation figures")
    parser.add_argument("--output", default=None, help="JSON file to write")
    parser.add_argument("--skip-data", action="store_true", help="do not time the config's data loader")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides key=value")
    args = parser.parse_args(argv)
    cfg = load_config_for_tool(parser, args.config_file, args.opts)
    device = resolve_device(cfg.train.device)
    precision = resolve_precision(cfg.train.amp.enabled, cfg.train.amp.precision, device)
    crop = tuple(cfg.dataloader.train.mapper.augmentations.crop_size)
    batch_size = args.train_batch or cfg.dataloader.train.total_batch_size
    frame = tuple(args.frame) if args.frame else (crop[0], 2 * crop[1])
    model = Trainer.build_model(cfg)
    optimizer = Trainer.build_optimizer(cfg, model)
    total, trainable = count_parameters(model)
    flops = forward_flops(model, *crop)
    backbone_flops = FlopCountAnalysis(model.backbone, torch.zeros(1, 3, *crop, device=device))
    backbone_flops = backbone_flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False).total()

    timer = StageTimer(device)
    timer.attach("backbone", model.backbone)
    timer.attach("pixel decoder", model.sem_seg_head.pixel_decoder)
    timer.attach("transformer decoder", model.sem_seg_head.predictor)
    timer.attach("matching + losses", model.criterion)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step = bench_train(
        model, optimizer, random_batch(batch_size, *crop), args.iters, args.warmup, precision, device, timer
    )
    train_memory = peak_memory_mb(device)
    breakdown = {k: v / args.iters for k, v in timer.totals.items()}
    whole = bench_inference(
        model, random_batch(1, *crop)[0]["image"], args.iters, args.warmup, precision, device, "whole"
    )
    slide = bench_inference(
        model, random_batch(1, *frame)[0]["image"], args.iters, args.warmup, precision, device, "slide"
    )

    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    peak = args.peak_tflops or next((v for k, v in KNOWN_PEAKS.items() if k in name), None)
    train_flops = 3 * flops * batch_size  # forward + backward ~ 3x forward
    result = {
        "config": args.config_file,
        "device": name,
        "precision": str(precision or torch.float32),
        "crop": crop,
        "train_batch": batch_size,
        "frame": frame,
        "params_total": total,
        "params_trainable": trainable,
        "forward_gflops_per_image": flops / 1e9,
        "backbone_gflops_per_image": backbone_flops / 1e9,
        "train_iter_per_s": 1 / step,
        "train_images_per_s": batch_size / step,
        "train_step_breakdown_s": breakdown,
        "inference_whole_ms": 1000 * whole,
        "inference_slide_ms": 1000 * slide,
        "peak_memory_mb": peak_memory_mb(device),
        "train_peak_memory_mb": train_memory,
        "peak_tflops": peak,
        "train_mfu": (train_flops / step / 1e12 / peak) if peak else None,
        # backbone forward FLOPs over the backbone's forward time inside the training step
        "backbone_forward_mfu_in_training": (backbone_flops * batch_size / breakdown["backbone"] / 1e12 / peak)
        if peak and breakdown.get("backbone")
        else None,
        "inference_whole_mfu": (flops / whole / 1e12 / peak) if peak else None,
        "data_loading_s_per_batch": None if args.skip_data else bench_data_loading(cfg, 3),
    }
    rows = [[k, f"{v:.4g}" if isinstance(v, float) else v] for k, v in result.items() if k != "train_step_breakdown_s"]
    rows += [[f"  time in {k} (s/iter)", f"{v:.4g}"] for k, v in breakdown.items()]
    print(tabulate(rows, headers=["metric", "value"], tablefmt="github"))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
