"""vltseg_d2: domain-generalized semantic segmentation (VLTSeg, Rein) on detectron2.

Importing the package registers every dataset split (lazily: no disk access until used).
"""

import warnings

# detectron2 scripts a few functions with torch.jit at import, and torch 2.14 warns for each call;
# the warning is about detectron2's code, not the user's, so it is silenced for exactly that message.
# Tools import this package before detectron2 for it to apply.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

from . import data  # noqa: E402, F401  (registers datasets)

__version__ = "0.1.0"
