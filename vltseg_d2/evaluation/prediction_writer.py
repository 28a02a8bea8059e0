"""Write predictions as PNGs for benchmark servers (Cityscapes, ACDC test) or inspection."""

import os
from pathlib import Path

import numpy as np
from detectron2.data import DatasetCatalog
from detectron2.evaluation import DatasetEvaluator

from ..data.datasets.classes import TRAIN_ID_TO_LABEL_ID, lookup_table
from ..data.prepare.common import write_atomic
from ..modeling.inference import class_map

_TO_LABEL_ID = lookup_table(TRAIN_ID_TO_LABEL_ID, default=0)


def relative_target(file_name: str, common_root: str, output_dir: Path, suffix: str) -> Path:
    """``output_dir/<folders of file_name below common_root>/<stem><suffix>``: frames with the same
    name in different folders (cities, sequences) keep apart."""
    rel = os.path.relpath(os.path.dirname(os.path.abspath(file_name)), common_root)
    return output_dir / ("" if rel == "." else rel) / f"{Path(file_name).stem}{suffix}"


def common_folder(file_names) -> str:
    folders = [os.path.dirname(os.path.abspath(f)) for f in file_names]
    return os.path.commonpath(folders) if folders else ""


class PredictionWriter(DatasetEvaluator):
    """Writes ``<output_dir>/<folders below the dataset's common image folder>/<image stem>.png`` in
    train ids (``"trainId"``) or Cityscapes label ids (``"labelId"``, what the Cityscapes and ACDC
    servers expect; both search the uploaded folders recursively). For Cityscapes that is
    ``<city>/<frame>_leftImg8bit.png``."""

    def __init__(self, dataset_name: str, output_dir: str, fmt: str = "trainId"):
        if fmt not in ("trainId", "labelId"):
            raise ValueError(f"prediction format must be 'trainId' or 'labelId', not {fmt!r}")
        self.dataset_name, self.output_dir, self.fmt = dataset_name, Path(output_dir), fmt
        self.count = 0
        self.root = common_folder(r["file_name"] for r in DatasetCatalog.get(dataset_name))

    def reset(self):
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def process(self, inputs, outputs):
        for record, output in zip(inputs, outputs):
            pred = class_map(output["sem_seg"]).to("cpu").numpy().astype(np.uint8)
            if self.fmt == "labelId":
                pred = _TO_LABEL_ID[pred]
            write_atomic(relative_target(record["file_name"], self.root, self.output_dir, ".png"), pred)
            self.count += 1

    def evaluate(self):
        return {f"{self.dataset_name}_predictions": {"written": self.count, "folder": str(self.output_dir)}}
