"""SYNTHIA RAND_CITYSCAPES: 9,400 synthetic frames; labels converted by datasets/prepare_synthia.py."""

from .register import FolderPairs, register_all

LABEL_SUBDIR = "GT/labels_trainIds"

SPLITS = {
    "synthia_train": FolderPairs(
        "synthia/RGB",
        ".png",
        f"synthia/{LABEL_SUBDIR}",
        (".png",),
        fix_hint="Download SYNTHIA-RAND-CITYSCAPES (https://synthia-dataset.net/downloads/) into "
        "$DETECTRON2_DATASETS/synthia and run datasets/prepare_synthia.py.",
    ),
}
register_all(SPLITS)
