"""Writers of tiny raw datasets in each original on-disk format (used by the converter tests)."""

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def write_rgb(path: Path, h, w, seed=0, ext_ok=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(img).save(path)


def write_palette_png(path: Path, values: np.ndarray):
    """An 8-bit palette PNG whose pixel values (palette indices) are ``values``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(values.astype(np.uint8), mode="P")
    img.putpalette(list(np.random.default_rng(1).integers(0, 255, 768)))
    img.save(path)


def write_grey_png(path: Path, values: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8), mode="L").save(path)


def write_synthia_label(path: Path, class_ids: np.ndarray):
    """SYNTHIA's 16-bit 3-channel PNG; the class id in the channel OpenCV returns last."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros(class_ids.shape + (3,), np.uint16)
    arr[..., 0] = 7  # instance ids and such, which must be ignored
    arr[..., 1] = 1000
    arr[..., 2] = class_ids
    assert cv2.imwrite(str(path), arr)


def write_corrupt(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)


MAPILLARY_NAMES_BY_ID = {
    2: "Curb",
    3: "Fence",
    6: "Wall",
    7: "Bike Lane",
    8: "Crosswalk - Plain",
    9: "Curb Cut",
    10: "Parking",
    11: "Pedestrian Area",
    13: "Road",
    14: "Service Lane",
    15: "Sidewalk",
    17: "Building",
    19: "Person",
    20: "Bicyclist",
    21: "Motorcyclist",
    22: "Other Rider",
    23: "Lane Marking - Crosswalk",
    24: "Lane Marking - General",
    27: "Sky",
    29: "Terrain",
    30: "Vegetation",
    44: "Street Light",
    45: "Pole",
    46: "Traffic Sign Frame",
    47: "Utility Pole",
    48: "Traffic Light",
    49: "Traffic Sign (Back)",
    50: "Traffic Sign (Front)",
    52: "Bicycle",
    54: "Bus",
    55: "Car",
    57: "Motorcycle",
    58: "On Rails",
    61: "Truck",
}


def write_mapillary_config(path: Path, names=MAPILLARY_NAMES_BY_ID):
    labels = [
        {
            "name": f"class--{i}",
            "readable": names.get(i, f"Other Class {i}"),
            "color": [i, i, i],
            "instances": False,
            "evaluate": True,
        }
        for i in range(66)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"labels": labels}))
