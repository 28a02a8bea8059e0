"""The MaskFormer meta-architecture for semantic segmentation (detectron2 input/output format).

Input: a list of records with ``image`` (3 x H x W, uint8 RGB) and, for training, ``instances``
(one binary mask per present class, at the label's padded size, which the normalised image is
padded to with 0); ``height``/``width`` give the size predictions are returned at.
Output: training -> dict of losses; inference -> ``[{"sem_seg": K x height x width scores}]``.
"""

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.structures import ImageList
from torch import nn

from .criterion import SetCriterion
from .inference import resize_scores, semantic_scores, slide_inference


class MaskFormerHead(nn.Module):
    """``sem_seg_head``: the pixel decoder and the transformer decoder (``predictor``)."""

    def __init__(self, pixel_decoder: nn.Module, predictor: nn.Module):
        super().__init__()
        self.pixel_decoder, self.predictor = pixel_decoder, predictor

    def forward(self, features, queries: Optional[torch.Tensor] = None, texts: Optional[torch.Tensor] = None):
        """``texts``: class text embeddings (B x K x C) for a text-attending pixel decoder (tqdm)."""
        decoded = self.pixel_decoder(features) if texts is None else self.pixel_decoder(features, texts)
        mask_features, multi_scale = decoded
        return self.predictor(multi_scale, mask_features, queries)


