"""Lazy registration of image/label folder pairs in detectron2's catalogs.

Nothing touches the disk at import: the loader resolves ``$DETECTRON2_DATASETS`` and scans the
folders only when ``DatasetCatalog.get(name)`` is called.
"""

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

from .classes import metadata

logger = logging.getLogger(__name__)


class DatasetNotFoundError(FileNotFoundError):
    pass


def datasets_root() -> Path:
    return Path(os.environ.get("DETECTRON2_DATASETS", "datasets")).expanduser()


@dataclass(frozen=True)
class FolderPairs:
    """One split: images under ``image_dir`` paired by stem with labels under ``label_dir``.

    Paths are relative to ``$DETECTRON2_DATASETS``. A file ``<dir>/<rel>/<stem><suffix>`` has the
    key ``<rel>/<stem>``; images and labels with the same key form a pair. ``label_suffixes`` may
    list several namings (the first found wins). ``label_dir=None`` registers images only (test
    splits whose labels are withheld).
    """

    image_dir: str
    image_suffix: str
    label_dir: Optional[str]
    label_suffixes: Sequence[str] = ()
    fix_hint: str = ""
    extra_metadata: dict = field(default_factory=dict)

    @property
    def has_labels(self) -> bool:
        return self.label_dir is not None

    def _index(self, folder: Path, suffix: str):
        return {
            str(p.relative_to(folder))[: -len(suffix)]: p
            for p in folder.rglob(f"*{suffix}")
            if not p.name.startswith(".")  # temporary files of an interrupted conversion
        }

    def _index_labels(self, folder: Path):
        """Like ``_index`` for several namings in one pass: each file takes its longest matching
        suffix (so "<id>_train_id.png" is not also "<id>_train_id" + ".png"); for an id with several
        namings, the suffix listed first wins."""
        by_length = sorted(self.label_suffixes, key=len, reverse=True)
        labels = {}
        for p in sorted(folder.rglob("*")):
            suffix = next((s for s in by_length if p.name.endswith(s)), None)
            if suffix is None or p.name.startswith("."):
                continue
            key, rank = str(p.relative_to(folder))[: -len(suffix)], self.label_suffixes.index(suffix)
            if key not in labels or rank < labels[key][0]:
                labels[key] = (rank, p)
        return {k: p for k, (_, p) in labels.items()}

    def load(self, name: str):
        root = datasets_root()
        folders = [root / self.image_dir] + ([root / self.label_dir] if self.label_dir else [])
        for folder in folders:
            if not folder.is_dir():
                raise DatasetNotFoundError(
                    f"Dataset '{name}': folder {folder} does not exist "
                    f"($DETECTRON2_DATASETS={root}). {self.fix_hint} See datasets/README.md."
                )
        images = self._index(root / self.image_dir, self.image_suffix)
        if self.label_dir is None:
            return [{"file_name": str(p), "image_id": k} for k, p in sorted(images.items())]
        labels = self._index_labels(root / self.label_dir)
        unpaired_images = sorted(images.keys() - labels.keys())
        unpaired_labels = sorted(labels.keys() - images.keys())
        for kind, keys in (("images without a label", unpaired_images), ("labels without an image", unpaired_labels)):
            if keys:
                logger.warning(
                    f"Dataset '{name}': skipping {len(keys)} {kind}: {', '.join(keys[:10])}"
                    + (" ..." if len(keys) > 10 else "")
                )
        pairs = [
            {"file_name": str(images[k]), "sem_seg_file_name": str(labels[k]), "image_id": k}
            for k in sorted(images.keys() & labels.keys())
        ]
        if not pairs:
            raise DatasetNotFoundError(
                f"Dataset '{name}': no image/label pairs found under {root / self.image_dir} "
                f"(*{self.image_suffix}) and {root / self.label_dir} (*{' or *'.join(self.label_suffixes)}). "
                f"{self.fix_hint}"
            )
        return pairs


def register(name: str, split: FolderPairs, **extra_metadata):
    DatasetCatalog.register(name, lambda: split.load(name))
    MetadataCatalog.get(name).set(has_labels=split.has_labels, **metadata(**split.extra_metadata, **extra_metadata))


def register_all(splits: dict):
    for name, split in splits.items():
        register(name, split)


@dataclass(frozen=True)
class UnionOf:
    """Several splits registered as one (e.g. the four ACDC conditions)."""

    parts: Sequence[FolderPairs]
    extra_metadata: dict = field(default_factory=dict)

    @property
    def has_labels(self) -> bool:
        return all(part.has_labels for part in self.parts)

    def load(self, name: str):
        return [record for part in self.parts for record in part.load(name)]
