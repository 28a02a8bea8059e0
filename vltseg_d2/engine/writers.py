"""Event writers: detectron2's defaults, with a console printer that survives an early stop."""

import os

from detectron2.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter


class MetricPrinter(CommonMetricPrinter):
    """detectron2's console printer (losses, ETA, lr, memory).

    While ``IterationTimer`` is in its warm-up there is no ``time`` history, and detectron2 estimates
    the ETA from the iterations since its previous write. ``PeriodicWriter`` writes again in
    ``after_train``, at the iteration ``after_step`` has just written when a signal stops training
    in the first iterations: that estimate then divides by zero, and the stop (checkpoint written,
    exit for requeue) became a crash. A repeated write at one iteration prints no ETA instead.
    """

    def _get_eta(self, storage):
        if self._last_write is not None and self._last_write[0] == storage.iter:
            return None
        return super()._get_eta(storage)


def build_writers(output_dir: str, max_iter: int) -> list:
    """Console (with ETA), ``metrics.json`` and TensorBoard, as detectron2's ``default_writers``."""
    os.makedirs(output_dir, exist_ok=True)
    metrics = os.path.join(output_dir, "metrics.json")
    return [MetricPrinter(max_iter), JSONWriter(metrics), TensorboardXWriter(output_dir)]
