"""Reading images in tests with the file closed afterwards."""

import numpy as np
from PIL import Image


def read_image(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def image_size(path):
    with Image.open(path) as image:
        return image.size
