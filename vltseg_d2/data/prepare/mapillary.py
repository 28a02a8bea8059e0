"""Mapillary Vistas v1.2: 66-class palette label PNGs -> train ids, mapped by class name.

Reads <root>/config_v1.2.json and <root>/{training,validation}/{images/*.jpg,labels/*.png};
writes <root>/{training,validation}/labels_trainIds/*.png. The id -> train id table is built
from the class names in the config (the rule of Rein's converter), so a config whose names do
not match v1.2 is an error rather than a silently wrong table.
"""

import json
import re
from functools import partial

from ..datasets.classes import lookup_table
from ..datasets.mapillary import LABEL_SUBDIR
from . import common

# Mapillary v1.2 class name -> Cityscapes train id (every other class -> 255).
NAME_TO_TRAIN_ID = {
    "Curb": 1,
    "Fence": 4,
    "Wall": 3,
    "Bike Lane": 0,
    "Crosswalk - Plain": 0,
    "Curb Cut": 1,
    "Parking": 0,
    "Pedestrian Area": 1,
    "Road": 0,
    "Service Lane": 0,
    "Sidewalk": 1,
    "Building": 2,
    "Person": 11,
    "Bicyclist": 12,
    "Motorcyclist": 12,
    "Other Rider": 12,
    "Lane Marking - Crosswalk": 0,
    "Lane Marking - General": 0,
    "Sky": 10,
    "Terrain": 9,
    "Vegetation": 8,
    "Street Light": 5,
    "Pole": 5,
    "Traffic Sign Frame": 7,
    "Utility Pole": 5,
    "Traffic Light": 6,
    "Traffic Sign (Back)": 7,
    "Traffic Sign (Front)": 7,
    "Bicycle": 18,
    "Bus": 15,
    "Car": 13,
    "Motorcycle": 17,
    "On Rails": 16,
    "Truck": 14,
}
SPLITS = ("training", "validation")


def _norm(name: str) -> str:  # "Crosswalk - Plain" and "Crosswalk-Plain" are the same class
    return re.sub(r"\s+", "", name).lower()


def table_from_config(config_path):
    try:
        labels = json.loads(config_path.read_text())["labels"]
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(
            f"error: cannot read the class list from {config_path} ({e}); it ships with Mapillary Vistas v1.2"
        ) from None
    by_name = {_norm(lab["readable"]): i for i, lab in enumerate(labels)}
    missing = [n for n in NAME_TO_TRAIN_ID if _norm(n) not in by_name]
    if missing:
        raise SystemExit(f"error: {config_path} has no class named {', '.join(missing)}; is it Mapillary Vistas v1.2?")
    return lookup_table({by_name[_norm(n)]: t for n, t in NAME_TO_TRAIN_ID.items()})


def find_tasks(root):
    tasks, bad = [], []
    for split in SPLITS:
        folder = common.require_dir(root / split, f"Unpack Mapillary Vistas' {split} folder here.")
        pairs, split_bad = common.pair(
            common.index_files(folder / "images", ".jpg"), common.index_files(folder / "labels", ".png")
        )
        tasks += [common.Task(lab, (folder / LABEL_SUBDIR / f"{k}.png",), img) for k, img, lab in pairs]
        bad += split_bad
    return tasks, bad


def main(argv=None):
    args = common.parser(__doc__, "mapillary").parse_args(argv)
    root = common.resolve_root(args)
    lut = table_from_config(root / "config_v1.2.json")
    tasks, bad = find_tasks(root)
    summary = common.run(tasks, partial(common.convert_with_table, lut=lut), args.nproc, "Mapillary", bad)
    return common.finish(summary, f"Mapillary Vistas ({root})")
