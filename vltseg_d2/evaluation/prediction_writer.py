"""Write predictions as PNGs for benchmark servers (Cityscapes, ACDC test) or inspection."""

import os
from pathlib import Path

import numpy as np
from detectron2.evaluation import DatasetEvaluator

from ..data.datasets.classes import TRAIN_ID_TO_LABEL_ID, lookup_table
from ..data.prepare.common import write_atomic
from ..modeling.inference import class_map

TRAIN_TO_LABEL_ID = lookup_table(TRAIN_ID_TO_LABEL_ID, default=0)


class PredictionWriter(DatasetEvaluator):
    """Writes ``<output_dir>/<folders below the dataset's image folder>/<image stem>.png`` in
    train ids (``"trainId"``) or Cityscapes label ids (``"labelId"``, what the Cityscapes and ACDC
    servers expect; both search the uploaded folders recursively). For Cityscapes that is
    ``<city>/<frame>_leftImg8bit.png``."""

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
                pred = TRAIN_TO_LABEL_ID[pred]
            write_atomic(self.target(record), pred)
            self.count += 1

    def target(self, record) -> Path:
        """The registered ``image_id`` is the frame's path below the dataset's image folder
        (``frankfurt/frankfurt_000000_000294``): its folders are kept, so frames of the same name in
        different folders never overwrite each other."""
        image_id = record.get("image_id")
        folder = os.path.dirname(image_id) if isinstance(image_id, str) else ""
        return self.output_dir / folder / f"{Path(record['file_name']).stem}.png"

    def evaluate(self):
        return {f"{self.dataset_name}_predictions": {"written": self.count, "folder": str(self.output_dir)}}
