#!/usr/bin/env python
"""Speed and memory of any config: training, whole-image and sliding-window inference.

    python tools/benchmark.py --config-file configs/demo/tiny_synthetic_cpu.py --output docs/benchmarks/demo_cpu.json
    python tools/benchmark.py --config-file configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py \\
        --train-batch 4 --frame 512 1024

Reports, for each --variants entry (fp32, bf16: the autocast precision; "+ckpt" adds activation
checkpointing of the backbone blocks, "+compile" train.compile's torch.compile on a copy of the
model, e.g. bf16+ckpt or fp32+compile), the training step the
trainer runs (its precision, clipping and seeding: MixedPrecisionTrainer.run_step) and the
inference latency (whole image at the crop size, sliding window over --frame); the variants are
timed in alternation, repeat after repeat, and reported as median and min, so their ratios hold
on a noisy machine. Also: parameter counts, FLOPs counted by torch's FlopCounterMode (2 per
multiply-add, attention included): forward per stage (backbone, Rein, pixel decoder, transformer
decoder, criterion) and the whole training step (forward + backward, no weight gradients for
frozen weights), utilisation against --peak-tflops (dense bf16 peaks: H100 SXM ~989, H200 ~989,
A100 312 TFLOP/s; give the figure of your part), where the time of the first variant's step
goes, the activation memory the step keeps for its backward pass (with and without
checkpointing, counted from the tensors autograd saves, so it holds for any device), peak
memory, and data loading. Inputs are random tensors of the config's crop size, so no
dataset is needed. Prints progress and a table, and writes JSON.
"""

import vltseg_d2  # noqa: F401  (first: it silences detectron2's import-time torch.jit warnings)

# isort: split

import copy
import itertools
import json
import platform
import resource
import time
from collections import defaultdict

import numpy as np
import torch
from detectron2.config import instantiate
from detectron2.utils.events import EventStorage
from tabulate import tabulate
from torch.utils.flop_counter import FlopCounterMode

from vltseg_d2.config import add_override_arguments, load_config_for_tool, overrides_of, tool_parser
from vltseg_d2.engine import Trainer, resolve_device
from vltseg_d2.engine.train_step import MixedPrecisionTrainer, resolve_precision
from vltseg_d2.modeling import count_parameters
from vltseg_d2.utils.atomic import write_text_atomic
from vltseg_d2.utils.flops import count_cpu_attention

