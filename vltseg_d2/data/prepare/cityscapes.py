"""Cityscapes: gtFine ``*_gtFine_labelIds.png`` -> ``*_gtFine_labelTrainIds.png`` (official table).

Converts the train and val splits in place under <root>/gtFine (test labels are withheld).
"""

from functools import partial

from ..datasets.cityscapes import LABEL_SUFFIX
from ..datasets.classes import LABEL_ID_TO_TRAIN_ID, lookup_table
from . import common

LUT = lookup_table(LABEL_ID_TO_TRAIN_ID)
SPLITS = ("train", "val")


convert = partial(common.convert_with_table, lut=LUT)


def find_tasks(root):
    tasks, bad = [], []
    for split in SPLITS:
        images = common.index_files(
            common.require_dir(root / "leftImg8bit" / split, "Unpack leftImg8bit here."), "_leftImg8bit.png"
        )
        label_dir = common.require_dir(root / "gtFine" / split, "Unpack gtFine here.")
        pairs, split_bad = common.pair(images, common.index_files(label_dir, "_gtFine_labelIds.png"))
        tasks += [common.Task(lab, (label_dir / f"{k}{LABEL_SUFFIX}",), img) for k, img, lab in pairs]
        bad += split_bad
    return tasks, bad


def main(argv=None):
    args = common.parser(__doc__, "cityscapes").parse_args(argv)
    root = common.resolve_root(args)
    tasks, bad = find_tasks(root)
    return common.finish(common.run(tasks, convert, args.nproc, "Cityscapes", bad), f"Cityscapes ({root})")
