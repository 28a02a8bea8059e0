"""vltseg_d2: domain-generalized semantic segmentation (VLTSeg, Rein) on detectron2.

Importing the package registers every dataset split (lazily: no disk access until used).
"""

from . import data  # noqa: F401  (registers datasets)

__version__ = "0.1.0"
