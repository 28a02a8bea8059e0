"""Reading images and labels: every file is read as what it holds, or refused by name.

detectron2's ``read_image`` converts a 16-bit grayscale PNG (PIL mode ``I;16``) to RGB by clipping
every value above 255, so a normal 16-bit frame comes out all white; and ``astype(np.uint8)`` on a
16-bit label wraps 258 to class 2. Here 16-bit images are scaled to 8 bits (value / 257, rounded,
as OpenCV's and ImageMagick's depth conversions do), 32-bit integer and float images are refused,
and labels must hold values that fit 8 bits.
"""

import numpy as np
from detectron2.data import detection_utils
from PIL import Image, ImageOps


def read_image(path: str, format: str = "RGB") -> np.ndarray:
    """H x W x 3 uint8 in ``format`` ("RGB" or "BGR"), EXIF orientation applied (detectron2's
    reader), with 16-bit grayscale scaled to 8 bits and 32-bit images refused."""
    with Image.open(path) as f:
        mode = f.mode
        if mode.startswith("I;16"):
            gray = ImageOps.exif_transpose(f)
            values = np.asarray(gray, dtype=np.float32)
            return np.repeat(np.rint(values / 257.0).astype(np.uint8)[..., None], 3, axis=2)
    if mode in ("I", "F"):
        raise ValueError(f"{path} is a 32-bit {'float' if mode == 'F' else 'integer'} image; expected 8 or 16 bits")
    return detection_utils.read_image(path, format=format)


def read_label(path: str) -> np.ndarray:
    """A single-channel train-id PNG as uint8; a 16-bit file is taken only if its values fit 8 bits."""
    with Image.open(path) as f:
        label = np.asarray(f)
    if label.ndim != 2:
        raise ValueError(f"label {path} has shape {label.shape}; expected a single-channel train-id PNG")
    if label.dtype != np.uint8:
        if label.dtype.kind not in "iu" or label.size and (label.min() < 0 or label.max() > 255):
            top = label.max() if label.size else 0
            raise ValueError(
                f"label {path} is {label.dtype} with values up to {top}; expected train ids 0..18 and 255 "
                "(8-bit PNG): re-run the dataset's prepare script"
            )
        label = label.astype(np.uint8)
    return label
