"""``Predictor``: detectron2's ``DefaultPredictor`` contract for semantic segmentation.

    from detectron2.config import LazyConfig
    from vltseg_d2.engine import Predictor

    cfg = LazyConfig.load("configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py")
    predictor = Predictor(cfg, "output/rein_dinov2_l_gta2cbm_512_bs4_40k/model_final.pth")
    scores = predictor(cv2.imread("frame.png"))["sem_seg"]      # 19 x H x W, BGR input by default
    train_ids = scores.argmax(0)                                  # names: predictor.metadata.stuff_classes

The image is resized as the config's evaluation protocol resizes ``dataset`` (default: the first
of ``dataloader.test_datasets``), inference runs whole-image or by sliding window as the config
says, and scores come back at the input's size. Frames over ``max_whole_pixels`` always use the
sliding window: whole-image attention grows with the square of the pixel count.
"""

import logging
from typing import Optional, Sequence

import numpy as np
import torch
from detectron2.data import MetadataCatalog

from ..checkpoint import load_weights
from ..data.mapper import inference_augmentations
from .train_step import autocast, resolve_precision
from .trainer import Trainer, evaluation_dataset_names, resolve_device

logger = logging.getLogger(__name__)

MAX_WHOLE_PIXELS = 2048 * 2048  # 8000x4000 whole-image inference needs ~12 GB
LARGE_FRAME_PIXELS = 2048 * 1024  # Cityscapes at full resolution: the largest frame any protocol evaluates


def check_image(image, input_format: str = "BGR"):
    """Refuse, in one line saying what is taken and how to convert, any image that is not an
    H x W x 3 uint8 array: a float image in 0..1 read as 0..255, a gray, BGRA or CHW array, or a
    tensor would otherwise give a silently wrong prediction or a traceback deep in the model."""
    takes = f"the predictor takes an H x W x 3 uint8 {input_format} numpy array (as cv2.imread gives)"
    if isinstance(image, torch.Tensor):
        raise TypeError(f"{takes}, not a torch tensor (a C x H x W tensor: tensor.permute(1, 2, 0).cpu().numpy())")
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{takes}, not a {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(
            f"{takes}, not {image.dtype} (floats in 0..1: (image * 255).round().astype(np.uint8); "
            "16-bit: (image / 257).round().astype(np.uint8))"
        )
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[2] != 3:
        raise ValueError(f"{takes}, not 3 x H x W {image.shape} (image.transpose(1, 2, 0))")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"{takes}, not shape {image.shape} (gray: cv2.cvtColor(image, cv2.COLOR_GRAY2BGR); "
            "with alpha: cv2.cvtColor(image, cv2.COLOR_BGRA2BGR))"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{takes}; this one is empty ({image.shape})")


class Predictor:
    """Args:
    cfg: a LazyConfig with ``model``, ``train`` and ``dataloader``.
    checkpoint: weights to load (default ``cfg.train.init_checkpoint``).
    input_format: "BGR" (detectron2's default, what OpenCV reads) or "RGB".
    dataset: whose evaluation resize protocol to apply (``dataloader.test_protocols``).
    resize: (short edge, max long edge) instead of the dataset's protocol.
    max_whole_pixels: larger frames use the sliding window whatever the config says.
    large_frame_pixels: a frame over this size that the protocol leaves at full resolution is
        said once (it is slow, and larger than any frame the recipes were evaluated at), with how
        to resize it.
    """

    def __init__(
        self,
        cfg,
        checkpoint: Optional[str] = None,
        input_format: str = "BGR",
        dataset: Optional[str] = None,
        resize: Optional[Sequence[int]] = None,
        max_whole_pixels: int = MAX_WHOLE_PIXELS,
        large_frame_pixels: int = LARGE_FRAME_PIXELS,
    ):
        if input_format not in ("BGR", "RGB"):
            raise ValueError(f"input_format must be 'BGR' or 'RGB', not {input_format!r}")
        checkpoint = checkpoint or cfg.train.init_checkpoint
        if not checkpoint:
            raise ValueError("no weights: pass a checkpoint or set train.init_checkpoint=/path/to/model.pth")
        self.cfg, self.input_format, self.max_whole_pixels = cfg, input_format, max_whole_pixels
        self.large_frame_pixels, self._said_large = large_frame_pixels, False
        self.model = Trainer.build_model(cfg).eval()
        load_weights(self.model, checkpoint, strict=cfg.train.get("strict_load", True))
        if hasattr(self.model.backbone, "merge_adapters"):  # SoMA: fold the adapters into the weights
            self.model.backbone.merge_adapters()
        dataset = self.dataset = dataset or evaluation_dataset_names(cfg)[0]
        self.metadata = MetadataCatalog.get(dataset)
        protocol = (
            dict(short_edge=resize[0], max_size=resize[1])
            if resize
            else dict(cfg.dataloader.get("test_protocols", {}).get(dataset, {}))
        )
        self.augmentations = inference_augmentations(**protocol)
        self.device = resolve_device(cfg.train.device)
        self.precision = resolve_precision(cfg.train.amp.enabled, cfg.train.amp.precision, self.device)

    def _say_if_full_resolution(self, original, resized):
        if self._said_large or resized[:2] != original[:2] or original[0] * original[1] <= self.large_frame_pixels:
            return
        self._said_large = True
        logger.warning(
            f"a {original[1]}x{original[0]} frame runs at full resolution: the evaluation protocol of "
            f"{self.dataset} does not resize it. It is slow and larger than the frames the recipes were "
            "evaluated at; to resize, pass --resize 1024 2048 to tools/demo.py (short edge, longest edge) "
            "or Predictor(..., resize=(1024, 2048)). Said once."
        )

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> dict:
        """``image``: H x W x 3 uint8 in ``input_format``. Returns ``{"sem_seg": K x H x W scores}``."""
        check_image(image, self.input_format)
        rgb = image[..., ::-1] if self.input_format == "BGR" else image
        resized = rgb
        for aug in self.augmentations:
            resized = aug.get_transform(resized).apply_image(resized)
        record = {
            "image": torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1))),
            "height": image.shape[0],
            "width": image.shape[1],
        }
        self._say_if_full_resolution(image.shape, resized.shape)
        mode = "slide" if resized.shape[0] * resized.shape[1] > self.max_whole_pixels else None
        if mode and self.model.test_mode != "slide":
            logger.info(
                f"{resized.shape[1]}x{resized.shape[0]} is over {self.max_whole_pixels} pixels: sliding "
                f"window {self.model.test_crop} / stride {self.model.test_stride}"
            )
        with autocast(self.device, self.precision):
            return self.model.inference([record], test_mode=mode)[0]
