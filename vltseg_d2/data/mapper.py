"""File record -> model input: augmented image tensor, ``sem_seg`` and per-class ``instances``."""

import logging
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.data import transforms as T
from detectron2.structures import Instances

from .crop import CategoryAreaCrop
from .datasets.classes import IGNORE_LABEL
from .decoded_cache import DecodedCache
from .images import read_image, read_label
from .resize import KeepRatioResize, RandomRatioResize, RandomShortEdgeResize
from .transforms import PhotometricDistortion

logger = logging.getLogger(__name__)


def invalid_label_values(label: np.ndarray, num_classes: int, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """The values of ``label`` that are neither a train id (0..num_classes-1) nor ``ignore_label``."""
    # a uint8 label's values by counting (linear) instead of np.unique's sort: 2x faster per image
    values = np.flatnonzero(np.bincount(label.ravel(), minlength=256)) if label.dtype == np.uint8 else np.unique(label)
    return values[(values >= num_classes) & (values != ignore_label)]


def per_class_instances(sem_seg: torch.Tensor, ignore_label=IGNORE_LABEL) -> Instances:
    """One binary mask per class present in ``sem_seg`` (Mask2Former's semantic targets), classes in
    ascending order. ``sem_seg`` holds train ids and ``ignore_label`` (non-negative integers)."""
    classes = torch.bincount(sem_seg.flatten()).nonzero()[:, 0]  # torch.unique sorts: 8x slower here
    classes = classes[classes != ignore_label]
    instances = Instances(tuple(sem_seg.shape))
    instances.gt_classes = classes.to(torch.int64)
    instances.gt_masks = sem_seg[None] == classes[:, None, None]
    return instances


class SemSegDatasetMapper:
    """Reads one dataset record and applies ``augmentations`` (detectron2 ``Augmentation`` objects).

    Args:
        augmentations: e.g. ``[RandomShortEdgeResize, CategoryAreaCrop, RandomFlip,
            PhotometricDistortion]`` for training (:func:`train_augmentations`),
            ``[KeepRatioResize(short, max_size)]`` or ``[]`` for testing.
        is_train: training records carry ``sem_seg`` and ``instances``; test records carry the
            original ``height``/``width`` so predictions are returned at the label's size.
        pad_to: (h, w) a training label is padded to with ``ignore_label``, normally the crop size.
            The image keeps its size: the model pads it to its label's size after normalising, with
            0 (the mean colour), as mmseg's ``SegDataPreProcessor(size=crop, pad_val=0)`` does;
            padding the uint8 image with 0 here would show the model black (-2.1 after normalising).
        num_classes: labels with other values than 0..num_classes-1 and ``ignore_label`` are
            skipped with a warning naming the file and the values (they would otherwise index past
            the classifier or train silently as "no object").
        cache_mb: keep up to this many MiB of decoded training images and labels in memory (per
            loader worker) instead of decoding them again every epoch: for datasets that fit, like
            the demo's (300 frames, 150 MiB; PNG decoding is ~2.5 ms per 512x256 frame). 0: off.
    """

    def __init__(
        self,
        augmentations: Sequence[T.Augmentation],
        is_train: bool = True,
        *,
        image_format: str = "RGB",
        ignore_label: int = IGNORE_LABEL,
        pad_to: Optional[Sequence[int]] = None,
        num_classes: int = 19,
        cache_mb: int = 0,
    ):
        self.augmentations = T.AugmentationList(list(augmentations))
        self.is_train = is_train
        self.image_format = image_format
        self.ignore_label = ignore_label
        self.pad_to = tuple(pad_to) if pad_to else None
        self.num_classes = num_classes
        self.skipped = 0  # training samples skipped by this mapper (per loader worker)
        self.cache = DecodedCache(cache_mb * 2**20 if is_train else 0)  # 0 bytes: every file is read

    def _skip(self, message: str):
        self.skipped += 1
        logger.warning(f"{message} ({self.skipped} training sample(s) skipped by this worker so far)")

    def __call__(self, record: dict) -> Optional[dict]:
        record = dict(record)
        try:
            image, sem_seg = self.cache.get_or_load(record["file_name"], lambda: self._read(record))
        except (OSError, ValueError) as e:  # missing, empty, truncated, a folder, an unsupported depth
            if not self.is_train:  # the test loader leaves it out and the evaluator counts it
                return {"file_name": record["file_name"], "unreadable": f"{type(e).__name__}: {e}"}
            self._skip(f"skipping unreadable training sample {record['file_name']}: {e}")
            return None  # the loader then draws another sample
        if sem_seg is not None and sem_seg.shape != image.shape[:2]:
            self._skip(
                f"skipping {record['file_name']}: label {record['sem_seg_file_name']} is "
                f"{sem_seg.shape}, image is {image.shape[:2]} (re-run the dataset's prepare script)"
            )
            return None
        if sem_seg is not None:
            bad = invalid_label_values(sem_seg, self.num_classes, self.ignore_label)
            if bad.size:
                self._skip(
                    f"skipping {record['file_name']}: label {record['sem_seg_file_name']} has values "
                    f"{bad.tolist()} outside 0..{self.num_classes - 1} and {self.ignore_label} "
                    "(is it a labelId PNG? convert it with the dataset's prepare script)"
                )
                return None
        record.setdefault("height", image.shape[0])
        record.setdefault("width", image.shape[1])
        aug_input = T.AugInput(image, sem_seg=sem_seg)
        self.augmentations(aug_input)
        image, sem_seg = aug_input.image, aug_input.sem_seg
        if self.is_train and self.pad_to:
            sem_seg = self._pad_label(sem_seg)
        record["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg is not None:
            record["sem_seg"] = torch.as_tensor(sem_seg.astype(np.int64))
            record["instances"] = per_class_instances(record["sem_seg"], self.ignore_label)
        return record

    def _read(self, record):
        image = read_image(record["file_name"], format=self.image_format)
        return image, read_label(record["sem_seg_file_name"]) if self.is_train else None

    def _pad_label(self, sem_seg):
        ph, pw = max(self.pad_to[0] - sem_seg.shape[0], 0), max(self.pad_to[1] - sem_seg.shape[1], 0)
        if ph or pw:
            sem_seg = np.pad(sem_seg, ((0, ph), (0, pw)), constant_values=self.ignore_label)
        return sem_seg


def train_augmentations(
    crop_size,
    short_edges: List[int],
    max_size: int,
    cat_max_ratio=0.75,
    ignore_label=IGNORE_LABEL,
    photometric=True,
    ratio_range: Optional[Tuple[float, float]] = None,
):
    """The reference recipes' training pipeline, draw for draw as mmsegmentation runs it:
    ``RandomChoiceResize(ResizeShortestEdge)``, ``RandomCrop(cat_max_ratio)``, ``RandomFlip(0.5)``
    (detectron2's flip draws ``uniform() < 0.5``, the same number mmcv's ``choice`` compares) and
    ``PhotoMetricDistortion``. With ``ratio_range`` (tqdm) the resize is mmseg 0.x's
    ``Resize(ratio_range=...)`` of the image's own size instead (:class:`RandomRatioResize`)."""
    resize = RandomRatioResize(ratio_range) if ratio_range else RandomShortEdgeResize(short_edges, max_size)
    augs = [
        resize,
        CategoryAreaCrop(crop_size, cat_max_ratio, ignore_label),
        T.RandomFlip(prob=0.5, horizontal=True),
    ]
    if photometric:
        augs.append(PhotometricDistortion())
    return augs


def inference_augmentations(short_edge: Optional[int] = None, max_size: Optional[int] = None):
    """mmseg's test ``Resize(scale=(max_size, short_edge), keep_ratio=True)`` (OpenCV bilinear):
    aspect kept, long <= max_size and short <= short_edge, up or down; none if unset."""
    if short_edge is None:
        return []
    return [KeepRatioResize(short_edge, max_size or 100000)]
