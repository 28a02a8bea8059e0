"""The 19 Cityscapes train ids every dataset is converted to, defined once.

Names, colours and the labelId -> trainId table come from cityscapesscripts' official table.
"""

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CITYSCAPES_LABELS

IGNORE_LABEL = 255

_TRAIN_LABELS = sorted(
    (lab for lab in _CITYSCAPES_LABELS if 0 <= lab.trainId < IGNORE_LABEL), key=lambda lab: lab.trainId
)
CLASS_NAMES = tuple(lab.name for lab in _TRAIN_LABELS)
CLASS_COLORS = tuple(tuple(lab.color) for lab in _TRAIN_LABELS)
NUM_CLASSES = len(CLASS_NAMES)
assert NUM_CLASSES == 19 and [lab.trainId for lab in _TRAIN_LABELS] == list(range(19))

# Cityscapes labelId -> trainId. GTA5 labels use the same labelIds.
LABEL_ID_TO_TRAIN_ID = {lab.id: lab.trainId for lab in _CITYSCAPES_LABELS if 0 <= lab.id < 256}
TRAIN_ID_TO_LABEL_ID = {lab.trainId: lab.id for lab in _TRAIN_LABELS}


def lookup_table(mapping, default=IGNORE_LABEL, size=256, dtype=np.uint8):
    """A dense table for ``table[label_array]``; ids not in ``mapping`` map to ``default``."""
    table = np.full(size, default, dtype=dtype)
    for src, dst in mapping.items():
        table[src] = IGNORE_LABEL if dst < 0 else dst
    return table


def metadata(**extra):
    """MetadataCatalog fields shared by every registered split."""
    return dict(
        stuff_classes=list(CLASS_NAMES),
        stuff_colors=[list(c) for c in CLASS_COLORS],
        ignore_label=IGNORE_LABEL,
        evaluator_type="sem_seg",
        **extra,
    )
