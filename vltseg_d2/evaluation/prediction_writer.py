"""Write predictions as PNGs for benchmark servers (Cityscapes, ACDC test) or inspection."""

from pathlib import Path

import numpy as np
from detectron2.evaluation import DatasetEvaluator

from ..data.datasets.classes import TRAIN_ID_TO_LABEL_ID, lookup_table
from ..data.prepare.common import write_atomic
from ..modeling.inference import class_map

_TO_LABEL_ID = lookup_table(TRAIN_ID_TO_LABEL_ID, default=0)


class PredictionWriter(DatasetEvaluator):
    """Writes ``<output_dir>/<image stem>.png`` in train ids (``"trainId"``) or Cityscapes label ids
    (``"labelId"``, what the Cityscapes and ACDC servers expect)."""

    def __init__(self, dataset_name: str, output_dir: str, fmt: str = "trainId"):
        if fmt not in ("trainId", "labelId"):
            raise ValueError(f"prediction format must be 'trainId' or 'labelId', not {fmt!r}")
        self.dataset_name, self.output_dir, self.fmt = dataset_name, Path(output_dir), fmt
        self.count = 0

    def reset(self):
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def process(self, inputs, outputs):
        for record, output in zip(inputs, outputs):
            pred = class_map(output["sem_seg"]).to("cpu").numpy().astype(np.uint8)
            if self.fmt == "labelId":
                pred = _TO_LABEL_ID[pred]
            write_atomic(self.output_dir / f"{Path(record['file_name']).stem}.png", pred)
            self.count += 1

    def evaluate(self):
        return {f"{self.dataset_name}_predictions": {"written": self.count, "folder": str(self.output_dir)}}
