"""Cityscapes train/val/test; ``*_gtFine_labelTrainIds.png`` written by datasets/prepare_cityscapes.py."""

from .register import FolderPairs, register_all

LABEL_SUFFIX = "_gtFine_labelTrainIds.png"
_HINT = (
    "Download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip "
    "(https://www.cityscapes-dataset.com/downloads/) into $DETECTRON2_DATASETS/cityscapes "
    "and run datasets/prepare_cityscapes.py."
)

SPLITS = {
    f"cityscapes_{split}": FolderPairs(
        f"cityscapes/leftImg8bit/{split}",
        "_leftImg8bit.png",
        None if split == "test" else f"cityscapes/gtFine/{split}",
        (LABEL_SUFFIX,),
        fix_hint=_HINT,
    )
    for split in ("train", "val", "test")
}
register_all(SPLITS)
