"""ACDC (fog, night, rain, snow): already in train ids, registered in place.

``acdc_<condition>_<split>`` per condition and ``acdc_<split>`` for all four. The test split's
labels are withheld by the benchmark server, so test splits hold images only.
"""

from .register import FolderPairs, UnionOf, register_all

CONDITIONS = ("fog", "night", "rain", "snow")
_HINT = (
    "Download rgb_anon_trainvaltest.zip and gt_trainval.zip (https://acdc.vision.ee.ethz.ch/download) "
    "and unpack them into $DETECTRON2_DATASETS/acdc; no conversion is needed."
)


def _split(condition: str, split: str) -> FolderPairs:
    return FolderPairs(
        f"acdc/rgb_anon/{condition}/{split}",
        "_rgb_anon.png",
        None if split == "test" else f"acdc/gt/{condition}/{split}",
        ("_gt_labelTrainIds.png",),
        fix_hint=_HINT,
    )


SPLITS = {}
for _split_name in ("train", "val", "test"):
    SPLITS.update({f"acdc_{c}_{_split_name}": _split(c, _split_name) for c in CONDITIONS})
    SPLITS[f"acdc_{_split_name}"] = UnionOf(tuple(_split(c, _split_name) for c in CONDITIONS))
register_all(SPLITS)
