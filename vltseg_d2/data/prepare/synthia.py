"""SYNTHIA RAND_CITYSCAPES: 16-bit multi-channel label PNGs (class id in the last channel as
OpenCV reads it; PIL misreads these files) -> train ids.

Reads <root>/RGB/*.png and <root>/GT/LABELS/*.png, writes <root>/GT/labels_trainIds/*.png.
The ~7 label files that unpacking leaves corrupt are reported and left out.
"""

import cv2
import numpy as np

from ..datasets.classes import lookup_table
from ..datasets.synthia import LABEL_SUBDIR
from . import common

SYNTHIA_TO_TRAIN_ID = {
    3: 0,
    4: 1,
    2: 2,
    21: 3,
    5: 4,
    7: 5,
    15: 6,
    9: 7,
    6: 8,
    1: 10,
    10: 11,
    17: 12,
    8: 13,
    19: 15,
    12: 17,
    11: 18,
}
LUT = lookup_table(SYNTHIA_TO_TRAIN_ID, size=65536)


def convert(task: common.Task):
    raw = cv2.imread(str(task.label), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise common.BadInput("unreadable or corrupt label (OpenCV could not decode it)")
    class_ids = raw[..., -1] if raw.ndim == 3 else raw
    label = LUT[class_ids.astype(np.int64)]
    common.check_size(label, task.image)
    common.write_atomic(task.outputs[0], label)


def find_tasks(root):
    images = common.index_files(common.require_dir(root / "RGB", "Unpack SYNTHIA's RGB folder here."), ".png")
    labels = common.index_files(common.require_dir(root / "GT" / "LABELS", "Unpack SYNTHIA's GT/LABELS here."), ".png")
    pairs, bad = common.pair(images, labels)
    return [common.Task(lab, (root / LABEL_SUBDIR / f"{k}.png",), img) for k, img, lab in pairs], bad


def main(argv=None):
    args = common.parser(__doc__, "synthia").parse_args(argv)
    root = common.resolve_root(args)
    tasks, bad = find_tasks(root)
    return common.finish(common.run(tasks, convert, args.nproc, "SYNTHIA", bad), f"SYNTHIA ({root})")
