#!/usr/bin/env python
"""Run the reference training pipeline (mmsegmentation 1.2.2 / mmengine 0.10.7, as Rein's configs
build it) side by side with ours on the same inputs and the same random draws, and print where
they differ. The reference is imported at run time from folders you name, never installed into
this project's environment; see docs/fidelity.md for building them (pure Python, mmcv.ops stubbed).

    python tools/compare_with_mmseg.py --reference-path /tmp/mmref/site --reference-path /tmp/mmref/deps

Add --rein-src /path/to/Rein (a checkout of github.com/w1oves/Rein) to compare Rein's optimizer
constructor on the Rein recipe's tensors too.

Checks: (1) the GTA 512 training chain (random short-edge resize, crop with cat_max_ratio, flip,
photometric distortion, normalise + pad to 512) on GTA-sized synthetic frames, seed by seed;
(2) the test resizes of each protocol on assorted sizes; (3) the lr of every iteration of each
recipe against mmengine's schedulers; (4) with ``--rein-src``: (lr, weight decay) of every trained
tensor of the Rein recipe against Rein's ``PEFTOptimWrapperConstructor``.
"""

import ast
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def synthetic_gta_records(folder: Path, n: int):
    """GTA5-sized (1914x1052) frames of the built-in synthetic benchmark written as PNG records."""
    import cv2

    from vltseg_d2.data.synthetic import render_frame

    records = []
    for i in range(n):
        label, images = render_frame(i, "train", seed=0, height=1052, width=1914)
        rgb = (images["source"] * 255 + 0.5).astype(np.uint8)
        cv2.imwrite(str(folder / f"{i}.png"), rgb[..., ::-1])
        cv2.imwrite(str(folder / f"{i}_label.png"), label)
        records.append({"file_name": str(folder / f"{i}.png"), "sem_seg_file_name": str(folder / f"{i}_label.png")})
    return records


def reference_training_sample(chain, preprocessor, record):
    """mmseg's pipeline from the files (BGR, as ``LoadImageFromFile`` reads) through the data
    preprocessor: (normalised padded 3 x 512 x 512 RGB input, padded label)."""
    import cv2
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    img = cv2.imread(record["file_name"], cv2.IMREAD_COLOR)
    label = cv2.imread(record["sem_seg_file_name"], cv2.IMREAD_UNCHANGED)
    results = dict(
        img=img, gt_seg_map=label, seg_fields=["gt_seg_map"], img_shape=img.shape[:2], ori_shape=img.shape[:2]
    )
    for t in chain:
        results = t(results)
    sample = SegDataSample(gt_sem_seg=PixelData(data=torch.from_numpy(results["gt_seg_map"][None].astype(np.int64))))
    sample.set_metainfo(dict(img_shape=results["img"].shape[:2]))
    inputs = torch.from_numpy(np.ascontiguousarray(results["img"].transpose(2, 0, 1)))
    batch = preprocessor(dict(inputs=[inputs], data_samples=[sample]), training=True)
    return batch["inputs"][0], batch["data_samples"][0].gt_sem_seg.data[0]


