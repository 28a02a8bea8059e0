"""Registration of every split: cheap at import, clear errors, in-place datasets found."""

import logging

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from raw_datasets import write_grey_png, write_rgb

import vltseg_d2  # noqa: F401
from vltseg_d2.data.datasets import CLASS_NAMES, DatasetNotFoundError

EXPECTED = (
    [
        "gta5_train",
        "synthia_train",
        "cityscapes_train",
        "cityscapes_val",
        "cityscapes_test",
        "bdd_train",
        "bdd_val",
        "mapillary_train",
        "mapillary_val",
        "mapillary_val_half",
        "synthetic_source_train",
        "synthetic_source_val",
        "synthetic_night_val",
    ]
    + [f"acdc_{c}_{s}" for c in ("fog", "night", "rain", "snow") for s in ("train", "val", "test")]
    + ["acdc_train", "acdc_val", "acdc_test"]
)


def test_every_split_registered_with_the_19_classes():
    for name in EXPECTED:
        assert name in DatasetCatalog.list(), name
        meta = MetadataCatalog.get(name)
        assert meta.stuff_classes == list(CLASS_NAMES) and meta.ignore_label == 255
        assert meta.evaluator_type == "sem_seg" and len(meta.stuff_colors) == 19


def test_missing_folder_error_names_folder_dataset_and_fix(datasets_dir):
    with pytest.raises(DatasetNotFoundError) as e:
        DatasetCatalog.get("gta5_train")
    msg = str(e.value)
    assert "'gta5_train'" in msg and str(datasets_dir / "gta5" / "images") in msg and "prepare_gta5.py" in msg
    with pytest.raises(DatasetNotFoundError, match="acdc.vision.ee.ethz.ch"):
        DatasetCatalog.get("acdc_night_val")


def test_acdc_in_place_per_condition_and_all(datasets_dir):
    for cond in ("fog", "night", "rain", "snow"):
        stem = f"GOPR0122_frame_000161_{cond}"
        write_rgb(datasets_dir / f"acdc/rgb_anon/{cond}/val/GOPR0122/{stem}_rgb_anon.png", 4, 6)
        write_grey_png(datasets_dir / f"acdc/gt/{cond}/val/GOPR0122/{stem}_gt_labelTrainIds.png", np.zeros((4, 6)))
        write_rgb(datasets_dir / f"acdc/rgb_anon/{cond}/test/GOPR0999/{stem}_rgb_anon.png", 4, 6)
    night = DatasetCatalog.get("acdc_night_val")
    assert len(night) == 1 and night[0]["sem_seg_file_name"].endswith("night_gt_labelTrainIds.png")
    assert len(DatasetCatalog.get("acdc_val")) == 4
    test = DatasetCatalog.get("acdc_test")
    assert len(test) == 4 and all("sem_seg_file_name" not in d for d in test)
    assert not list((datasets_dir / "acdc").rglob("gt/*/test"))  # no fake label files


def test_bdd_accepts_both_label_namings_and_reports_unpaired(datasets_dir, caplog):
    img, lab = datasets_dir / "bdd100k/images/10k/val", datasets_dir / "bdd100k/labels/sem_seg/masks/val"
    for i in ("a1", "b2", "c3"):
        write_rgb(img / f"{i}.jpg", 4, 6)
    write_grey_png(lab / "a1.png", np.zeros((4, 6)))
    write_grey_png(lab / "b2_train_id.png", np.ones((4, 6)))
    write_grey_png(lab / "z9.png", np.ones((4, 6)))
    with caplog.at_level(logging.WARNING):
        records = DatasetCatalog.get("bdd_val")
    assert [r["image_id"] for r in records] == ["a1", "b2"]
    assert "images without a label: c3" in caplog.text and "labels without an image: z9" in caplog.text


def test_importing_touches_no_disk(tmp_path, monkeypatch):
    import subprocess
    import sys

    missing = tmp_path / "nowhere"
    code = "import vltseg_d2, os; assert not os.path.exists(os.environ['DETECTRON2_DATASETS'])"
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={**__import__("os").environ, "DETECTRON2_DATASETS": str(missing)}
    )


def test_test_splits_are_marked_unlabelled():
    assert (
        MetadataCatalog.get("acdc_test").has_labels is False
        and MetadataCatalog.get("cityscapes_test").has_labels is False
    )
    assert MetadataCatalog.get("acdc_val").has_labels is True and MetadataCatalog.get("bdd_val").has_labels is True
