"""Per-dataset mIoU, per-class IoU and accuracy for the 19 train ids (255 ignored).

Written here instead of using detectron2's SemSegEvaluator because that one (a) drops a class
that is predicted but absent from the ground truth instead of scoring it 0, which disagrees with
the official Cityscapes script and mmsegmentation, and (b) keeps an RLE of every prediction
in memory and computes boundary IoU, both of which are slow on large target sets.
"""

import logging
from collections import OrderedDict

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ..data.images import read_label
from ..data.mapper import invalid_label_values
from ..modeling.inference import class_map


def iou_metrics(conf: np.ndarray, class_names) -> "OrderedDict[str, float]":
    """Metrics (in percent) from a confusion matrix with rows = ground truth, columns = prediction.

    A class's IoU is NaN (left out of the mean) only when it is neither in the ground truth nor
    predicted; its accuracy is NaN when it is absent from the ground truth.
    """
    conf = conf.astype(np.float64)
    tp = np.diag(conf)
    gt = conf.sum(1)
    union = gt + conf.sum(0) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(gt > 0, tp / gt, np.nan)
    res = OrderedDict(
        mIoU=100 * np.nanmean(iou) if np.isfinite(iou).any() else float("nan"),
        mAcc=100 * np.nanmean(acc) if np.isfinite(acc).any() else float("nan"),
        aAcc=100 * tp.sum() / gt.sum() if gt.sum() > 0 else float("nan"),
    )  # no labelled pixel: NaN
    res.update((f"IoU-{n}", 100 * v) for n, v in zip(class_names, iou))
    res.update((f"Acc-{n}", 100 * v) for n, v in zip(class_names, acc))
    return res


class SemSegIoUEvaluator(DatasetEvaluator):
    """Accumulates a confusion matrix over a dataset; gathered from all ranks in ``evaluate``.

    Predictions must come at the ground truth's size (the model returns them at the record's
    ``height``/``width``); ground truth is read from ``sem_seg_file_name``. One bad file never
    stops an evaluation: an unreadable label, or one whose size differs from its image, is
    reported by name and counted in ``skipped_images``; label values that are neither a train id
    nor the ignore label are reported by name and their pixels counted in ``invalid_label_pixels``
    (they are left out of the scores, like ignored pixels). Both counts appear in the table.
    """

    def __init__(self, dataset_name: str, distributed: bool = True):
        meta = MetadataCatalog.get(dataset_name)
        self.dataset_name = dataset_name
        self.class_names = list(meta.stuff_classes)
        self.ignore_label = meta.ignore_label
        self.distributed = distributed
        self.num_classes = len(self.class_names)
        self._logger = logging.getLogger(__name__)
        self.reset()

    def reset(self):
        self.conf = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.skipped_images = 0
        self.invalid_pixels = 0

    def process(self, inputs, outputs):
        for record, output in zip(inputs, outputs):
            if "sem_seg_file_name" not in record:
                raise ValueError(
                    f"{self.dataset_name} has no labels ({record['file_name']}); "
                    "write predictions for the benchmark server instead of evaluating"
                )
            label_file = record["sem_seg_file_name"]
            pred = class_map(output["sem_seg"]).to("cpu").numpy()
            try:
                gt = read_label(label_file)
            except (OSError, ValueError) as e:
                self._skip(f"unreadable label {label_file} ({type(e).__name__}: {e})")
                continue
            if gt.shape != pred.shape:
                self._skip(
                    f"label {label_file} is {gt.shape[1]}x{gt.shape[0]} but its image {record['file_name']} "
                    f"is {pred.shape[1]}x{pred.shape[0]}"
                )
                continue
            bad = invalid_label_values(gt, self.num_classes, self.ignore_label)
            if bad.size:
                n = int(np.isin(gt, bad).sum())
                self.invalid_pixels += n
                self._logger.warning(
                    f"{self.dataset_name}: label {label_file} has {n} pixels with values "
                    f"{bad.tolist()} outside 0..{self.num_classes - 1} and {self.ignore_label}; "
                    "they are left out of the scores (re-run the dataset's prepare script)"
                )
            self.add(gt.astype(np.int64), pred)

    def skip_unreadable(self, file_name: str, reason: str):
        """An image the test loader could not read (:class:`TestLoader`)."""
        self._skip(f"unreadable image {file_name} ({reason})")

    def _skip(self, reason: str):
        self.skipped_images += 1
        self._logger.warning(f"{self.dataset_name}: skipped an image: {reason}")

    def add(self, gt: np.ndarray, pred: np.ndarray):
        valid = (gt != self.ignore_label) & (gt < self.num_classes)
        self.conf += np.bincount(self.num_classes * gt[valid] + pred[valid], minlength=self.num_classes**2).reshape(
            self.conf.shape
        )

    def evaluate(self):
        conf, skipped, invalid = self.conf, self.skipped_images, self.invalid_pixels
        if self.distributed and comm.get_world_size() > 1:
            comm.synchronize()
            gathered = comm.gather((self.conf, self.skipped_images, self.invalid_pixels), dst=0)
            if not comm.is_main_process():
                return {}
            conf, skipped, invalid = (sum(parts) for parts in zip(*gathered))
        self.confusion = conf  # the whole dataset's, for the report files (results hold only numbers)
        res = iou_metrics(conf, self.class_names)
        res.update(skipped_images=int(skipped), invalid_label_pixels=int(invalid))
        self._logger.info(
            f"{self.dataset_name}: mIoU {res['mIoU']:.2f}, mAcc {res['mAcc']:.2f}, aAcc {res['aAcc']:.2f}"
        )
        return OrderedDict(sem_seg=res)
