"""Per-dataset mIoU, per-class IoU and accuracy for the 19 train ids (255 ignored).

Written here instead of using detectron2's SemSegEvaluator because that one (a) drops a class
that is predicted but absent from the ground truth instead of scoring it 0, which disagrees with
the official Cityscapes script and mmsegmentation, and (b) keeps an RLE of every prediction
in memory and computes boundary IoU, both of which are slow on large target sets.
"""
import logging
from collections import OrderedDict

import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ..data.mapper import read_label


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
    res = OrderedDict(mIoU=100 * np.nanmean(iou) if np.isfinite(iou).any() else float("nan"),
                      mAcc=100 * np.nanmean(acc) if np.isfinite(acc).any() else float("nan"),
                      aAcc=100 * tp.sum() / max(gt.sum(), 1))
    res.update((f"IoU-{n}", 100 * v) for n, v in zip(class_names, iou))
    res.update((f"Acc-{n}", 100 * v) for n, v in zip(class_names, acc))
    return res


class SemSegIoUEvaluator(DatasetEvaluator):
    """Accumulates a confusion matrix over a dataset; gathered from all ranks in ``evaluate``.

    Predictions must come at the ground truth's size (the model returns them at the record's
    ``height``/``width``); ground truth is read from ``sem_seg_file_name``.
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

    def process(self, inputs, outputs):
        for record, output in zip(inputs, outputs):
            if "sem_seg_file_name" not in record:
                raise ValueError(f"{self.dataset_name} has no labels ({record['file_name']}); "
                                 "write predictions for the benchmark server instead of evaluating")
            pred = output["sem_seg"].argmax(dim=0).to("cpu", torch.int64).numpy()
            gt = read_label(record["sem_seg_file_name"]).astype(np.int64)
            if gt.shape != pred.shape:
                raise ValueError(f"prediction for {record['file_name']} is {pred.shape} but its label "
                                 f"{record['sem_seg_file_name']} is {gt.shape}")
            self.add(gt, pred)

    def add(self, gt: np.ndarray, pred: np.ndarray):
        valid = (gt != self.ignore_label) & (gt < self.num_classes)
        self.conf += np.bincount(self.num_classes * gt[valid] + pred[valid],
                                 minlength=self.num_classes**2).reshape(self.conf.shape)

    def evaluate(self):
        conf = self.conf
        if self.distributed and comm.get_world_size() > 1:
            comm.synchronize()
            gathered = comm.gather(self.conf, dst=0)
            if not comm.is_main_process():
                return {}
            conf = sum(gathered)
        res = iou_metrics(conf, self.class_names)
        self._logger.info(f"{self.dataset_name}: mIoU {res['mIoU']:.2f}, mAcc {res['mAcc']:.2f}, aAcc {res['aAcc']:.2f}")
        return OrderedDict(sem_seg=res)
