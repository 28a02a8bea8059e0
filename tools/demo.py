#!/usr/bin/env python
"""Segment images, folders, globs or a video and draw detectron2 Visualizer overlays.

    python tools/demo.py --config-file configs/demo/tiny_synthetic_cpu.py \\
        --input frame.png photos/ "more/*.jpg" --output out/ --side-by-side \\
        --opts train.init_checkpoint=output/demo/model_final.pth

    python tools/demo.py --config-file configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py \\
        --video-input drive.mp4 --output drive_seg.mp4 --slide --opts train.init_checkpoint=...

Overlays use the Cityscapes palette and class names. --slide uses the config's sliding-window
inference (model.test_crop / model.test_stride) for large frames. Frames are resized as the
config's evaluation protocol resizes --dataset (or by --resize SHORT LONG, keeping aspect);
predictions come back at the original size. The same predictor is importable:
vltseg_d2.engine.Predictor (detectron2's DefaultPredictor contract). Frames
over 2048x2048 pixels always use the sliding window (whole-image attention would not fit); a frame
over 2048x1024 that the protocol leaves at full resolution is said once, with how to resize it.
Unreadable or truncated images are skipped with their name; nothing written is an error.
"""

import vltseg_d2  # noqa: F401  (first: it silences detectron2's import-time torch.jit warnings)

# isort: split

import os
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from vltseg_d2.checkpoint import CheckpointError
from vltseg_d2.config import add_override_arguments, load_config_for_tool, overrides_of, tool_parser
from vltseg_d2.engine import Predictor
from vltseg_d2.utils.atomic import atomic_path
from vltseg_d2.visualization import expand_inputs, overlay, predict_train_ids, run_images


def video_target(video, output) -> Path:
    """``output`` itself for a file name with a suffix, else ``<output>/<video stem>_seg.mp4``."""
    output = Path(output)
    if output.is_dir() or not output.suffix:
        return output / f"{Path(video).stem}_seg.mp4"
    return output


def run_video(predictor, video, output, side_by_side):
    """The overlaid video, written under a temporary name and renamed when complete (an interrupted
    run leaves no half file); returns ``[path]``, or ``[]`` when no frame could be read."""
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SystemExit(f"error: cannot open video {video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    target, written, writer = video_target(video, output), 0, None
    try:
        with atomic_path(target) as tmp:
            for _ in tqdm(range(frames) if frames else iter(int, 1), desc="video", unit="frame"):
                ok, bgr = cap.read()
                if not ok:
                    break
                rgb = bgr[..., ::-1].copy()
                result = np.ascontiguousarray(overlay(rgb, predict_train_ids(predictor, rgb), side_by_side)[..., ::-1])
                if writer is None:
                    size = (result.shape[1], result.shape[0])
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                    if not writer.isOpened():
                        raise OSError(f"OpenCV cannot write {target.suffix} video (mp4v); use an .mp4 or .avi name")
                writer.write(result)
                written += 1
            if writer is not None:
                writer.release()
            if not written or not tmp.is_file() or tmp.stat().st_size == 0:
                raise OSError(f"no frame of {video} could be read or written")
    finally:
        cap.release()
    print(f"{target}: {written} frames")
    return [target]


def main(argv=None):
    parser = tool_parser(__doc__)
    parser.add_argument("--config-file", required=True, help="the LazyConfig the weights were trained with")
    parser.add_argument("--input", nargs="+", help="images, folders or globs")
    parser.add_argument("--video-input", help="a video file")
    parser.add_argument("--output", required=True, help="folder (or a file for one image or a video)")
    parser.add_argument("--side-by-side", action="store_true", help="input and overlay side by side")
    parser.add_argument("--slide", action="store_true", help="sliding-window inference (model.test_crop/stride)")
    parser.add_argument(
        "--resize",
        nargs=2,
        type=int,
        metavar=("SHORT", "LONG"),
        help="resize before inference (default: the --dataset's evaluation protocol)",
    )
    parser.add_argument(
        "--dataset",
        default=None,
        help="apply this dataset's evaluation resize protocol (default: the config's first test dataset)",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the config's train.device)")
    parser.add_argument("--opacity", type=float, default=0.5, help="overlay opacity in (0, 1] (default: %(default)s)")
    parser.add_argument(
        "--save-labels",
        choices=("trainId", "labelId"),
        default=None,
        help="also write the raw prediction as <frame>_<format>.png beside each overlay (images only)",
    )
    add_override_arguments(parser)
    args = parser.parse_args(argv)
    if bool(args.input) == bool(args.video_input):
        parser.error("give either --input or --video-input")
    if not 0 < args.opacity <= 1:
        parser.error(f"--opacity {args.opacity}: must be in (0, 1]")
    cfg = load_config_for_tool(parser, args.config_file, overrides_of(args))
    cfg.model.test_mode = "slide" if args.slide else cfg.model.test_mode
    if args.device:
        cfg.train.device = args.device
    try:
        predictor = Predictor(cfg, input_format="RGB", dataset=args.dataset, resize=args.resize)
        if args.video_input:
            try:
                written = run_video(predictor, args.video_input, args.output, args.side_by_side)
            except OSError as e:
                sys.exit(f"error: {e}; nothing was written")
        else:
            files = expand_inputs(args.input)
            written = run_images(predictor, files, args.output, args.side_by_side, args.opacity, args.save_labels)
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        parser.error(str(e))
    if not written:
        sys.exit(f"error: nothing was written to {args.output}: every input was skipped (see the warnings above)")
    print(
        f"wrote {len(written)} file(s) to {os.path.commonpath([str(p) for p in written]) if written else args.output}"
    )
    return written


if __name__ == "__main__":
    main()
