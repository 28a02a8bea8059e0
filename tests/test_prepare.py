"""The converters on tiny raw datasets in each original format, with planted bad files."""

import numpy as np
import pytest
from detectron2.data import DatasetCatalog
from images import image_size, read_image
from raw_datasets import (
    MAPILLARY_NAMES_BY_ID,
    write_corrupt,
    write_grey_png,
    write_mapillary_config,
    write_palette_png,
    write_rgb,
    write_synthia_label,
)

from vltseg_d2.data.prepare import cityscapes, gta5, mapillary, mapillary_half, synthia


def bad_names(summary):
    return {p.split("/")[-1]: reason for p, reason in summary.bad}


def test_gta5_converts_label_ids_and_reports_bad_files(datasets_dir):
    root = datasets_dir / "gta5"
    ids = np.array(
        [[7, 8, 11, 26], [33, 0, 24, 255]], np.uint8
    )  # road sidewalk building car / bicycle unlabeled person -
    write_rgb(root / "images/00001.png", 2, 4)
    write_palette_png(root / "labels/00001.png", ids)
    write_rgb(root / "images/00002.png", 3, 4)  # size mismatch
    write_palette_png(root / "labels/00002.png", ids)
    write_rgb(root / "images/00003.png", 2, 4)
    write_corrupt(root / "labels/00003.png")
    write_rgb(root / "images/00004.png", 2, 4)  # image without a label
    write_palette_png(root / "labels/00005.png", ids)  # label without an image

    summary = gta5.main(["--nproc", "2"])
    out = read_image(root / "labels_trainIds/00001.png")
    np.testing.assert_array_equal(out, [[0, 1, 2, 13], [18, 255, 11, 255]])
    assert summary.converted == 1
    bad = bad_names(summary)
    assert set(bad) == {"00002.png", "00003.png", "00004.png", "00005.png"}
    assert "2x3" not in bad["00002.png"] and "4x2" in bad["00002.png"] and "4x3" in bad["00002.png"]
    assert "corrupt" in bad["00003.png"]
    assert bad["00004.png"] == "image without a label" and bad["00005.png"] == "label without an image"
    assert [d["image_id"] for d in DatasetCatalog.get("gta5_train")] == ["00001"]

    again = gta5.main(["--nproc", "1", "--resize-mismatched"])  # resumes; resizes the mismatched one
    assert (again.converted, again.skipped) == (1, 1)
    assert read_image(root / "labels_trainIds/00002.png").shape == (3, 4)


def test_synthia_reads_16bit_last_channel(datasets_dir):
    root = datasets_dir / "synthia"
    ids = np.array([[3, 4, 2, 21, 5, 7, 15, 9], [6, 1, 10, 17, 8, 19, 12, 11], [13, 14, 16, 0, 18, 20, 22, 300]])
    write_rgb(root / "RGB/0000000.png", 3, 8)
    write_synthia_label(root / "GT/LABELS/0000000.png", ids)
    write_rgb(root / "RGB/0000001.png", 3, 8)
    write_corrupt(root / "GT/LABELS/0000001.png")
    summary = synthia.main(["--nproc", "1"])
    np.testing.assert_array_equal(
        read_image(root / "GT/labels_trainIds/0000000.png"),
        [[0, 1, 2, 3, 4, 5, 6, 7], [8, 10, 11, 12, 13, 15, 17, 18], [255] * 8],
    )
    assert summary.converted == 1 and list(bad_names(summary)) == ["0000001.png"]
    assert len(DatasetCatalog.get("synthia_train")) == 1


def test_cityscapes_label_ids_to_train_ids_and_registration(datasets_dir):
    root = datasets_dir / "cityscapes"
    ids = np.array([[7, 8, 26, 1], [31, 32, 33, 6]])
    for split in ("train", "val"):
        write_rgb(root / f"leftImg8bit/{split}/aachen/aachen_000000_000019_leftImg8bit.png", 2, 4)
        write_grey_png(root / f"gtFine/{split}/aachen/aachen_000000_000019_gtFine_labelIds.png", ids)
    write_rgb(root / "leftImg8bit/test/berlin/berlin_000000_000019_leftImg8bit.png", 2, 4)
    summary = cityscapes.main([])
    assert summary.converted == 2 and not summary.bad
    out = read_image(root / "gtFine/val/aachen/aachen_000000_000019_gtFine_labelTrainIds.png")
    np.testing.assert_array_equal(out, [[0, 1, 13, 255], [16, 17, 18, 255]])
    val = DatasetCatalog.get("cityscapes_val")
    assert len(val) == 1 and val[0]["sem_seg_file_name"].endswith("_gtFine_labelTrainIds.png")
    test = DatasetCatalog.get("cityscapes_test")
    assert len(test) == 1 and "sem_seg_file_name" not in test[0]


def test_mapillary_maps_by_name_then_halves(datasets_dir):
    root = datasets_dir / "mapillary"
    write_mapillary_config(root / "config_v1.2.json")
    ids = np.arange(66).reshape(6, 11)
    expected = np.full(66, 255)
    for i, name in MAPILLARY_NAMES_BY_ID.items():
        expected[i] = mapillary.NAME_TO_TRAIN_ID[name]
    assert (expected[[13, 2, 55, 58, 27]] == [0, 1, 13, 16, 10]).all()
    for split in ("training", "validation"):
        write_rgb(root / f"{split}/images/abc.jpg", 6, 11)
        write_palette_png(root / f"{split}/labels/abc.png", ids)
    assert mapillary.main([]).converted == 2
    full = read_image(root / "validation/labels_trainIds/abc.png")
    np.testing.assert_array_equal(full, expected.reshape(6, 11))

    assert mapillary_half.main([]).converted == 1
    half = read_image(root / "validation_half/labels_trainIds/abc.png")
    assert half.shape == (3, 6) and image_size(root / "validation_half/images/abc.jpg") == (6, 3)
    assert set(np.unique(half)) <= set(np.unique(full))  # nearest: no interpolated ids
    assert len(DatasetCatalog.get("mapillary_val_half")) == 1 and len(DatasetCatalog.get("mapillary_train")) == 1


def test_mapillary_rejects_a_config_of_another_version(datasets_dir):
    root = datasets_dir / "mapillary"
    names = dict(MAPILLARY_NAMES_BY_ID)
    del names[55]
    write_mapillary_config(root / "config_v1.2.json", names)
    with pytest.raises(SystemExit, match="no class named Car"):
        mapillary.main([])


def test_prepare_scripts_explain_themselves_and_name_missing_folders(tmp_path):
    import subprocess
    import sys

    for name in ("gta5", "synthia", "cityscapes", "mapillary", "mapillary_half"):
        help_text = subprocess.run(
            [sys.executable, f"datasets/prepare_{name}.py", "--help"], capture_output=True, text=True, check=True
        ).stdout
        assert "--nproc" in help_text and "--root" in help_text
    missing = subprocess.run(
        [sys.executable, "datasets/prepare_gta5.py", "--root", str(tmp_path / "gta")], capture_output=True, text=True
    )
    assert missing.returncode != 0 and str(tmp_path / "gta" / "images") in missing.stderr
