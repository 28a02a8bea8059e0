"""GTA5: 8-bit palette label PNGs whose values are Cityscapes labelIds -> train ids.

Reads <root>/images/*.png and <root>/labels/*.png, writes <root>/labels_trainIds/*.png.
A few GTA5 labels differ in size from their image: they are reported and left out, or resized
(nearest) with --resize-mismatched.
"""

from functools import partial

import cv2
from PIL import Image

from ..datasets.classes import LABEL_ID_TO_TRAIN_ID, lookup_table
from ..datasets.gta5 import LABEL_SUBDIR
from . import common

LUT = lookup_table(LABEL_ID_TO_TRAIN_ID)


def convert(task: common.Task, resize_mismatched=False):
    label = LUT[common.read_label_pixels(task.label)]
    try:
        common.check_size(label, task.image)
    except common.BadInput:
        if not resize_mismatched:
            raise
        with Image.open(task.image) as f:
            label = cv2.resize(label, f.size, interpolation=cv2.INTER_NEAREST)
    common.write_atomic(task.outputs[0], label)


def find_tasks(root):
    images = common.index_files(common.require_dir(root / "images", "Unpack GTA5's images here."), ".png")
    labels = common.index_files(common.require_dir(root / "labels", "Unpack GTA5's labels here."), ".png")
    pairs, bad = common.pair(images, labels)
    return [common.Task(lab, (root / LABEL_SUBDIR / f"{k}.png",), img) for k, img, lab in pairs], bad


def main(argv=None):
    p = common.parser(__doc__, "gta5")
    p.add_argument(
        "--resize-mismatched",
        action="store_true",
        help="resize labels whose size differs from their image (nearest) instead of leaving them out",
    )
    args = p.parse_args(argv)
    root = common.resolve_root(args)
    tasks, bad = find_tasks(root)
    summary = common.run(tasks, partial(convert, resize_mismatched=args.resize_mismatched), args.nproc, "GTA5", bad)
    return common.finish(summary, f"GTA5 ({root})")
