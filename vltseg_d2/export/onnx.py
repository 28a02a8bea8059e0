"""ONNX export of the inference model: one image (or one sliding window) -> class scores.

What is exported: :class:`SemSegExportModule`, i.e. normalisation, backbone (with Rein), pixel
decoder, transformer decoder and Mask2Former's semantic scores, for an RGB image
``(N, 3, H, W)`` float in 0..255 -> ``(N, K, H, W)`` scores. H and W must be multiples of the
model's ``size_divisibility`` (32): the graph does no padding. Sliding windows, resizing and the
argmax stay in the caller (one window = one call, as :func:`~vltseg_d2.modeling.inference.slide_inference`
does). ``dynamic=True`` makes H, W and N dynamic axes. ``sampling="gather"`` replaces
``GridSample`` in the deformable attention with gathers (same numbers), for consumers that lack
or miscompile it.
"""

import logging
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..modeling.inference import semantic_scores
from ..modeling.pixel_decoder.ms_deform_attn import MSDeformAttn

logger = logging.getLogger(__name__)


class SemSegExportModule(nn.Module):
    """A :class:`~vltseg_d2.modeling.MaskFormer`'s whole-image inference as one traceable forward."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = (image - m.pixel_mean) / m.pixel_std
        out = m._head_outputs(x)
        masks = F.interpolate(out["pred_masks"], size=x.shape[-2:], mode="bilinear", align_corners=False)
        return semantic_scores(out["pred_logits"], masks)


def set_deform_sampling(model: nn.Module, sampling: str) -> int:
    """Set the bilinear sampling of every deformable-attention layer; returns how many."""
    if sampling not in ("grid_sample", "gather"):
        raise ValueError(f"sampling must be 'grid_sample' or 'gather', not {sampling!r}")
    layers = [mod for mod in model.modules() if isinstance(mod, MSDeformAttn)]
    for layer in layers:
        layer.sampling = sampling
    return len(layers)


def export_onnx(
    model: nn.Module,
    path: str,
    size: Tuple[int, int],
    dynamic: bool = False,
    opset: int = 18,
    sampling: str = "grid_sample",
    batch: int = 1,
) -> Optional[str]:
    """Export ``model`` (a MaskFormer) for inputs of ``size`` (H, W); returns ``path``."""
    divisor = getattr(model, "size_divisibility", 32) or 1
    if size[0] % divisor or size[1] % divisor:
        raise ValueError(f"export size {size[0]}x{size[1]} must be a multiple of {divisor} (the graph does no padding)")
    set_deform_sampling(model, sampling)
    module = SemSegExportModule(model).eval()
    # torch.export specialises a dimension that is 1 in the example: trace a dynamic batch with 2
    example = torch.rand(max(batch, 2) if dynamic else batch, 3, *size) * 255
    dynamic_shapes = None
    if dynamic:
        h, w = (torch.export.Dim(name, min=divisor, max=8192) for name in ("height", "width"))
        dynamic_shapes = {"image": {0: torch.export.Dim("batch", min=1, max=64), 2: h, 3: w}}
    with torch.no_grad():
        torch.onnx.export(
            module,
            (example,),
            path,
            input_names=["image"],
            output_names=["sem_seg"],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            external_data=False,
        )
    logger.info(
        f"exported {type(model).__name__} for {size[0]}x{size[1]} (dynamic={dynamic}, sampling={sampling}) to {path}"
    )
    return path
