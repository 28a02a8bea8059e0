"""Figures of an evaluation and a training run, drawn with matplotlib's object API (no display).

- :func:`plot_confusion`: one dataset's confusion matrix, each ground-truth row normalised to 1
  (the share of a class's pixels predicted as each class), classes in train-id order.
- :func:`plot_per_class_iou`: per-class IoU of every dataset side by side, the figure DGSS papers
  print to show which classes a domain shift hurts.
"""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..data.datasets.classes import CLASS_NAMES
from ..utils.atomic import atomic_path


def _figure(width, height, panels=1):
    """A figure without pyplot: no global backend is chosen or changed (a notebook's stays), and
    nothing is kept alive once it is saved."""
    fig = Figure(figsize=(width, height), layout="constrained")  # tick labels never overlap a neighbour
    return fig, fig.subplots(1, panels)


def _save(fig, path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    return Path(path)


def plot_confusion(conf: np.ndarray, title: str, path) -> Path:
    conf = np.asarray(conf, np.float64)
    totals = conf.sum(1, keepdims=True)
    shares = np.divide(conf, totals, out=np.zeros_like(conf), where=totals > 0)
    fig, ax = _figure(9, 8)
    image = ax.imshow(shares, cmap="viridis", vmin=0, vmax=1)
    ticks = np.arange(len(CLASS_NAMES))
    ax.set_xticks(ticks, CLASS_NAMES, rotation=90, fontsize=8)
    ax.set_yticks(ticks, CLASS_NAMES, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(f"{title}: share of each class's pixels")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return _save(fig, path)


def plot_per_class_iou(summary: dict, path) -> Path:
    rows = summary["rows"]
    fig, ax = _figure(14, 5)
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(CLASS_NAMES))
    for k, row in enumerate(rows):
        values = [row["per_class"].get(c, float("nan")) for c in CLASS_NAMES]
        label = f"{row['dataset']} ({row['mIoU']:.1f})"
        ax.bar(x + (k - (len(rows) - 1) / 2) * width, np.nan_to_num(values), width, label=label)
    ax.set_xticks(x, CLASS_NAMES, rotation=45, ha="right")
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_title("per-class IoU by dataset (mIoU in the legend)")
    ax.legend(fontsize=8, ncol=min(len(rows), 4), loc="upper center", bbox_to_anchor=(0.5, -0.28))  # below the bars
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def training_series(metrics_json) -> dict:
    """From detectron2's ``metrics.json`` (one JSON object per line): ``total_loss`` and ``lr`` by
    iteration, each evaluated dataset's mIoU (keys ``eval/<dataset>/mIoU``) and the mean over the
    targets (``eval/mean_target_mIoU``) by iteration. Lines that do not parse (a run killed
    mid-write) are left out."""
    import json

    series = {"total_loss": {}, "lr": {}, "mIoU": {}, "mean_target_mIoU": {}}
    for line in Path(metrics_json).read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        it = row.get("iteration")
        for key in ("total_loss", "lr"):
            if key in row:
                series[key][it] = row[key]
        if "eval/mean_target_mIoU" in row:
            series["mean_target_mIoU"][it] = row["eval/mean_target_mIoU"]
        for key, value in row.items():
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == "eval" and parts[2] == "mIoU":
                series["mIoU"].setdefault(parts[1], {})[it] = value
    return series


def plot_training_curves(metrics_json, path) -> Path:
    """Loss, learning rate and evaluation mIoU against the iteration, one panel each."""
    series = training_series(metrics_json)
    fig, axes = _figure(15, 4, panels=3)
    for ax, key, label in ((axes[0], "total_loss", "total loss"), (axes[1], "lr", "learning rate")):
        points = sorted(series[key].items())
        ax.plot([p[0] for p in points], [p[1] for p in points])
        ax.set_title(label)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    axes[1].ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))  # 1e-4 rather than 0.00010
    for dataset, values in sorted(series["mIoU"].items()):
        points = sorted(values.items())
        axes[2].plot([p[0] for p in points], [p[1] for p in points], marker="o", label=dataset)
    if series["mean_target_mIoU"]:
        points = sorted(series["mean_target_mIoU"].items())
        axes[2].plot([p[0] for p in points], [p[1] for p in points], "k--", marker="s", label="mean of targets")
    axes[2].set_title("evaluation mIoU (%)")
    axes[2].set_xlabel("iteration")
    axes[2].grid(alpha=0.3)
    if series["mIoU"]:
        axes[2].legend(fontsize=8)
    else:
        axes[2].text(0.5, 0.5, "no evaluation yet", ha="center", va="center", transform=axes[2].transAxes)
    return _save(fig, path)
