"""The cross-domain summary: one row per target dataset and their arithmetic mean.

Datasets are never pooled: each one's mIoU comes from its own confusion matrix.
"""

import json
import math
from pathlib import Path

import numpy as np
from tabulate import tabulate

from ..data.datasets.classes import CLASS_NAMES
from ..utils.atomic import atomic_path, write_text_atomic
from .provenance import describe_provenance


def summarize_cross_domain(results: dict, in_domain=()) -> dict:
    """``results``: dataset name -> ``{"sem_seg": metrics}`` (as detectron2's ``inference_on_dataset``
    returns). Datasets in ``in_domain`` are listed but left out of the mean."""
    rows = []
    for name, res in results.items():
        m = res["sem_seg"] if "sem_seg" in res else res
        rows.append(
            dict(
                dataset=name,
                in_domain=name in in_domain,
                mIoU=m["mIoU"],
                mAcc=m["mAcc"],
                aAcc=m["aAcc"],
                per_class={c: m.get(f"IoU-{c}", float("nan")) for c in CLASS_NAMES},
                per_class_acc={c: m.get(f"Acc-{c}", float("nan")) for c in CLASS_NAMES},
                skipped_images=m.get("skipped_images", 0),
                invalid_label_pixels=m.get("invalid_label_pixels", 0),
            )
        )
    targets = [r["mIoU"] for r in rows if not r["in_domain"]]
    mean = sum(targets) / len(targets) if targets else float("nan")
    return dict(rows=rows, mean_mIoU=mean, num_target_domains=len(targets))


def evaluation_scalars(results: dict, in_domain=()) -> dict:
    """What training logs of an evaluation (TensorBoard, ``metrics.json``): each dataset's mIoU,
    mAcc and aAcc as ``eval/<dataset>/<metric>`` and the mean over the target domains as
    ``eval/mean_target_mIoU``, the figure DGSS selects on. The 19 per-class figures per dataset
    stay in the cross-domain JSON: as scalars they made hundreds of one-point TensorBoard curves.
    Nested, as detectron2's ``EvalHook`` requires (it flattens with "/")."""
    summary = summarize_cross_domain(results, in_domain)
    scalars = {r["dataset"]: {k: float(r[k]) for k in ("mIoU", "mAcc", "aAcc")} for r in summary["rows"]}
    if summary["num_target_domains"]:
        scalars["mean_target_mIoU"] = float(summary["mean_mIoU"])
    return {"eval": scalars}


def _fmt(v):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def _problems(row) -> str:
    """What was left out of a row's scores (bad files), for a "problems" column."""
    notes = []
    if row.get("skipped_images"):
        notes.append(f"{row['skipped_images']} images skipped")
    if row.get("invalid_label_pixels"):
        notes.append(f"{row['invalid_label_pixels']} px with invalid label values ignored")
    return ", ".join(notes)


def describe_protocol(protocol: dict) -> str:
    """One line: protocol name, inference mode (crop / stride), TTA, and each dataset's resize."""
    mode = protocol["test_mode"]
    if mode == "slide":
        mode = "sliding window {}x{} / stride {}x{}".format(*protocol["crop"], *protocol["stride"])
    tta = protocol.get("tta") or {}
    scales, flip = tta.get("scales", [1.0]), tta.get("flip", False)
    tta_text = "no TTA" if scales == [1.0] and not flip else f"TTA scales {scales}" + (" + flip" if flip else "")
    resize = "; ".join(
        f"{name} " + (r if isinstance(r, str) else f"short edge {r.get('short_edge')}, long <= {r.get('max_size')}")
        for name, r in protocol["resize"].items()
    )
    return f"protocol {protocol['name']}: {mode}, {tta_text}; inputs: {resize}"


