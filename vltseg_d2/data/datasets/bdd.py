"""BDD100K 10k semantic segmentation: already in train ids, registered in place.

Releases name labels ``<id>.png`` or ``<id>_train_id.png``; both are accepted. Images and labels
are paired by id and unpaired files are reported (logged) and left out.
"""

from .register import FolderPairs, register_all

SPLITS = {
    f"bdd_{split}": FolderPairs(
        f"bdd100k/images/10k/{split}",
        ".jpg",
        f"bdd100k/labels/sem_seg/masks/{split}",
        ("_train_id.png", ".png"),
        fix_hint="Download the BDD100K 10k images and sem_seg labels (https://bdd-data.berkeley.edu/) "
        "into $DETECTRON2_DATASETS/bdd100k; no conversion is needed.",
    )
    for split in ("train", "val")
}
register_all(SPLITS)
