"""Aspect-preserving resizes with mmsegmentation's size rule and OpenCV's interpolation.

detectron2's ``ResizeTransform`` resizes uint8 images with PIL (antialiased bilinear), which moves
pixels by 2 grey levels on average from what the reference recipes trained and tested on. The
reference (mmsegmentation 1.x through mmcv) resizes with ``cv2.resize``: ``INTER_LINEAR`` for the
image, ``INTER_NEAREST`` for the label. The sizes follow mmcv's ``imrescale``:

    factor = min(long / max(h, w), short / min(h, w))
    new_w, new_h = int(w * factor + 0.5), int(h * factor + 0.5)

(``rescale_size``), which is what ``Resize(scale=(long, short), keep_ratio=True)`` applies.
mmseg's ``ResizeShortestEdge(scale=s, max_size=m)`` first computes a target (detectron2's rule:
short edge ``s``, long edge capped at ``m``, each rounded) and hands it to that same ``imrescale``,
so the final size goes through both roundings (:func:`shortest_edge_target`).
"""

from typing import Sequence, Tuple

import cv2
import numpy as np
from detectron2.data.transforms import Augmentation
from fvcore.transforms.transform import Transform


def rescale_size(h: int, w: int, long: float, short: float) -> Tuple[int, int]:
    """(new_h, new_w): mmcv's ``rescale_size`` of a (w, h) image to fit (long, short)."""
    factor = min(long / max(h, w), short / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


def shortest_edge_target(h: int, w: int, short_edge: int, max_size: int) -> Tuple[int, int]:
    """(target_h, target_w) of mmseg's ``ResizeShortestEdge._get_output_shape``."""
    size = float(short_edge)
    scale = size / min(h, w)
    new_h, new_w = (size, scale * w) if h < w else (scale * h, size)
    if max(new_h, new_w) > max_size:
        scale = max_size / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    return int(new_h + 0.5), int(new_w + 0.5)


class OpenCVResizeTransform(Transform):
    """Resize to (new_h, new_w): image bilinear (``cv2.INTER_LINEAR``), labels nearest."""

    def __init__(self, h: int, w: int, new_h: int, new_w: int):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        if img.shape[:2] == (self.new_h, self.new_w):
            return img
        out = cv2.resize(img, (self.new_w, self.new_h), interpolation=cv2.INTER_LINEAR)
        return out[..., None] if img.ndim == 3 and out.ndim == 2 else out  # cv2 drops a single channel

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        if segmentation.shape[:2] == (self.new_h, self.new_w):
            return segmentation
        return cv2.resize(segmentation, (self.new_w, self.new_h), interpolation=cv2.INTER_NEAREST)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords[:, 0] = coords[:, 0] * (self.new_w / self.w)
        coords[:, 1] = coords[:, 1] * (self.new_h / self.h)
        return coords


class RandomShortEdgeResize(Augmentation):
    """mmseg's ``RandomChoiceResize(scales, resize_type="ResizeShortestEdge", max_size)``.

    One short edge is drawn with ``np.random.randint(len(short_edges))`` (the reference's draw, so a
    seeded run draws the same scales), the target follows :func:`shortest_edge_target` and then
    :func:`rescale_size`.
    """

    def __init__(self, short_edges: Sequence[int], max_size: int):
        super().__init__()
        # plain ints, not the config's ListConfig (omegaconf raises and formats an exception per probe)
        self.short_edges = [int(s) for s in ([short_edges] if isinstance(short_edges, int) else short_edges)]
        self.max_size = int(max_size)

    def get_transform(self, image):
        h, w = image.shape[:2]
        short = self.short_edges[np.random.randint(len(self.short_edges))]
        target_h, target_w = shortest_edge_target(h, w, short, self.max_size)
        return OpenCVResizeTransform(h, w, *rescale_size(h, w, max(target_h, target_w), min(target_h, target_w)))


class RandomRatioResize(Augmentation):
    """mmseg 0.x's ``Resize(img_scale=None, ratio_range=(lo, hi), keep_ratio=True)`` (tqdm's
    training resize): the image's own size times a ratio drawn as
    ``np.random.random_sample() * (hi - lo) + lo`` (continuous, the reference's draw), each side
    truncated to an int, then :func:`rescale_size` to that (long, short) target."""

    def __init__(self, ratio_range: Sequence[float]):
        super().__init__()
        self.low, self.high = (float(r) for r in ratio_range)
        if not 0 < self.low <= self.high:
            raise ValueError(f"ratio_range {tuple(ratio_range)}: need 0 < low <= high")

    def get_transform(self, image):
        h, w = image.shape[:2]
        ratio = np.random.random_sample() * (self.high - self.low) + self.low
        scale_w, scale_h = int(w * ratio), int(h * ratio)
        return OpenCVResizeTransform(h, w, *rescale_size(h, w, max(scale_w, scale_h), min(scale_w, scale_h)))


class KeepRatioResize(Augmentation):
    """mmseg's test-time ``Resize(scale=(max_size, short_edge), keep_ratio=True)``: the largest
    size with the long edge <= ``max_size`` and the short edge <= ``short_edge`` (up or down)."""

    def __init__(self, short_edge: int, max_size: int):
        super().__init__()
        self.short_edge, self.max_size = int(short_edge), int(max_size)

    def get_transform(self, image):
        h, w = image.shape[:2]
        return OpenCVResizeTransform(h, w, *rescale_size(h, w, self.max_size, self.short_edge))
