"""Mapillary Vistas v1.2 in train ids (datasets/prepare_mapillary.py), and the half-resolution
val of the Rein protocol (datasets/prepare_mapillary_half.py)."""

from .register import FolderPairs, register_all

LABEL_SUBDIR = "labels_trainIds"
HALF_DIR = "validation_half"
_HINT = (
    "Download Mapillary Vistas v1.2 (https://www.mapillary.com/dataset/vistas) into "
    "$DETECTRON2_DATASETS/mapillary and run datasets/prepare_mapillary.py"
)

SPLITS = {
    name: FolderPairs(
        f"mapillary/{folder}/images", ".jpg", f"mapillary/{folder}/{LABEL_SUBDIR}", (".png",), fix_hint=hint
    )
    for name, folder, hint in (
        ("mapillary_train", "training", _HINT + "."),
        ("mapillary_val", "validation", _HINT + "."),
        ("mapillary_val_half", HALF_DIR, _HINT + ", then datasets/prepare_mapillary_half.py."),
    )
}
register_all(SPLITS)
