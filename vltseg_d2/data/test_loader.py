"""The evaluation loader as ``inference_on_dataset`` sees it: batches without unreadable images.

The mapper cannot drop a record of a test loader (detectron2's collate would hand ``None`` to the
model), so it returns ``{"file_name", "unreadable"}`` for an image it cannot read (empty,
truncated, a folder named like an image, an unsupported depth). Here such records leave the
batch and are reported to ``on_unreadable(file_name, reason)`` (the evaluator counts them), so one
bad file never ends an evaluation. ``before_batch`` runs before each batch is handed on (the
trainer stops there on Ctrl-C after the last iteration).
"""

import logging
from typing import Callable, Optional

logger = logging.getLogger(__name__)


def _log_unreadable(file_name: str, reason: str):
    logger.warning(f"skipped unreadable image {file_name} ({reason})")


class TestLoader:
    __test__ = False  # not a pytest class

    def __init__(self, loader, before_batch: Optional[Callable[[], None]] = None,
                 on_unreadable: Callable[[str, str], None] = _log_unreadable):  # fmt: skip
        self.loader, self.before_batch, self.on_unreadable = loader, before_batch, on_unreadable

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            if self.before_batch is not None:
                self.before_batch()
            readable = []
            for record in batch:
                if "unreadable" in record:
                    self.on_unreadable(record["file_name"], record["unreadable"])
                else:
                    readable.append(record)
            if readable:
                yield readable

    def __getattr__(self, name):  # the wrapped loader's attributes (dataset, batch_size, ...)
        return getattr(self.loader, name)
