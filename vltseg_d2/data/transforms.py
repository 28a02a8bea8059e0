"""Photometric distortion as the reference recipes apply it (mmsegmentation 1.x
``PhotoMetricDistortion``), written here because detectron2 has no hue step and not this order.

The reference's exact convention (``mmseg/datasets/transforms/transforms.py``, v1.2.2; mmcv's
``bgr2hsv``/``hsv2bgr`` are plain ``cv2.cvtColor``):

1. brightness: if ``randint(2)``: ``uint8(clip(float32(img) + uniform(-32, 32), 0, 255))``
2. ``mode = randint(2)``; if ``mode == 1``: contrast (below)
3. saturation: if ``randint(2)``: to HSV, ``S = uint8(clip(float32(S) * uniform(0.5, 1.5), 0, 255))``,
   back to colour
4. hue: if ``randint(2)``: to HSV, ``H = (int(H) + randint(-18, 18)) % 180`` (so -18..17), back
5. if ``mode == 0``: contrast: if ``randint(2)``: ``uint8(clip(float32(img) * uniform(0.5, 1.5), 0, 255))``

Every step ends in uint8 by truncation (``astype``, not rounding), saturation and hue make two
separate HSV round trips, and the random calls are the reference's, in its order (``np.random``),
so a seeded pipeline draws the same parameters. The reference works on BGR images; OpenCV's
HSV of an RGB image read as RGB is the same as of its BGR copy read as BGR, so this runs on RGB.
"""

import cv2
import numpy as np
from detectron2.data.transforms import Augmentation
from fvcore.transforms.transform import Transform

_VALUES = np.arange(256)


def convert_table(alpha: float = 1, beta: float = 0) -> np.ndarray:
    """The reference's ``convert`` (float32 multiply-add, clip, truncate) of each uint8 value."""
    return np.clip(_VALUES.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


class PhotometricTransform(Transform):
    """Applies already-drawn parameters to an RGB uint8 image; labels untouched.

    Args:
        brightness_delta: added before clipping; ``None``: no brightness step.
        contrast: factor; ``None``: no contrast step.
        saturation: factor of S; ``None``: no saturation step (and no HSV round trip).
        hue_delta: added to H modulo 180; ``None``: no hue step (and no HSV round trip).
        contrast_first: contrast right after brightness (the reference's ``mode == 1``), else last.

    Brightness and contrast map each uint8 value to one uint8 value, so they run as 256-entry
    lookup tables of the reference's own float32 arithmetic (identical pixels, ~2.5x faster than
    float32 passes); consecutive ones compose exactly because each ends in uint8.
    """

    def __init__(self, brightness_delta=None, contrast=None, saturation=None, hue_delta=None, contrast_first=True):
        super().__init__()
        self._set_attributes(locals())

    @staticmethod
    def _hsv_step(img, channel: int, table: np.ndarray) -> np.ndarray:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[..., channel] = table[hsv[..., channel]]
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)

    def apply_image(self, img):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise TypeError(f"PhotometricTransform expects an H x W x 3 uint8 RGB image, got {img.dtype} {img.shape}")
        table = _VALUES.astype(np.uint8)
        if self.brightness_delta is not None:
            table = convert_table(beta=self.brightness_delta)[table]
        if self.contrast_first and self.contrast is not None:
            table = convert_table(alpha=self.contrast)[table]
        img = cv2.LUT(img, table)
        if self.saturation is not None:
            img = self._hsv_step(img, 1, convert_table(alpha=self.saturation))
        if self.hue_delta is not None:
            img = self._hsv_step(img, 0, ((_VALUES + self.hue_delta) % 180).astype(np.uint8))
        if not self.contrast_first and self.contrast is not None:
            img = cv2.LUT(img, convert_table(alpha=self.contrast))
        return img

    def apply_coords(self, coords):
        return coords

    def apply_segmentation(self, segmentation):
        return segmentation


class PhotometricDistortion(Augmentation):
    """Draws the reference's parameters in the reference's order (see the module docstring)."""

    def __init__(self, brightness_delta=32, contrast_range=(0.5, 1.5), saturation_range=(0.5, 1.5), hue_delta=18):
        super().__init__()
        self._init(locals())

    def get_transform(self, image):
        def maybe(draw):
            return draw() if np.random.randint(2) else None

        def contrast():
            return maybe(lambda: np.random.uniform(*self.contrast_range))

        brightness = maybe(lambda: np.random.uniform(-self.brightness_delta, self.brightness_delta))
        contrast_first = np.random.randint(2) == 1
        contrast_factor = contrast() if contrast_first else None
        saturation = maybe(lambda: np.random.uniform(*self.saturation_range))
        hue = maybe(lambda: np.random.randint(-self.hue_delta, self.hue_delta))
        if not contrast_first:
            contrast_factor = contrast()
        return PhotometricTransform(brightness, contrast_factor, saturation, hue, contrast_first)
