"""Inference on files and detectron2 Visualizer overlays (used by tools/demo.py and `make demo`)."""
import glob
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import MetadataCatalog
from detectron2.utils.visualizer import ColorMode, Visualizer
from tqdm import tqdm

from .data.mapper import inference_augmentations
from .engine import Trainer

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class SemSegPredictor:
    """Model from a config + checkpoint; ``predictor(rgb uint8 HxWx3)`` -> train-id map HxW."""

    def __init__(self, cfg, resize=None):
        if not cfg.train.init_checkpoint:
            raise ValueError("no weights: set train.init_checkpoint=/path/to/model.pth")
        self.model = Trainer.build_model(cfg).eval()
        DetectionCheckpointer(self.model).load(cfg.train.init_checkpoint)
        self.augs = inference_augmentations(*resize) if resize else []

    @torch.no_grad()
    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        image = rgb
        for aug in self.augs:
            image = aug.get_transform(image).apply_image(image)
        record = {"image": torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))),
                  "height": rgb.shape[0], "width": rgb.shape[1]}
        return self.model([record])[0]["sem_seg"].argmax(0).cpu().numpy()


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
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            print(f"skipping unreadable image {path}", file=sys.stderr)
            continue
        rgb = bgr[..., ::-1].copy()
        result = overlay(rgb, predictor(rgb), side_by_side)
        target = Path(output) if single_file else out_dir / f"{path.stem}_seg.png"
        cv2.imwrite(str(target), result[..., ::-1])
        written.append(target)
    return written


