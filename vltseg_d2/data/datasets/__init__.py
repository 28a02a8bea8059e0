"""Every split of the six driving datasets and the synthetic benchmark, registered lazily.

See datasets/README.md for the names and the expected tree under $DETECTRON2_DATASETS.
"""

from . import acdc, bdd, cityscapes, gta5, mapillary, synthetic, synthia  # noqa: F401
from .classes import CLASS_COLORS, CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES  # noqa: F401
from .register import DatasetNotFoundError, datasets_root  # noqa: F401