class MaskFormer(nn.Module):
    """Args:
    backbone: a detectron2 Backbone (e.g. :class:`ViTBackbone`); with a Rein-linked predictor
        it must have ``rein`` with ``queries()``.
    sem_seg_head: a :class:`MaskFormerHead`.
    criterion: a :class:`SetCriterion`.
    pixel_mean, pixel_std: per-channel normalisation in 0..255 RGB.
    test_mode: "whole" (one pass over the padded image) or "slide" (sliding window).
    test_crop, test_stride: window size and step (h, w) for "slide".
    window_batch: windows per forward pass in "slide" mode; ``None`` (the recipes'): 4 on a GPU,
        1 on a CPU, where one window at a time ran 1.4-1.5x faster in bf16 (Rein-L, 3 windows over
        512x1024) and as fast in float32. The scores are the same either way.
    tta_scales, tta_flip: test-time augmentation (see :meth:`tta_scores`); ``(1.0,)`` and
        ``False`` (the default) is plain inference.
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        sem_seg_head: MaskFormerHead,
        criterion: SetCriterion,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        test_mode: str = "whole",
        test_crop: Tuple[int, int] = (512, 512),
        test_stride: Tuple[int, int] = (341, 341),
        window_batch: Optional[int] = None,
        tta_scales: Sequence[float] = (1.0,),
        tta_flip: bool = False,
    ):
        super().__init__()
        if test_mode not in ("whole", "slide"):
            raise ValueError(f"test_mode must be 'whole' or 'slide', not {test_mode!r}")
        self.backbone, self.sem_seg_head, self.criterion = backbone, sem_seg_head, criterion
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(-1, 1, 1), False)
        self.size_divisibility = getattr(backbone, "size_divisibility", 32) or 1
        self.padding_constraints = getattr(backbone, "padding_constraints", None)
        self.test_mode, self.window_batch = test_mode, window_batch
        self.tta_scales, self.tta_flip = tuple(float(x) for x in tta_scales), bool(tta_flip)
        self.test_crop, self.test_stride = tuple(test_crop), tuple(test_stride)
        # set by train.compile.size_bucket: inference pads to multiples of it, so a compiled model with
        # static shapes meets few sizes (training crops and sliding windows have one size already)
        self.size_bucket: Optional[int] = None
        self.rein_linked = getattr(sem_seg_head.predictor, "rein_linked", False)
        if self.rein_linked and getattr(backbone, "rein", None) is None:
            raise ValueError("the predictor takes Rein-linked queries but the backbone has no Rein (backbone.rein)")

    @property
    def device(self):
        return self.pixel_mean.device

    @property
    def windows_per_pass(self) -> int:
        return self.window_batch or (4 if self.device.type == "cuda" else 1)

    def _normalize(self, image: torch.Tensor) -> torch.Tensor:
        return (image.to(self.device, torch.float32) - self.pixel_mean) / self.pixel_std

    def _pad(self, images) -> ImageList:
        constraints = dict(self.padding_constraints or {})
        if self.size_bucket and not self.training:  # compiled inference: a few padded sizes, not one per frame size
            divisor = constraints.get("size_divisibility", self.size_divisibility)
            constraints["size_divisibility"] = math.lcm(divisor, self.size_bucket)
        return ImageList.from_tensors(images, self.size_divisibility, padding_constraints=constraints or None)

    @staticmethod
    def _pad_to_label(image: torch.Tensor, instances) -> torch.Tensor:
        """A normalised training image padded with 0 (the mean colour) to its label's size (the
        mapper's ``pad_to``, the crop), as mmseg's ``SegDataPreProcessor`` pads after normalising."""
        (h, w), (ih, iw) = instances.image_size, image.shape[-2:]
        return F.pad(image, (0, max(w - iw, 0), 0, max(h - ih, 0))) if (h, w) != (ih, iw) else image

    def _head_outputs(self, images: torch.Tensor):
        queries = self.backbone.rein.queries() if self.rein_linked else None
        return self.sem_seg_head(self.backbone(images), queries)

    def forward(self, batched_inputs):
        if not self.training:
            return self.inference(batched_inputs)
        images = self._pad([self._pad_to_label(self._normalize(x["image"]), x["instances"]) for x in batched_inputs])
        outputs = self._head_outputs(images.tensor)
        targets = self._targets([x["instances"] for x in batched_inputs], images.tensor.shape[-2:])
        with torch.autocast(self.device.type, enabled=False):  # matching costs and losses in float32
            return self.criterion(outputs, targets)

    def _targets(self, instances, padded_size):
        """Masks padded to the batch and converted to float32 once here (the matcher and the
        criterion of every layer read them as float)."""
        targets = []
        for inst in instances:
            masks = inst.gt_masks.to(self.device)
            padded = masks.new_zeros((masks.shape[0], *padded_size), dtype=torch.float32)
            padded[:, : masks.shape[1], : masks.shape[2]] = masks
            targets.append({"labels": inst.gt_classes.to(self.device), "masks": padded})
        return targets

    def predict_scores(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores (N, K, h, w) for normalised images (N, 3, h, w) of one size."""
        h, w = images.shape[-2:]
        padded = self._pad(list(images)).tensor
        return self.scores_from_outputs(self._head_outputs(padded), padded.shape[-2:])[..., :h, :w]

    def scores_from_outputs(self, out: dict, size) -> torch.Tensor:
        """Mask2Former's order: mask logits upsampled to ``size``, then combined with the classes."""
        # upsampled in float32: under bf16 autocast this is also faster than upsampling in bf16 and casting after
        masks = F.interpolate(out["pred_masks"].float(), size=size, mode="bilinear", align_corners=False)
        return semantic_scores(out["pred_logits"], masks)

    def image_scores(self, image: torch.Tensor, test_mode: str) -> torch.Tensor:
        """(K, h, w) scores of one normalised image (3, h, w), whole or by sliding window."""
        if test_mode == "slide":
            return slide_inference(image, self.predict_scores, self.test_crop, self.test_stride, self.windows_per_pass)
        h, w = image.shape[-2:]
        return self.predict_scores(self._pad([image]).tensor)[0, :, :h, :w]

    def tta_scores(self, image: torch.Tensor, scales: Sequence[float], flip: bool, test_mode: str) -> torch.Tensor:
        """Test-time augmentation as mmsegmentation's ``TestTimeAug`` does it: the image at each
        scale (bilinear, aspect kept, sizes rounded) and, with ``flip``, also mirrored; each
        prediction (whole or sliding window) is mirrored back, resized to the image's size and the
        class scores are averaged."""
        h, w = image.shape[-2:]
        total, count = None, 0
        for scale in scales:
            size = (max(int(h * scale + 0.5), 1), max(int(w * scale + 0.5), 1))
            scaled = (
                image if size == (h, w) else F.interpolate(image[None], size, mode="bilinear", align_corners=False)[0]
            )
            for mirrored in (False, True) if flip else (False,):
                scores = self.image_scores(scaled.flip(-1) if mirrored else scaled, test_mode)
                scores = resize_scores(scores.flip(-1) if mirrored else scores, (h, w))
                total = scores if total is None else total + scores
                count += 1
        return total / count

    @torch.no_grad()
    def inference(self, batched_inputs, test_mode: Optional[str] = None):
        """Scores at each record's ``height``/``width``; ``test_mode`` overrides the model's for this call."""
        images = [self._normalize(x["image"]) for x in batched_inputs]
        mode = test_mode or self.test_mode
        if self.tta_flip or self.tta_scales != (1.0,):
            scores = [self.tta_scores(img, self.tta_scales, self.tta_flip, mode) for img in images]
        elif mode == "slide":
            scores = [
                slide_inference(img, self.predict_scores, self.test_crop, self.test_stride, self.windows_per_pass)
                for img in images
            ]
        else:
            batch = self._pad(images)
            padded_scores = self.predict_scores(batch.tensor)
            scores = [s[:, :h, :w] for s, (h, w) in zip(padded_scores, batch.image_sizes)]
        return [
            {"sem_seg": resize_scores(s, (x.get("height", s.shape[1]), x.get("width", s.shape[2])))}
            for s, x in zip(scores, batched_inputs)
        ]