def compare_training_chain(samples: int) -> dict:
    """Both pipelines on the same files, ``np.random.seed(i)`` before each sample i."""
    from mmseg.datasets.transforms import PhotoMetricDistortion, RandomCrop, RandomFlip
    from mmseg.models.data_preprocessor import SegDataPreProcessor
    from mmseg.registry import TRANSFORMS
    from mmseg.utils import register_all_modules

    from vltseg_d2.data.mapper import SemSegDatasetMapper, train_augmentations
    from vltseg_d2.modeling.meta_arch import MaskFormer

    register_all_modules(init_default_scope=True)
    scales = [int(512 * x * 0.1) for x in range(5, 21)]
    chain = [
        TRANSFORMS.build(
            dict(type="RandomChoiceResize", scales=scales, resize_type="ResizeShortestEdge", max_size=2048)
        ),
        RandomCrop(crop_size=(512, 512), cat_max_ratio=0.75),
        RandomFlip(prob=0.5),
        PhotoMetricDistortion(),
    ]
    preprocessor = SegDataPreProcessor(mean=MEAN, std=STD, size=(512, 512), bgr_to_rgb=True, pad_val=0, seg_pad_val=255)
    mapper = SemSegDatasetMapper(train_augmentations((512, 512), scales, max_size=2048), pad_to=(512, 512))
    mean, std = torch.tensor(MEAN).view(-1, 1, 1), torch.tensor(STD).view(-1, 1, 1)
    found = dict(samples=samples, max_abs_input_diff=0.0, label_pixels_differing=0, samples_padded=0)
    with tempfile.TemporaryDirectory() as tmp:
        records = synthetic_gta_records(Path(tmp), 4)
        for i in range(samples):
            np.random.seed(i)
            ref_input, ref_label = reference_training_sample(chain, preprocessor, records[i % 4])
            np.random.seed(i)
            out = mapper(dict(records[i % 4]))
            ours = MaskFormer._pad_to_label((out["image"].float() - mean) / std, out["instances"])
            found["max_abs_input_diff"] = max(found["max_abs_input_diff"], float((ours - ref_input).abs().max()))
            found["label_pixels_differing"] += int((out["sem_seg"] != ref_label).sum())
            found["samples_padded"] += out["image"].shape[1:] != (512, 512)
    return found


def compare_test_resizes() -> dict:
    """mmseg's test ``Resize(scale, keep_ratio=True)`` against ``inference_augmentations`` for the
    protocols' scales and assorted frame sizes (Mapillary's half-resolution frames vary)."""
    from mmcv.transforms import Resize

    from vltseg_d2.data.mapper import inference_augmentations

    sizes = [(1024, 2048), (720, 1280), (1080, 1920), (768, 1024), (612, 816), (1512, 2016), (600, 799), (1225, 1633)]
    rng = np.random.default_rng(0)
    found = dict(frames=0, size_mismatches=0, max_abs_pixel_diff=0)
    for long, short in [(1024, 512), (2048, 1024), (1280, 720), (1920, 1080)]:
        reference = Resize(scale=(long, short), keep_ratio=True)
        for h, w in sizes:
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            expected = reference(dict(img=img.copy()))["img"]
            (ours,) = inference_augmentations(short, long)
            got = ours.get_transform(img).apply_image(img)
            found["frames"] += 1
            if got.shape != expected.shape:
                found["size_mismatches"] += 1
            else:
                diff = np.abs(got.astype(int) - expected).max()
                found["max_abs_pixel_diff"] = max(found["max_abs_pixel_diff"], int(diff))
    return found


def reference_lrs(schedulers, max_iter: int, base_lr: float) -> np.ndarray:
    """The lr of iterations 0..max_iter-1 as mmengine's ``ParamSchedulerHook`` sets it (one
    ``step()`` of every scheduler after each iteration)."""
    from mmengine.optim.scheduler import LinearLR, PolyLR

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    built = [
        (LinearLR if kind == "linear" else PolyLR)(optimizer, by_epoch=False, **kwargs) for kind, kwargs in schedulers
    ]
    lrs = []
    for _ in range(max_iter):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        for scheduler in built:
            scheduler.step()
    return np.array(lrs)