# Dense bf16 tensor-core peaks (TFLOP/s, vendors' data sheets) used when --peak-tflops is not
# given; the first key found in the device's name wins (so "H100 PCIe" before "H100", the SXM part)
KNOWN_PEAKS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}
VARIANTS = {"fp32": None, "bf16": torch.bfloat16}  # a variant may add "+ckpt": backbone activation checkpointing
MEASURES = {"train": "train step", "whole": "inference whole", "slide": "inference slide"}
STAGES = {
    "backbone": "backbone",
    "rein": "backbone.rein",
    "pixel decoder": "sem_seg_head.pixel_decoder",
    "transformer decoder": "sem_seg_head.predictor",
    "criterion": "criterion",
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class StageTimer:
    """Wall time of module forwards (hooks), synchronised on CUDA."""

    def __init__(self, device):
        self.device, self.totals, self._starts = device, defaultdict(float), {}
        self.enabled = False  # on only while the measured step runs

    def attach(self, name, module):
        module.register_forward_pre_hook(lambda *_: self._start(name))
        module.register_forward_hook(lambda *_: self._stop(name))

    def _start(self, name):
        if not self.enabled:
            return
        sync(self.device)
        self._starts[name] = time.perf_counter()

    def _stop(self, name):
        if not self.enabled:
            return
        sync(self.device)
        self.totals[name] += time.perf_counter() - self._starts.pop(name)


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


def count_flops(model, batch, crop):
    """FlopCounterMode figures: training forward per stage, the training step (forward and
    backward), and one whole-image inference at ``crop``."""
    count_cpu_attention()  # torch counts the CUDA attention kernels, not the CPU one
    root = type(model).__name__
    model.train()
    with FlopCounterMode(display=False) as forward:
        model(batch)
    counts = forward.get_flop_counts()
    per_stage = {name: sum(counts.get(f"{root}.{path}", {}).values()) for name, path in STAGES.items()}
    with FlopCounterMode(display=False) as step:
        sum(model(batch).values()).backward()
    model.zero_grad(set_to_none=True)
    model.eval()
    # with grad enabled: FlopCounterMode's module tracker fails on parameter views made under no_grad
    with FlopCounterMode(display=False) as inference:
        model.predict_scores(torch.zeros(1, 3, *crop, device=model.device))
    return per_stage, forward.get_total_flops(), step.get_total_flops(), inference.get_total_flops()


def parse_variant(name):
    """ "bf16+ckpt" -> (torch.bfloat16, {"ckpt"}): the precision and the flags, "ckpt" (activation
    checkpointing of the backbone blocks) and "compile" (train.compile's torch.compile of the heavy
    parts, on a copy of the model)."""
    precision, *flags = name.split("+")
    if precision not in VARIANTS or set(flags) - {"ckpt", "compile"}:
        raise ValueError(f"unknown variant {name!r}: one of {', '.join(VARIANTS)}, optionally with +ckpt, +compile")
    return VARIANTS[precision], set(flags)


def precision_context(device, precision):
    """torch.autocast for ``precision`` (None: float32). Written here rather than imported from
    train_step: tools/compare_checkouts.py runs this file against older checkouts."""
    return torch.autocast(device.type, dtype=precision or torch.float32, enabled=precision is not None)


def training_step(model, optimizer, batch, precision, checkpointing, clip, seed, device):
    """The trainer's own step (MixedPrecisionTrainer.run_step) on a fixed batch."""
    step = MixedPrecisionTrainer(model, itertools.repeat(batch), optimizer, precision=precision,
                                 clip_grad_norm=clip, device_type=device.type, seed=seed)  # fmt: skip

    def run(iteration=0):
        model.train()
        model.backbone.grad_checkpointing = checkpointing
        step.iter = iteration
        with EventStorage(iteration):
            step.run_step()

    return run


def saved_activation_bytes(module, forward) -> int:
    """Bytes a training forward (``forward()``) keeps for the backward pass: every tensor autograd
    saves, each storage once, ``module``'s parameters left out. This is the step's activation
    memory on any device (a CPU process's RSS cannot separate it from the allocator's cache)."""
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    saved = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    del out
    return sum(saved.values())


def activation_memory(model, batch, precision, checkpointing, device):
    model.train()
    model.backbone.grad_checkpointing = checkpointing
    with precision_context(device, precision):
        return saved_activation_bytes(model, lambda: model(batch))


def timed(fn, device):
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def compare_variants(runs, repeats, warmup, device):
    """``runs``: variant -> {measure: callable}. Calls alternate between the variants in every
    repeat; returns variant -> measure -> (median, min) seconds."""
    times = {v: {m: [] for m in fns} for v, fns in runs.items()}
    for r in range(warmup + repeats):
        for v, fns in runs.items():
            for measure, fn in fns.items():
                elapsed = timed(fn, device)
                if r >= warmup:
                    times[v][measure].append(elapsed)
        if r >= warmup:
            latest = ", ".join(f"{v}: {next(iter(t))} {t[next(iter(t))][-1]:.3f}s" for v, t in times.items())
            print(f"  repeat {r - warmup + 1}/{repeats}: {latest}", flush=True)
        else:
            print(f"  warm-up {r + 1}/{warmup}", flush=True)
    return {v: {m: (float(np.median(t)), float(np.min(t))) for m, t in ms.items()} for v, ms in times.items()}


def inference(model, image, precision, device, mode):
    record = {"image": image, "height": image.shape[1], "width": image.shape[2]}

    def run():
        model.eval()
        with torch.no_grad(), precision_context(device, precision):
            model.inference([record], test_mode=mode)

    return run


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
    parser = tool_parser(__doc__)
    parser.add_argument("--config-file", required=True, help="the LazyConfig whose model and step are timed")
    parser.add_argument("--train-batch", type=int, default=None, help="images per training step (default: config)")
    parser.add_argument(
        "--frame",
        nargs=2,
        type=int,
        default=None,
        metavar=("H", "W"),
        help="frame for sliding-window inference (default: 2 x crop width)",
    )
    parser.add_argument("--iters", type=int, default=10, help="timed repeats of every measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed repeats first (allocator, compile)")
    parser.add_argument("--variants", default=None, help="precisions compared in one run: fp32,bf16 (default: config)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak for utilisation figures")
    parser.add_argument("--output", default=None, help="JSON file to write")
    parser.add_argument("--skip-data", action="store_true", help="do not time the config's data loader")
    parser.add_argument("--skip-flops", action="store_true", help="do not count FLOPs (saves a step's time)")
    parser.add_argument("--measures", default="train,whole,slide", help="what to time: train, whole, slide")
    add_override_arguments(parser)
    args = parser.parse_args(argv)
    cfg = load_config_for_tool(parser, args.config_file, overrides_of(args))
    device = resolve_device(cfg.train.device)
    configured = resolve_precision(cfg.train.amp.enabled, cfg.train.amp.precision, device)
    names = args.variants.split(",") if args.variants else [next(k for k, v in VARIANTS.items() if v == configured)]
    try:
        parsed = {n: parse_variant(n) for n in names}
    except ValueError as e:
        parser.error(str(e))
    measures = args.measures.split(",")
    if set(measures) - set(MEASURES) or not measures:
        parser.error(f"--measures: choose from {', '.join(MEASURES)}")
    crop = tuple(cfg.dataloader.train.mapper.augmentations.crop_size)
    batch_size = args.train_batch or cfg.dataloader.train.total_batch_size
    frame = tuple(args.frame) if args.frame else (crop[0], 2 * crop[1])
    model = Trainer.build_model(cfg)
    optimizer = Trainer.build_optimizer(cfg, model)
    total, trainable = count_parameters(model)
    batch = random_batch(batch_size, *crop)
    if args.skip_flops:
        stage_flops, forward_flops, step_flops, window_flops = {k: float("nan") for k in STAGES}, *[float("nan")] * 3
    else:
        print("counting FLOPs ...", flush=True)
        stage_flops, forward_flops, step_flops, window_flops = count_flops(model, batch, crop)

    print("measuring activation memory ...", flush=True)
    configured_checkpointing, activations = model.backbone.grad_checkpointing, {}
    for v in names:
        precision = parsed[v][0]
        for checkpointing in (False, True):  # both, whatever the variants ask for
            key = v.split("+")[0] + ("+ckpt" if checkpointing else "")
            if key not in activations:
                activations[key] = activation_memory(model, batch, precision, checkpointing, device) / 2**30
    model.backbone.grad_checkpointing = configured_checkpointing

    timer = StageTimer(device)  # where the first variant's step goes
    for name, path in STAGES.items():
        if name != "rein" or getattr(model.backbone, "rein", None) is not None:
            timer.attach(name, model.get_submodule(path))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    clip = cfg.train.clip_grad.max_norm if cfg.train.clip_grad.enabled else None
    whole_image, frame_image = random_batch(1, *crop)[0]["image"], random_batch(1, *frame)[0]["image"]
    models = {False: (model, optimizer)}
    if any("compile" in flags for _, flags in parsed.values()):  # a compiled copy beside the eager model
        from vltseg_d2.engine.compile import compile_heavy_parts  # here: older checkouts lack it (compare_checkouts)

        compiled = copy.deepcopy(model)
        compile_heavy_parts(compiled, cfg.train.compile.backend, cfg.train.compile.dynamic,
                            size_bucket=cfg.train.compile.get("size_bucket", None))  # fmt: skip
        models[True] = (compiled, Trainer.build_optimizer(cfg, compiled))
    runs = {}
    for v in names:
        precision, flags = parsed[v]
        m, opt = models["compile" in flags]
        fns = {
            "train step": training_step(
                m, opt, batch, precision, "ckpt" in flags, clip, cfg.train.get("seed", 0), device
            ),
            "inference whole": inference(m, whole_image, precision, device, "whole"),
            "inference slide": inference(m, frame_image, precision, device, "slide"),
        }
        runs[v] = {MEASURES[k]: fns[MEASURES[k]] for k in measures}
    with_breakdown = "train" in measures and "compile" not in parsed[names[0]][1]  # hooks time eager modules
    if with_breakdown:
        first_step = runs[names[0]]["train step"]

        def step_with_breakdown():
            timer.enabled = True
            try:
                first_step()
            finally:
                timer.enabled = False

        runs[names[0]]["train step"] = step_with_breakdown
    print(f"timing {', '.join(names)} in alternation ({args.warmup} warm-up + {args.iters} repeats) ...", flush=True)
    results = compare_variants(runs, args.iters, args.warmup, device)
    breakdown = {k: v / (args.warmup + args.iters) for k, v in timer.totals.items()}
    if with_breakdown:
        forward_parts = sum(v for k, v in breakdown.items() if k != "rein")  # Rein runs inside the backbone
        rest = max(results[names[0]]["train step"][0] - forward_parts, 0.0)
        breakdown["backward, optimizer step and the rest"] = rest

    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    peak = args.peak_tflops or next((v for k, v in KNOWN_PEAKS.items() if k in name), None)
    base = names[0]

    def stat(r, measure, scale=1.0):
        return {"median": scale * r[measure][0], "min": scale * r[measure][1]} if measure in r else None

    result = {
        "config": args.config_file,
        "device": name,
        "crop": crop,
        "train_batch": batch_size,
        "frame": frame,
        "params_total": total,
        "params_trainable": trainable,
        "forward_gflops_train_batch": forward_flops / 1e9,
        "forward_gflops_by_stage": {k: v / 1e9 for k, v in stage_flops.items()},
        "train_step_gflops": step_flops / 1e9,
        "inference_gflops_per_crop": window_flops / 1e9,
        "peak_tflops": peak,
        "variants": {
            v: {
                "train_step_s": stat(r, "train step"),
                "train_images_per_s": batch_size / r["train step"][0] if "train step" in r else None,
                "inference_whole_ms": stat(r, "inference whole", 1000),
                "inference_slide_ms": stat(r, "inference slide", 1000),
                "speedup_vs_" + base: {m: results[base][m][0] / r[m][0] for m in r},
                "train_utilisation": (
                    step_flops / r["train step"][0] / 1e12 / peak if peak and "train step" in r else None
                ),
            }
            for v, r in results.items()
        },
        f"step_time_by_stage_s ({names[0]}, mean)": breakdown,
        "activations_saved_for_backward_gib": activations,
        "peak_memory_mb": peak_memory_mb(device),
        "data_loading_s_per_batch": None if args.skip_data else bench_data_loading(cfg, 3),
    }
    rows = [["parameters (total / trainable)", f"{total:,} / {trainable:,}"],
            ["training step GFLOPs (forward + backward)", f"{step_flops / 1e9:.4g}"],
            ["  forward GFLOPs by stage", ", ".join(f"{k} {v / 1e9:.3g}" for k, v in stage_flops.items())],
            ["inference GFLOPs per crop", f"{window_flops / 1e9:.4g}"]]  # fmt: skip
    for v, r in results.items():
        for measure, (median, low) in r.items():
            scale, unit = (1, "s") if measure == "train step" else (1000, "ms")
            rows.append([f"{v}: {measure} median / min ({unit})", f"{scale * median:.4g} / {scale * low:.4g}"])
        rows.append([f"{v}: speed-up vs {base} ({', '.join(r)})",
                     ", ".join(f"{x:.2f}x" for x in result["variants"][v]["speedup_vs_" + base].values())])  # fmt: skip
    rows += [[f"  time in {k} (s/step)", f"{v:.4g}"] for k, v in breakdown.items()]
    rows += [
        ["activations saved for backward (GiB)", ", ".join(f"{k} {v:.3g}" for k, v in activations.items())],
        ["peak memory (MB)", f"{result['peak_memory_mb']:.0f}"],
        ["data loading (s/batch)", result["data_loading_s_per_batch"]],
    ]
    # tools/compare_checkouts.py runs this file against older checkouts: it imports only what they have
    print(tabulate(rows, headers=["metric", "value"], tablefmt="github"))
    if args.output:
        write_text_atomic(args.output, json.dumps(result, indent=2))
        print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
