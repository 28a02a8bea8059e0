"""The built-in multi-domain synthetic driving benchmark.

    python -m vltseg_d2.data.synthetic [--root datasets] [--num-train 300] [--num-val 40] ...

writes ``<root>/synthetic/<domain>/<split>/{images,labels}/<index>.png`` (labels in Cityscapes
train ids) and prints a summary. The source domain has ``train`` and ``val``; each target domain
(night, fog, rain, snow, texture) has ``val``, rendered from the same scene layouts as the
source ``val`` so that only appearance differs. Splits are registered as
``synthetic_source_train``, ``synthetic_source_val`` and ``synthetic_<domain>_val``.
Generation is deterministic by ``--seed`` and skipped when the same settings were already written.
"""

import argparse
import json
import multiprocessing as mp
import os
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from tabulate import tabulate
from tqdm import tqdm

from .datasets.classes import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES
from .datasets.register import datasets_root
from .synthetic_domains import DOMAINS, TARGET_DOMAINS
from .synthetic_scene import draw_scene

SPLIT_SEEDS = {"train": 1, "val": 2}


def split_domains(split: str):
    return ("source",) if split == "train" else tuple(DOMAINS)


def frame_paths(root: Path, domain: str, split: str, index: int):
    base = root / domain / split
    return base / "images" / f"{index:05d}.png", base / "labels" / f"{index:05d}.png"


def render_frame(index: int, split: str, seed: int, height: int, width: int):
    """Draw scene ``index`` of ``split`` and render it in each of the split's domains."""
    seq = np.random.SeedSequence([seed, SPLIT_SEEDS[split], index])
    scene_seed, *domain_seeds = seq.spawn(1 + len(DOMAINS))
    scene = draw_scene(np.random.default_rng(scene_seed), height, width)
    images = {
        d: DOMAINS[d](scene, np.random.default_rng(s))
        for d, s in zip(DOMAINS, domain_seeds)
        if d in split_domains(split)
    }
    return scene.label, images


def _write_frame(index, split, seed, height, width, root):
    label, images = render_frame(index, split, seed, height, width)
    counts = np.bincount(label.ravel(), minlength=256)[:NUM_CLASSES]
    for domain, img in images.items():
        img_path, label_path = frame_paths(root, domain, split, index)
        cv2.imwrite(str(img_path), cv2.cvtColor((img * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(label_path), label)
    return counts, {d: float(img.mean()) for d, img in images.items()}


def generate(root=None, num_train=300, num_val=40, height=256, width=512, seed=0, nproc=None, force=False):
    """Write the benchmark under ``root/synthetic`` (``root`` defaults to $DETECTRON2_DATASETS).

    Returns the summary dict (also stored in ``manifest.json``)."""
    out = Path(root or datasets_root()) / "synthetic"
    settings = dict(num_train=num_train, num_val=num_val, height=height, width=width, seed=seed)
    manifest = out / "manifest.json"
    if manifest.exists() and not force:
        previous = json.loads(manifest.read_text())
        if previous["settings"] == settings:
            previous["reused"] = True
            return previous
    if manifest.exists():
        manifest.unlink()  # written again last: a missing manifest marks an incomplete benchmark
    start = time.time()
    rows, class_pixels = [], np.zeros(NUM_CLASSES, np.int64)
    nproc = nproc or min(os.cpu_count() or 1, 8)
    for split, count in (("train", num_train), ("val", num_val)):
        for domain in split_domains(split):
            for sub in ("images", "labels"):
                (out / domain / split / sub).mkdir(parents=True, exist_ok=True)
        work = partial(_write_frame, split=split, seed=seed, height=height, width=width, root=out)
        brightness = {d: 0.0 for d in split_domains(split)}
        with mp.get_context("fork").Pool(nproc) as pool:
            for counts, means in tqdm(
                pool.imap(work, range(count), chunksize=4),
                total=count,
                desc=f"synthetic {split}",
                unit="frame",
                leave=False,
            ):
                class_pixels += counts
                for d, m in means.items():
                    brightness[d] += m / count
        rows += [
            dict(dataset=f"synthetic_{d}_{split}", domain=d, split=split, frames=count, mean_brightness=round(b, 3))
            for d, b in brightness.items()
        ]
    summary = dict(
        settings=settings,
        root=str(out),
        seconds=round(time.time() - start, 1),
        splits=rows,
        class_fraction={n: round(float(p) / max(class_pixels.sum(), 1), 4) for n, p in zip(CLASS_NAMES, class_pixels)},
    )
    manifest.write_text(json.dumps(summary, indent=2))
    summary["reused"] = False
    return summary


def format_summary(summary) -> str:
    present = {n: f for n, f in summary["class_fraction"].items() if f > 0}
    verb = "reused" if summary.get("reused") else f"generated in {summary['seconds']} s"
    lines = [
        f"Synthetic benchmark at {summary['root']} ({verb}); settings {summary['settings']}",
        tabulate(summary["splits"], headers="keys", tablefmt="github"),
        f"{len(present)} of {NUM_CLASSES} classes present (pixel fraction): "
        + ", ".join(f"{n} {f:.3f}" for n, f in present.items()),
        f"ignore label {IGNORE_LABEL}; target domains: {', '.join(TARGET_DOMAINS)}",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=None, help="datasets root (default: $DETECTRON2_DATASETS or ./datasets)")
    parser.add_argument("--num-train", type=int, default=300, help="source training frames")
    parser.add_argument("--num-val", type=int, default=40, help="validation frames per domain")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nproc", type=int, default=None, help="worker processes (default: CPU count)")
    parser.add_argument("--force", action="store_true", help="regenerate even if the same settings exist")
    args = parser.parse_args(argv)
    summary = generate(
        args.root, args.num_train, args.num_val, args.height, args.width, args.seed, args.nproc, args.force
    )
    print(format_summary(summary))
    return summary


if __name__ == "__main__":
    main()