def compare_schedules() -> dict:
    """Every iteration's lr of each recipe's schedule: mmengine against ``PolyWithLinearWarmup``."""
    from vltseg_d2.engine.schedule import PolyWithLinearWarmup

    recipes = {  # name: (max_iter, base lr, mmengine schedulers, our warmup_length, our warmup_factor)
        "rein_gta2cbm_512 (PolyLR 0..40k)": (
            40000,
            1e-4,
            [("poly", dict(power=0.9, eta_min=0, begin=0, end=40000))],
            0.0,
            1e-6,
        ),
        "rein_citys2acdc_1024 (LinearLR 0..10k + PolyLR 10k..40k)": (
            40000,
            6e-5,
            [
                ("linear", dict(start_factor=1e-6, begin=0, end=10000)),
                ("poly", dict(power=0.9, eta_min=0, begin=10000, end=40000)),
            ],
            0.25,
            1e-6,
        ),
        "vltseg_gta2cbm_512 (PolyLR 500..5k)": (
            5000,
            1e-4,
            [("poly", dict(power=0.9, eta_min=0, begin=500, end=5000))],
            0.1,
            1.0,
        ),
    }
    found = {}
    for name, (max_iter, lr, schedulers, warmup, factor) in recipes.items():
        expected = reference_lrs(schedulers, max_iter, lr)
        ours = PolyWithLinearWarmup(max_iter, 0.9, warmup, factor)
        got = np.array([lr * ours(i / max_iter) for i in range(max_iter)])
        found[name] = dict(max_abs_diff_over_base_lr=float(np.abs(got - expected).max() / lr), last_lr=float(got[-1]))
    return found


def compare_soma_weight_decay_and_ema(max_iter: int = 40000) -> dict:
    """SoMA's cosine weight decay (groups at 0.05 and 0) and its EMA (begin 12000, momentum 2e-4)
    against mmengine's ``CosineAnnealingParamScheduler`` and ``EMAHook``/``ExponentialMovingAverage``."""
    from mmengine.model import ExponentialMovingAverage
    from mmengine.optim.scheduler import CosineAnnealingParamScheduler

    from vltseg_d2.engine.ema import TrainableEMA
    from vltseg_d2.engine.schedule import CosineWeightDecay

    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.SGD(
        [{"params": [params[0]], "weight_decay": 0.05}, {"params": [params[1]], "weight_decay": 0.0}], lr=0.1
    )
    reference = CosineAnnealingParamScheduler(
        optimizer, param_name="weight_decay", eta_min=1e-5, begin=0, end=max_iter, by_epoch=False
    )
    ours, worst = CosineWeightDecay(max_iter, 1e-5), 0.0
    for t in range(max_iter):
        for group, initial in zip(optimizer.param_groups, (0.05, 0.0)):
            worst = max(worst, abs(group["weight_decay"] - ours.at_iteration(initial, t)))
        optimizer.step()
        reference.step()
    model = torch.nn.Linear(3, 2)
    ema_ref, ema_ours = ExponentialMovingAverage(model, momentum=2e-4), TrainableEMA(model, 1 - 2e-4, 12000)
    ema_worst, g = 0.0, torch.Generator().manual_seed(0)
    for t in range(12100):  # mmengine's EMAHook.after_train_iter: started once runner.iter + 1 >= begin_iter
        with torch.no_grad():
            model.weight.add_(torch.randn(2, 3, generator=g) * 0.01)
        if t + 1 >= 12000:
            ema_ref.update_parameters(model)
        else:
            ema_ref.module.weight.data.copy_(model.weight.data)
        ema_ours.update(t)
        ema_worst = max(ema_worst, float((ema_ref.module.weight - ema_ours.shadow["weight"]).abs().max()))
    return dict(weight_decay_max_abs_diff=worst, ema_max_abs_diff=ema_worst)


def rein_module_tree(keys_file: Path) -> torch.nn.Module:
    """A module tree holding every tensor of Rein's released layout under its mmseg name, with the
    module types Rein's optimizer constructor looks at: mmdetection names its LayerNorms
    ``norms.<i>`` / ``post_norm`` and mmcv's ConvModule its GroupNorms ``gn``."""
    root = torch.nn.Module()
    for line in keys_file.read_text().splitlines():
        name, shape = line.split(" ", 1)
        *path, leaf = name.split(".")
        module = root
        for i, part in enumerate(path):
            if not hasattr(module, part):
                is_norm = part == "gn" or part == "post_norm" or (i > 0 and path[i - 1] == "norms")
                kind = (torch.nn.GroupNorm(1, 1) if part == "gn" else torch.nn.LayerNorm(1)) if is_norm else None
                if kind is not None:
                    del kind.weight, kind.bias
                module.add_module(part, kind if kind is not None else torch.nn.Module())
            module = getattr(module, part)
        module.register_parameter(leaf, torch.nn.Parameter(torch.zeros(ast.literal_eval(shape) or ())))
    return root


