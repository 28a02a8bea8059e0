"""GTA5: 24,966 synthetic frames; labels converted by datasets/prepare_gta5.py."""

from .register import FolderPairs, register_all

LABEL_SUBDIR = "labels_trainIds"

SPLITS = {
    "gta5_train": FolderPairs(
        "gta5/images",
        ".png",
        f"gta5/{LABEL_SUBDIR}",
        (".png",),
        fix_hint="Download GTA5 (https://download.visinf.tu-darmstadt.de/data/from_games/) into "
        "$DETECTRON2_DATASETS/gta5/{images,labels} and run datasets/prepare_gta5.py.",
    ),
}
register_all(SPLITS)
