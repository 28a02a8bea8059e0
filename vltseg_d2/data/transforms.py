"""Photometric distortion as in the reference recipes (brightness, contrast, saturation, hue).

detectron2 has brightness/contrast/saturation augmentations but no hue and not this ordering, so
this one is written here; it follows mmsegmentation's PhotoMetricDistortion: each step with
probability 0.5, contrast either before or after the HSV steps, values clipped to [0, 255].
"""

import cv2
import numpy as np
from detectron2.data.transforms import Augmentation
from fvcore.transforms.transform import Transform


class PhotometricTransform(Transform):
    """Applies fixed, already-drawn distortion parameters to an RGB uint8 image; labels untouched."""

    def __init__(self, brightness_delta, contrast, saturation, hue_delta, contrast_first):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img):
        img = img.astype(np.float32)
        if self.brightness_delta:
            img = np.clip(img + self.brightness_delta, 0, 255)
        if self.contrast_first and self.contrast != 1.0:
            img = np.clip(img * self.contrast, 0, 255)
        if self.saturation != 1.0 or self.hue_delta:
            hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
            hsv[..., 1] = np.clip(hsv[..., 1] * self.saturation, 0, 255)
            hsv[..., 0] = (hsv[..., 0] + self.hue_delta) % 180  # OpenCV hue range is [0, 180)
            img = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
        if not self.contrast_first and self.contrast != 1.0:
            img = np.clip(img * self.contrast, 0, 255)
        return img.astype(np.uint8)

    def apply_coords(self, coords):
        return coords

    def apply_segmentation(self, segmentation):
        return segmentation


class PhotometricDistortion(Augmentation):
    def __init__(self, brightness_delta=32, contrast_range=(0.5, 1.5), saturation_range=(0.5, 1.5), hue_delta=18):
        super().__init__()
        self._init(locals())

    def get_transform(self, image):
        def maybe(draw, neutral):
            return draw() if np.random.rand() < 0.5 else neutral

        return PhotometricTransform(
            brightness_delta=maybe(lambda: np.random.uniform(-self.brightness_delta, self.brightness_delta), 0.0),
            contrast=maybe(lambda: np.random.uniform(*self.contrast_range), 1.0),
            saturation=maybe(lambda: np.random.uniform(*self.saturation_range), 1.0),
            hue_delta=maybe(lambda: np.random.randint(-self.hue_delta, self.hue_delta + 1), 0),
            contrast_first=bool(np.random.randint(2)),
        )