def rein_optimizer_table(rein_src: str, keys_file: Path) -> dict:
    """{our parameter name: (lr, weight decay)} as Rein's ``PEFTOptimWrapperConstructor`` builds
    the Rein GTA recipe's AdamW groups (configs/dinov2/rein_dinov2_mask2former_512x512_bs1x4.py)."""
    import importlib.util

    from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS  # noqa: F401 (registers the defaults)

    from vltseg_d2.checkpoint.rein_mmseg import map_key

    spec = importlib.util.spec_from_file_location(
        "rein_peft_constructor", Path(rein_src) / "rein/optimizers/peft_optimizer_constructor.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    embed = dict(lr_mult=1.0, decay_mult=0.0)
    constructor = module.PEFTOptimWrapperConstructor(
        dict(optimizer=dict(type="AdamW", lr=1e-4, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999))),
        dict(
            custom_keys={
                "norm": dict(decay_mult=0.0),
                "query_embed": embed,
                "level_embed": embed,
                "learnable_tokens": embed,
                "reins.scale": embed,
            },
            norm_decay_mult=0.0,
        ),
    )
    tree = rein_module_tree(keys_file)
    names = {id(p): n for n, p in tree.named_parameters()}
    groups = constructor(tree).optimizer.param_groups
    return {map_key(names[id(p)]): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}


def compare_rein_optimizer(rein_src: str, keys_file: Path, write: str = None) -> dict:
    """Rein's table against ``param_groups`` on the Rein recipe's model (meta device)."""
    from vltseg_d2.engine.optimizer import recipe_param_table

    reference = rein_optimizer_table(rein_src, keys_file)
    if write:
        header = [
            "# (lr, weight decay) of every trained tensor of the Rein GTA 512 recipe, as Rein's",
            "# PEFTOptimWrapperConstructor (rein/optimizers/peft_optimizer_constructor.py, mmengine 0.10.7)",
            "# builds them from the config's custom keys,",
            "# names mapped to this project's by vltseg_d2.checkpoint.rein_mmseg.map_key. Written by",
            "# tools/compare_with_mmseg.py --rein-src <Rein checkout> --write-optimizer-table <this file>",
        ]
        lines = header + [f"{name} {lr:g} {wd:g}" for name, (lr, wd) in sorted(reference.items())]
        Path(write).write_text("\n".join(lines) + "\n")
    ours = recipe_param_table("configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py")
    differing = sorted(n for n in reference if ours.get(n) != reference[n])
    return dict(
        tensors=len(reference), ours=len(ours), differing=differing, only_ours=sorted(set(ours) - set(reference))
    )


def main(argv=None):
    from vltseg_d2.config import tool_parser

    parser = tool_parser(__doc__)
    parser.add_argument("--reference-path", action="append", required=True, help="folder to import mmseg/mmengine from")
    parser.add_argument("--rein-src", help="a checkout of github.com/w1oves/Rein (for its optimizer constructor)")
    parser.add_argument("--write-optimizer-table", metavar="PATH", help="write Rein's (lr, weight decay) table there")
    parser.add_argument("--seeds", type=int, default=40, help="training samples compared (default 40)")
    args = parser.parse_args(argv)
    sys.path[:0] = args.reference_path
    checks = [
        ("training chain (GTA 512 recipe)", lambda: compare_training_chain(args.seeds)),
        ("test resizes", compare_test_resizes),
        ("lr schedules", compare_schedules),
        ("SoMA weight decay and EMA", compare_soma_weight_decay_and_ema),
    ]
    if args.rein_src:
        keys = Path(__file__).resolve().parents[1] / "tests/fixtures/rein_mmseg_checkpoint_keys.txt"
        checks.append(
            ("Rein optimizer groups", lambda: compare_rein_optimizer(args.rein_src, keys, args.write_optimizer_table))
        )
    for title, check in checks:
        print(f"{title}: {check()}", flush=True)


if __name__ == "__main__":
    main()
