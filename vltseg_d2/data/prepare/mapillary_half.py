"""Mapillary Vistas validation at half resolution, as the Rein protocol evaluates it.

Reads <root>/validation/{images/*.jpg,labels_trainIds/*.png} (run prepare_mapillary.py first) and
writes <root>/validation_half/{images/*.jpg,labels_trainIds/*.png}: both sides halved (rounded),
images bilinear, labels nearest.
"""

from functools import partial

import cv2

from ..datasets.mapillary import HALF_DIR, LABEL_SUBDIR
from . import common


def half_size(w: int, h: int):
    return int(w * 0.5 + 0.5), int(h * 0.5 + 0.5)


def convert(task: common.Task, jpeg_quality=95):
    label = common.read_label_pixels(task.label)
    image = cv2.imread(str(task.image), cv2.IMREAD_COLOR)
    if image is None:
        raise common.BadInput(f"unreadable image {task.image}")
    if image.shape[:2] != label.shape:
        raise common.BadInput(f"label is {label.shape[::-1]} but image is {image.shape[1::-1]}")
    size = half_size(image.shape[1], image.shape[0])
    image_out, label_out = task.outputs
    common.write_atomic(
        image_out, cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), (cv2.IMWRITE_JPEG_QUALITY, jpeg_quality)
    )
    common.write_atomic(label_out, cv2.resize(label, size, interpolation=cv2.INTER_NEAREST))


def find_tasks(root):
    src = root / "validation"
    images = common.index_files(common.require_dir(src / "images", "Unpack Mapillary's validation folder."), ".jpg")
    labels = common.index_files(
        common.require_dir(src / LABEL_SUBDIR, "Run datasets/prepare_mapillary.py first."), ".png"
    )
    pairs, bad = common.pair(images, labels)
    out = root / HALF_DIR
    return [
        common.Task(lab, (out / "images" / f"{k}.jpg", out / LABEL_SUBDIR / f"{k}.png"), img) for k, img, lab in pairs
    ], bad


def main(argv=None):
    p = common.parser(__doc__, "mapillary")
    p.add_argument("--jpeg-quality", type=int, default=95)
    args = p.parse_args(argv)
    root = common.resolve_root(args)
    tasks, bad = find_tasks(root)
    summary = common.run(tasks, partial(convert, jpeg_quality=args.jpeg_quality), args.nproc, "Mapillary half", bad)
    return common.finish(summary, f"Mapillary Vistas half-resolution val ({root / HALF_DIR})")
