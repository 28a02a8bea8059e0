"""Inference on files and detectron2 Visualizer overlays (used by tools/demo.py and `make demo`)."""
import glob
import logging
from pathlib import Path

import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.data.detection_utils import read_image
from detectron2.utils.visualizer import ColorMode, Visualizer
from tqdm import tqdm

from .checkpoint import load_weights
from .data.mapper import inference_augmentations
from .data.prepare.common import write_atomic
from .engine import Trainer

logger = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


# Whole-image inference of a ViT grows with the square of the pixel count (global attention):
# frames above this size are run by sliding window instead (8000x4000 whole needs ~12 GB).
MAX_WHOLE_PIXELS = 2048 * 2048


class SemSegPredictor:
    """Model from a config + checkpoint; ``predictor(rgb uint8 HxWx3)`` -> train-id map HxW.
    Frames over ``max_whole_pixels`` use sliding-window inference whatever the config says."""

    def __init__(self, cfg, resize=None, max_whole_pixels: int = MAX_WHOLE_PIXELS):
        if not cfg.train.init_checkpoint:
            raise ValueError("no weights: set train.init_checkpoint=/path/to/model.pth")
        self.model = Trainer.build_model(cfg).eval()
        load_weights(self.model, cfg.train.init_checkpoint, strict=cfg.train.get("strict_load", True))
        self.augs = inference_augmentations(*resize) if resize else []
        self.max_whole_pixels = max_whole_pixels

    @torch.no_grad()
    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        image = rgb
        for aug in self.augs:
            image = aug.get_transform(image).apply_image(image)
        record = {"image": torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))),
                  "height": rgb.shape[0], "width": rgb.shape[1]}
        mode = "slide" if image.shape[0] * image.shape[1] > self.max_whole_pixels else None
        if mode and self.model.test_mode != "slide":
            logger.info(f"{image.shape[1]}x{image.shape[0]} is over {self.max_whole_pixels} pixels: "
                        f"sliding window {self.model.test_crop} / stride {self.model.test_stride}")
        return self.model.inference([record], test_mode=mode)[0]["sem_seg"].argmax(0).cpu().numpy()


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


def overlay(rgb: np.ndarray, pred: np.ndarray, side_by_side: bool, alpha=0.5) -> np.ndarray:
    vis = Visualizer(rgb, MetadataCatalog.get("cityscapes_val"), instance_mode=ColorMode.IMAGE)
    drawn = vis.draw_sem_seg(pred, area_threshold=max(rgb.shape[0] * rgb.shape[1] // 2000, 16), alpha=alpha).get_image()
    return np.concatenate([rgb, drawn], axis=1) if side_by_side else drawn


def run_images(predictor, files, output, side_by_side=False):
    """Write an overlay per image into the folder ``output`` (or to ``output`` for one image file)."""
    single_file = len(files) == 1 and Path(output).suffix.lower() in IMAGE_SUFFIXES
    out_dir = Path(output).parent if single_file else Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in tqdm(files, desc="demo", unit="image"):
        try:  # read fully: a truncated JPEG is an error here, not a half-grey overlay
            rgb = read_image(str(path), format="RGB")
        except (OSError, ValueError) as e:
            logger.warning(f"skipping unreadable image {path} ({type(e).__name__}: {e})")
            continue
        result = overlay(rgb, predictor(rgb), side_by_side)
        target = Path(output) if single_file else out_dir / f"{path.stem}_seg.png"
        write_atomic(target, np.ascontiguousarray(result[..., ::-1]))
        written.append(target)
    return written


