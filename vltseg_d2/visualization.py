"""Overlays of a :class:`~vltseg_d2.engine.Predictor`'s output on files, with detectron2's Visualizer
(used by tools/demo.py and `make demo`)."""

import glob
import logging
import os
from pathlib import Path

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.utils.visualizer import ColorMode, Visualizer
from matplotlib.colors import to_rgb
from matplotlib.patches import Patch
from tqdm import tqdm

from .data.images import read_image
from .data.prepare.common import write_atomic
from .evaluation.prediction_writer import TRAIN_TO_LABEL_ID
from .modeling.inference import class_map

logger = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def expand_inputs(inputs):
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif any(c in item for c in "*?["):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if p.lower().endswith(IMAGE_SUFFIXES))
        elif path.is_file():
            found = [path]
        else:
            raise FileNotFoundError(f"input {item} does not exist")
        if not found:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {item}")
        files += found
    return files


def relative_target(file_name: str, common_root: str, output_dir: Path, suffix: str) -> Path:
    """``output_dir/<folders of file_name below common_root>/<stem><suffix>``: frames with the same
    name in different folders (cities, sequences) keep apart."""
    rel = os.path.relpath(os.path.dirname(os.path.abspath(file_name)), common_root)
    return output_dir / ("" if rel == "." else rel) / f"{Path(file_name).stem}{suffix}"


def common_folder(file_names) -> str:
    folders = [os.path.dirname(os.path.abspath(f)) for f in file_names]
    return os.path.commonpath(folders) if folders else ""


def overlay(rgb: np.ndarray, pred: np.ndarray, side_by_side: bool, alpha=0.5, legend: bool = True) -> np.ndarray:
    """detectron2's Visualizer drawing of the train-id map ``pred`` on ``rgb`` (labels on a dark box),
    with a legend of the classes present (colour and name) in the lower right corner."""
    metadata = MetadataCatalog.get("cityscapes_val")
    vis = Visualizer(rgb, metadata, instance_mode=ColorMode.IMAGE)
    vis_image = vis.draw_sem_seg(pred, area_threshold=max(rgb.shape[0] * rgb.shape[1] // 2000, 16), alpha=alpha)
    for text in vis_image.ax.texts:  # a dark class colour (car, bus) is unreadable on the label's black box
        r, g, b = to_rgb(text.get_color())
        if 0.299 * r + 0.587 * g + 0.114 * b < 0.45:
            text.set_color("white")
    if legend:
        present = [int(c) for c in np.unique(pred) if 0 <= c < len(metadata.stuff_classes)]
        handles = [
            Patch(
                facecolor=np.array(metadata.stuff_colors[c]) / 255.0, edgecolor="white", label=metadata.stuff_classes[c]
            )
            for c in present
        ]
        if handles:
            size = max(rgb.shape[0] // 60, 7)  # readable on 512 px and 2048 px frames alike
            vis_image.ax.legend(
                handles=handles, loc="lower right", fontsize=size, framealpha=0.7, ncol=1 + len(handles) // 10
            )
    drawn = vis_image.get_image()
    return np.concatenate([rgb, drawn], axis=1) if side_by_side else drawn


def label_png(pred: np.ndarray, fmt: str) -> np.ndarray:
    """The prediction as written beside an overlay: train ids, or Cityscapes label ids."""
    if fmt == "trainId":
        return pred.astype(np.uint8)
    return TRAIN_TO_LABEL_ID[pred.astype(np.uint8)]


def predict_train_ids(predictor, rgb: np.ndarray) -> np.ndarray:
    """Train-id map (H x W) of an RGB frame; ``predictor`` takes RGB (``input_format="RGB"``)."""
    return class_map(predictor(rgb)["sem_seg"]).cpu().numpy()


def run_images(predictor, files, output, side_by_side=False, opacity=0.5, labels=None):
    """Write an overlay per image into the folder ``output`` (or to ``output`` for one image file);
    ``predictor`` is a :class:`~vltseg_d2.engine.Predictor` built with ``input_format="RGB"``."""
    names_a_file = Path(output).suffix.lower() in IMAGE_SUFFIXES
    if names_a_file and len(files) > 1:
        raise ValueError(f"--output {output} names one image file, but {len(files)} images were given: name a folder")
    single_file = len(files) == 1 and names_a_file
    out_dir = Path(output).parent if single_file else Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, root = [], common_folder(str(f) for f in files)
    for path in tqdm(files, desc="demo", unit="image"):
        try:  # read fully: a truncated JPEG is an error here, not a half-grey overlay
            rgb = read_image(str(path), format="RGB")
        except (OSError, ValueError) as e:
            logger.warning(f"skipping unreadable image {path} ({type(e).__name__}: {e})")
            continue
        pred = predict_train_ids(predictor, rgb)
        result = overlay(rgb, pred, side_by_side, alpha=opacity)
        target = Path(output) if single_file else relative_target(str(path), root, out_dir, "_seg.png")
        write_atomic(target, np.ascontiguousarray(result[..., ::-1]))
        written.append(target)
        if labels:  # the raw prediction beside the overlay, e.g. frame_seg.png and frame_trainId.png
            raw = target.with_name(f"{target.stem.removesuffix('_seg')}_{labels}.png")
            write_atomic(raw, label_png(pred, labels))
            written.append(raw)
    return written
