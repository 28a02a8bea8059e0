"""The machinery every ``datasets/prepare_*.py`` shares.

Conversions run in parallel with a progress bar, skip outputs that already exist (so an
interrupted run resumes), write every file atomically (temporary name, then rename), and report
bad inputs by file name instead of stopping: unreadable or corrupt labels, label/image size
mismatches, images without a label and labels without an image.
"""

import argparse
import errno
import logging
import multiprocessing as mp
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from ...utils.atomic import atomic_path, remove_stale_temporaries
from ..datasets.register import datasets_root

logger = logging.getLogger(__name__)


class BadInput(Exception):
    """An input file that is reported and left out of the dataset."""


@dataclass(frozen=True)
class Task:
    label: Path  # raw label (or the input the outputs derive from)
    outputs: Tuple[Path, ...]  # all written atomically; the task is done when all exist
    image: Optional[Path] = None  # the paired image, for the size check


@dataclass
class Summary:
    converted: int = 0
    skipped: int = 0
    bad: List[Tuple[str, str]] = field(default_factory=list)

    def format(self, title: str) -> str:
        lines = [
            f"{title}: {self.converted} converted, {self.skipped} already done (skipped), {len(self.bad)} bad inputs"
        ]
        lines += [f"  BAD {path}: {reason}" for path, reason in sorted(self.bad)]
        return "\n".join(lines)


def index_files(folder: Path, suffix: str) -> Dict[str, Path]:
    """Files below ``folder`` ending in ``suffix``, keyed by relative path without the suffix."""
    return {
        str(p.relative_to(folder))[: -len(suffix)]: p
        for p in sorted(folder.rglob(f"*{suffix}"))
        if not p.name.startswith(".")
    }


def pair(images: Dict[str, Path], labels: Dict[str, Path]):
    """Returns ``[(key, image, label)]`` and a bad-input list for every unpaired file."""
    bad = [(str(images[k]), "image without a label") for k in sorted(images.keys() - labels.keys())]
    bad += [(str(labels[k]), "label without an image") for k in sorted(labels.keys() - images.keys())]
    return [(k, images[k], labels[k]) for k in sorted(images.keys() & labels.keys())], bad


def require_dir(path: Path, hint: str) -> Path:
    if not path.is_dir():
        raise SystemExit(f"error: {path} does not exist. {hint}")
    return path


def read_label_pixels(path: Path) -> np.ndarray:
    """Pixel values of an 8-bit label PNG (palette indices for palette images)."""
    try:
        with Image.open(path) as f:
            if f.mode not in ("P", "L"):
                raise BadInput(f"expected an 8-bit palette or grey label, got PIL mode {f.mode}")
            return np.asarray(f)
    except BadInput:
        raise
    except Exception as e:  # PIL raises many types for truncated or non-image files
        raise BadInput(f"unreadable or corrupt label ({type(e).__name__}: {e})") from None


def check_size(label: np.ndarray, image_path: Optional[Path]):
    if image_path is None:
        return
    try:
        with Image.open(image_path) as f:
            w, h = f.size
            f.load()  # decode fully: a truncated image must be caught here, not while training
    except Exception as e:
        raise BadInput(f"unreadable or truncated image {image_path} ({type(e).__name__}: {e})") from None
    if label.shape[:2] != (h, w):
        raise BadInput(f"label is {label.shape[1]}x{label.shape[0]} but image {image_path.name} is {w}x{h}")


def write_atomic(path: Path, array: np.ndarray, params=()):
    """Write an image through :func:`atomic_path` (format from the suffix). Encoded in memory by
    OpenCV and written by Python, which raises on a full disk, then checked for its full size
    before the rename: ``cv2.imwrite`` can report success for a short write."""
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix, array, list(params))
    if not ok:
        raise OSError(f"OpenCV could not encode {path}")
    data = encoded.tobytes()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a write or the flush at close raises on a full disk
            f.write(data)
        size = tmp.stat().st_size
        if size != len(data):
            raise OSError(errno.ENOSPC, f"only {size} of {len(data)} bytes were written")


def convert_with_table(task: Task, lut: np.ndarray):
    """The usual conversion: map an 8-bit label through ``lut``, check its size, write it."""
    label = lut[read_label_pixels(task.label)]
    check_size(label, task.image)
    write_atomic(task.outputs[0], label)


def _run_one(convert, task: Task):
    if all(p.exists() for p in task.outputs):
        return "skipped", task, None
    try:
        convert(task)
        return "converted", task, None
    except BadInput as e:
        return "bad", task, str(e)


def run(tasks: Sequence[Task], convert: Callable[[Task], None], nproc: int, desc: str, bad=()) -> Summary:
    """Convert every task; an output folder that cannot be written stops the run with one line
    naming it. Temporaries of an interrupted run (Ctrl-C, kill) are removed first."""
    for folder in sorted({p.parent for t in tasks for p in t.outputs}):
        if folder.is_dir():
            remove_stale_temporaries(folder)
    summary = Summary(bad=list(bad))
    try:
        _run_all(tasks, convert, nproc, desc, summary)
    except OSError as e:
        raise SystemExit(f"error: {e}") from None
    return summary


def _run_all(tasks, convert, nproc, desc, summary):
    work = partial(_run_one, convert)
    if nproc > 1 and len(tasks) > 1:
        with mp.get_context("fork").Pool(nproc) as pool:
            results = pool.imap_unordered(work, tasks, chunksize=8)
            _collect(results, summary, len(tasks), desc)
    else:
        _collect(map(work, tasks), summary, len(tasks), desc)


def _collect(results, summary, total, desc):
    for status, task, reason in tqdm(results, total=total, desc=desc, unit="file"):
        if status == "bad":
            summary.bad.append((str(task.label), reason))
        elif status == "converted":
            summary.converted += 1
        else:
            summary.skipped += 1


def parser(description: str, default_subdir: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--root", type=Path, default=None, help=f"dataset folder (default: $DETECTRON2_DATASETS/{default_subdir})"
    )
    p.add_argument("--nproc", type=int, default=os.cpu_count() or 1, help="parallel worker processes")
    p.set_defaults(default_subdir=default_subdir)
    return p


def resolve_root(args) -> Path:
    return args.root if args.root is not None else datasets_root() / args.default_subdir


def finish(summary: Summary, title: str) -> Summary:
    print(summary.format(title))
    return summary
