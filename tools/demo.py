#!/usr/bin/env python
"""Segment images, folders, globs or a video and draw detectron2 Visualizer overlays.

    python tools/demo.py --config-file configs/demo/tiny_synthetic_cpu.py \\
        --input frame.png photos/ "more/*.jpg" --output out/ --side-by-side \\
        --opts train.init_checkpoint=output/demo/model_final.pth

    python tools/demo.py --config-file configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py \\
        --video-input drive.mp4 --output drive_seg.mp4 --slide --opts train.init_checkpoint=...

Overlays use the Cityscapes palette and class names. --slide uses the config's sliding-window
inference (model.test_crop / model.test_stride) for large frames; --resize SHORT LONG resizes
frames (keeping aspect) before inference, predictions come back at the original size.
"""
import argparse
import glob
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import LazyConfig
from detectron2.data import MetadataCatalog
from detectron2.utils.visualizer import ColorMode, Visualizer
from tqdm import tqdm

from vltseg_d2.config import OverrideError, apply_overrides
from vltseg_d2.data.mapper import inference_augmentations
from vltseg_d2.engine import Trainer

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class SemSegPredictor:
    """Model from a config + checkpoint; ``predictor(rgb uint8 HxWx3)`` -> train-id map HxW."""

    def __init__(self, cfg, resize=None):
        if not cfg.train.init_checkpoint:
            raise SystemExit("error: no weights: pass --opts train.init_checkpoint=/path/to/model.pth")
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
            raise SystemExit(f"error: input {item} does not exist")
        if not found:
            raise SystemExit(f"error: no images ({', '.join(IMAGE_SUFFIXES)}) in {item}")
        files += found
    return files


def overlay(rgb: np.ndarray, pred: np.ndarray, side_by_side: bool, alpha=0.5) -> np.ndarray:
    vis = Visualizer(rgb, MetadataCatalog.get("cityscapes_val"), instance_mode=ColorMode.IMAGE)
    drawn = vis.draw_sem_seg(pred, area_threshold=max(rgb.shape[0] * rgb.shape[1] // 2000, 16), alpha=alpha).get_image()
    return np.concatenate([rgb, drawn], axis=1) if side_by_side else drawn


def run_images(predictor, files, output, side_by_side):
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


def run_video(predictor, video, output, side_by_side):
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SystemExit(f"error: cannot open video {video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer = None
    for _ in tqdm(range(frames) if frames else iter(int, 1), desc="video", unit="frame"):
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = bgr[..., ::-1].copy()
        result = overlay(rgb, predictor(rgb), side_by_side)[..., ::-1]
        if writer is None:
            Path(output).parent.mkdir(parents=True, exist_ok=True)
            writer = cv2.VideoWriter(output, cv2.VideoWriter_fourcc(*"mp4v"), fps, (result.shape[1], result.shape[0]))
        writer.write(np.ascontiguousarray(result))
    cap.release()
    if writer is not None:
        writer.release()
    return [Path(output)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--input", nargs="+", help="images, folders or globs")
    parser.add_argument("--video-input", help="a video file")
    parser.add_argument("--output", required=True, help="folder (or a file for one image or a video)")
    parser.add_argument("--side-by-side", action="store_true", help="input and overlay side by side")
    parser.add_argument("--slide", action="store_true", help="sliding-window inference (model.test_crop/stride)")
    parser.add_argument("--resize", nargs=2, type=int, metavar=("SHORT", "LONG"), help="resize before inference")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the config's train.device)")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides key=value")
    args = parser.parse_args(argv)
    if bool(args.input) == bool(args.video_input):
        parser.error("give either --input or --video-input")
    cfg = LazyConfig.load(args.config_file)
    try:
        cfg = apply_overrides(cfg, args.opts)
    except OverrideError as e:
        parser.error(str(e))
    cfg.model.test_mode = "slide" if args.slide else cfg.model.test_mode
    if args.device:
        cfg.train.device = args.device
    predictor = SemSegPredictor(cfg, args.resize)
    if args.video_input:
        written = run_video(predictor, args.video_input, args.output, args.side_by_side)
    else:
        written = run_images(predictor, expand_inputs(args.input), args.output, args.side_by_side)
    print(f"wrote {len(written)} file(s) to {os.path.commonpath([str(p) for p in written]) if written else args.output}")
    return written


if __name__ == "__main__":
    main()
