#!/usr/bin/env python
"""Export the inference model to ONNX and check it against PyTorch with onnxruntime.

    python tools/export_onnx.py --config-file configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py \\
        --checkpoint output/rein_dinov2_l_gta2cbm_512_bs4_40k/model_final.pth --output rein.onnx --check

The graph maps an RGB image (N, 3, H, W), float 0..255, to class scores (N, 19, H, W): one whole
image, or one sliding window (default size: the config's model.test_crop). H and W must be
multiples of 32. --dynamic makes N, H and W dynamic. --sampling gather replaces GridSample
(opset >= 16) in the deformable attention by gathers with the same numbers, for runtimes that
lack or miscompile GridSample (some TensorRT versions). Sliding windows, resizing and the argmax
stay in the caller. --check runs onnxruntime (CPU) on a random image and prints the largest
difference to PyTorch; it fails above --tolerance. Frozen-backbone checkpoints need their
backbone file (model.backbone.pretrained), as for evaluation.
"""

import vltseg_d2  # noqa: F401  (first: it silences detectron2's import-time torch.jit warnings)

# isort: split

import os
import sys

import numpy as np
import torch
from detectron2.config import instantiate

from vltseg_d2.checkpoint import CheckpointError, load_weights
from vltseg_d2.config import add_override_arguments, load_config_for_tool, overrides_of, tool_parser
from vltseg_d2.export import SemSegExportModule, export_onnx


def parity(model, path, size, batch=1) -> float:
    """Largest |onnxruntime - PyTorch| on a random image of ``size``."""
    import onnxruntime

    image = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        expected = SemSegExportModule(model)(image).numpy()
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": image.numpy()})[0]
    return float(np.abs(got - expected).max())


def main(argv=None):
    parser = tool_parser(__doc__)
    parser.add_argument("--config-file", required=True, help="the LazyConfig the weights were trained with")
    parser.add_argument("--checkpoint", default=None, help="weights (default: train.init_checkpoint)")
    parser.add_argument("--output", required=True, help="the .onnx file to write")
    parser.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="input size (default: model.test_crop)")
    parser.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    parser.add_argument(
        "--sampling",
        choices=("grid_sample", "gather"),
        default="grid_sample",
        help="how the deformable attention samples: GridSample, or gathers for runtimes without it",
    )
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (GridSample needs >= 16)")
    parser.add_argument("--check", action="store_true", help="compare onnxruntime with PyTorch")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="largest difference --check accepts")
    add_override_arguments(parser)
    args = parser.parse_args(argv)
    if args.size and min(args.size) <= 0:
        parser.error(f"--size {args.size[0]} {args.size[1]}: both must be positive multiples of 32")
    if args.opset < 16 and args.sampling == "grid_sample":
        parser.error(f"--opset {args.opset}: GridSample needs opset 16 or later (or --sampling gather)")
    if not args.tolerance >= 0:
        parser.error(f"--tolerance {args.tolerance}: must be >= 0")
    if os.path.isdir(args.output):
        parser.error(f"--output {args.output} is a folder: name the .onnx file to write")
    cfg = load_config_for_tool(parser, args.config_file, overrides_of(args))
    checkpoint = args.checkpoint or cfg.get("train", {}).get("init_checkpoint")
    if not checkpoint:
        parser.error("give --checkpoint (or train.init_checkpoint=...): exporting random weights is rarely meant")
    model = instantiate(cfg.model).eval()
    try:
        load_weights(model, checkpoint)
        size = tuple(args.size or cfg.model.test_crop)
        export_onnx(model, args.output, size, dynamic=args.dynamic, opset=args.opset, sampling=args.sampling)
    except (CheckpointError, OSError, ValueError) as e:  # OSError: an output that cannot be written
        sys.exit(f"error: {e}")
    if args.check:
        diff = parity(model, args.output, size)
        print(f"onnxruntime vs PyTorch at {size[0]}x{size[1]}: max abs difference {diff:.3g}")
        if not diff <= args.tolerance:
            sys.exit(f"error: the difference {diff:.3g} is above --tolerance {args.tolerance}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