def format_cross_domain_table(summary: dict, per_class=False, tablefmt="github") -> str:
    """The table, preceded by the protocol line when the summary records one; with ``per_class``
    the per-class IoU table (:func:`format_per_class_table`) follows it."""
    problems = [_problems(r) for r in summary["rows"]]
    extra = ["problems"] if any(problems) else []
    table = [
        [_row_name(r), _fmt(r["mIoU"]), _fmt(r["mAcc"]), _fmt(r["aAcc"])] + ([note] if extra else [])
        for r, note in zip(summary["rows"], problems)
    ]
    table.append(
        [f"mean of {summary['num_target_domains']} target domains", _fmt(summary["mean_mIoU"]), "", ""]
        + ([""] if extra else [])
    )
    headers = ["dataset", "mIoU", "mAcc", "aAcc"] + extra
    text = tabulate(table, headers=headers, tablefmt=tablefmt, disable_numparse=True)
    if per_class:
        text += "\n\nper-class IoU\n" + format_per_class_table(summary, tablefmt=tablefmt)
    header = [describe_protocol(summary["protocol"])] if summary.get("protocol") else []
    header += [describe_provenance(summary["provenance"])] if summary.get("provenance") else []
    return "\n".join(header) + "\n\n" + text if header else text


def _row_name(row) -> str:
    return row["dataset"] + (" (in-domain)" if row["in_domain"] else "")


def format_per_class_table(summary: dict, metric: str = "per_class", tablefmt="github") -> str:
    """Classes as rows, datasets as columns (19 rows fit a page; 19 columns did not), and the
    mean over the target domains per class. ``metric``: ``per_class`` (IoU) or ``per_class_acc``."""
    rows = summary["rows"]
    targets = [r for r in rows if not r["in_domain"]]
    table = []
    for c in CLASS_NAMES:
        values = [r.get(metric, {}).get(c, float("nan")) for r in targets]  # older JSON: no accuracy
        finite = [v for v in values if not math.isnan(v)]
        mean = sum(finite) / len(finite) if finite and len(finite) == len(values) else float("nan")
        table.append([c] + [_fmt(r.get(metric, {}).get(c, float("nan"))) for r in rows] + [_fmt(mean)])
    headers = ["class"] + [_row_name(r) for r in rows] + [f"mean of {len(targets)} targets"]
    return tabulate(table, headers=headers, tablefmt=tablefmt, disable_numparse=True)


def _datasets_of(json_path: Path):
    try:
        return sorted(row["dataset"] for row in json.loads(json_path.read_text())["rows"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable: kept, never replaced


def free_table_stem(output_dir, summary: dict, stem: str = "cross_domain") -> str:
    """``stem``, or ``stem_2``, ``stem_3``, ...: a table of the same datasets is replaced (the same
    evaluation run again), one of other datasets is kept beside the new one."""
    out, wanted = Path(output_dir), sorted(row["dataset"] for row in summary["rows"])
    candidate, n = stem, 1
    while (out / f"{candidate}.json").exists() and _datasets_of(out / f"{candidate}.json") != wanted:
        n += 1
        candidate = f"{stem}_{n}"
    return candidate


def save_cross_domain(summary: dict, output_dir, stem="cross_domain", confusions=None):
    """Write ``<stem>.json`` and ``<stem>.md`` (per-class table included), or ``<stem>_<n>.*``
    where a table of other datasets is there already (:func:`free_table_stem`); returns the paths.
    Beside them: ``<stem>_per_class_iou.png`` and, given ``confusions`` (dataset -> 19 x 19 counts,
    rows ground truth), ``<stem>_confusion.npz`` and ``<stem>_confusion_<dataset>.png``."""
    from .plots import plot_confusion, plot_per_class_iou  # matplotlib only when a table is saved

    out = Path(output_dir)
    stem = free_table_stem(out, summary, stem)
    plot_per_class_iou(summary, out / f"{stem}_per_class_iou.png")
    if confusions:
        with atomic_path(out / f"{stem}_confusion.npz") as tmp:
            np.savez(tmp, **{name: np.asarray(conf, np.int64) for name, conf in confusions.items()})
        for name, conf in confusions.items():
            plot_confusion(conf, name, out / f"{stem}_confusion_{name}.png")
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    write_text_atomic(json_path, json.dumps(summary, indent=2, allow_nan=True))
    write_text_atomic(
        md_path,
        "# Cross-domain evaluation\n\n"
        + format_cross_domain_table(summary)
        + "\n\n## Per-class IoU\n\n"
        + format_per_class_table(summary)
        + "\n\n## Per-class accuracy\n\n"
        + format_per_class_table(summary, "per_class_acc")
        + "\n",
    )
    return json_path, md_path
