"""Bad values caught where they enter: labels, evaluation files, dataset names, overrides, demo
inputs and converter outputs."""

import builtins
import json
import logging
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from omegaconf import OmegaConf
from PIL import Image
from raw_datasets import write_palette_png, write_rgb

from vltseg_d2.config import ConfigError, OverrideError, apply_overrides, load_config
from vltseg_d2.data.datasets.classes import CLASS_NAMES
from vltseg_d2.data.mapper import SemSegDatasetMapper, train_augmentations
from vltseg_d2.data.prepare import gta5
from vltseg_d2.engine import Predictor, evaluation_dataset_names
from vltseg_d2.evaluation import SemSegIoUEvaluator, format_cross_domain_table, summarize_cross_domain
from vltseg_d2.utils.atomic import atomic_path

DEMO_CFG = "configs/demo/tiny_synthetic_cpu.py"


def _save(path, array):
    Image.fromarray(np.asarray(array, np.uint8)).save(path)
    return str(path)


@pytest.mark.parametrize("bad_value", [19, 100])
def test_training_skips_a_label_with_values_outside_the_train_ids(tmp_path, caplog, bad_value):
    label = np.zeros((40, 50), np.uint8)
    label[5:9, 5:9] = bad_value
    record = {
        "file_name": _save(tmp_path / "img.png", np.zeros((40, 50, 3))),
        "sem_seg_file_name": _save(tmp_path / "lab.png", label),
    }
    mapper = SemSegDatasetMapper(train_augmentations((32, 32), [40], max_size=100), pad_to=(32, 32))
    with caplog.at_level(logging.WARNING):
        assert mapper(record) is None
    assert "lab.png" in caplog.text and f"[{bad_value}]" in caplog.text and mapper.skipped == 1


def _evaluator_inputs(tmp_path, label, name, pred_shape=None):
    path = _save(tmp_path / name, label)
    scores = torch.zeros(19, *(pred_shape or label.shape))
    scores[0] = 1.0  # predicts road everywhere
    return {"file_name": f"{name}.jpg", "sem_seg_file_name": path}, {"sem_seg": scores}


def test_evaluation_survives_bad_files_and_counts_them(tmp_path, caplog):
    evaluator = SemSegIoUEvaluator("cityscapes_val", distributed=False)
    good = np.zeros((4, 6), np.uint8)
    invalid = good.copy()
    invalid[0, :3] = 100  # 3 pixels of a value that is no train id
    (tmp_path / "truncated.png").write_bytes(open(_save(tmp_path / "full.png", good), "rb").read()[:30])
    with caplog.at_level(logging.WARNING):
        for record, output in (
            _evaluator_inputs(tmp_path, good, "good.png"),
            _evaluator_inputs(tmp_path, invalid, "invalid.png"),
            _evaluator_inputs(tmp_path, good, "small.png", pred_shape=(8, 6)),
        ):
            evaluator.process([record], [output])
        evaluator.process(
            [{"file_name": "t.jpg", "sem_seg_file_name": str(tmp_path / "truncated.png")}],
            [{"sem_seg": torch.zeros(19, 4, 6)}],
        )
    res = evaluator.evaluate()["sem_seg"]
    assert res["skipped_images"] == 2 and res["invalid_label_pixels"] == 3
    assert res["mIoU"] == 100.0  # 24 + 21 road pixels predicted as road; the bad pixels left out
    assert "truncated.png" in caplog.text and "small.png" in caplog.text and "invalid.png" in caplog.text
    table = format_cross_domain_table(summarize_cross_domain({"cityscapes_val": {"sem_seg": res}}))
    assert "2 images skipped" in table and "3 px with invalid label values ignored" in table


def test_an_all_ignore_validation_set_reports_nan_not_zero(tmp_path):
    evaluator = SemSegIoUEvaluator("cityscapes_val", distributed=False)
    evaluator.process(*map(lambda x: [x], _evaluator_inputs(tmp_path, np.full((4, 6), 255), "ignored.png")))
    res = evaluator.evaluate()["sem_seg"]
    assert math.isnan(res["mIoU"]) and math.isnan(res["mAcc"]) and math.isnan(res["aAcc"])
    row = format_cross_domain_table(summarize_cross_domain({"x": {"sem_seg": res}})).splitlines()[2]
    assert [cell.strip() for cell in row.split("|")[2:5]] == ["-", "-", "-"], row


def test_test_datasets_are_checked_and_a_string_is_one_name():
    cfg = OmegaConf.create({"dataloader": {"test_datasets": "synthetic_fog_val"}})
    assert evaluation_dataset_names(cfg) == ["synthetic_fog_val"]
    cfg.dataloader.test_datasets = ["synthetic_fog_val", "synthetic_fgo_val"]
    with pytest.raises(ConfigError, match="'synthetic_fgo_val' is not a registered dataset.*synthetic_fog_val"):
        evaluation_dataset_names(cfg)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.max_iter=abc", "train.max_iter='abc': expected an integer"),
        ("optimizer.lr=abc", "optimizer.lr='abc': expected a number"),
        ("train.max_iter=-5", "train.max_iter=-5: must be > 0"),
        ("train.amp.enabled=maybe", "expected a boolean"),
    ],
)
def test_overrides_of_the_wrong_type_fail_naming_key_and_type(override, message):
    with pytest.raises(OverrideError, match=message.replace("(", r"\(").replace(".", r"\.")):
        apply_overrides(LazyConfig.load(DEMO_CFG), [override])


@pytest.mark.parametrize("word", ["None", "null", "~"])
def test_none_and_null_both_mean_none(word):
    cfg = apply_overrides(LazyConfig.load(DEMO_CFG), [f"model.backbone.pretrained={word}", "optimizer.lr=1"])
    assert cfg.model.backbone.pretrained is None and cfg.optimizer.lr == 1


def test_demo_skips_corrupt_images_and_fails_when_nothing_was_written(tmp_path):
    torch.manual_seed(0)
    torch.save({"model": instantiate(LazyConfig.load(DEMO_CFG).model).state_dict()}, tmp_path / "model.pth")
    write_rgb(tmp_path / "in" / "good.png", 40, 60)
    jpeg = tmp_path / "in" / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[:-400])  # a truncated JPEG
    run = [
        sys.executable,
        "tools/demo.py",
        "--config-file",
        DEMO_CFG,
        "--output",
        str(tmp_path / "vis"),
        "--opts",
        f"train.init_checkpoint={tmp_path / 'model.pth'}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    mixed = subprocess.run(
        run[:2] + ["--input", str(tmp_path / "in")] + run[2:], capture_output=True, text=True, env=env
    )
    assert mixed.returncode == 0 and "cut.jpg" in mixed.stderr, mixed.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == ["good_seg.png"]
    only_bad = subprocess.run(run[:2] + ["--input", str(jpeg)] + run[2:], capture_output=True, text=True, env=env)
    assert only_bad.returncode != 0 and "nothing was written" in only_bad.stderr


def test_frames_over_the_budget_use_the_sliding_window(tmp_path):
    torch.manual_seed(0)
    cfg = LazyConfig.load(DEMO_CFG)
    torch.save({"model": instantiate(cfg.model).state_dict()}, tmp_path / "model.pth")
    cfg.train.update(init_checkpoint=str(tmp_path / "model.pth"), device="cpu")
    cfg.model.update(test_crop=(64, 64), test_stride=(48, 48))
    predictor = Predictor(cfg, input_format="RGB", max_whole_pixels=64 * 64)
    rgb = np.random.default_rng(0).integers(0, 255, (80, 120, 3), dtype=np.uint8)
    record = {"image": torch.as_tensor(rgb.transpose(2, 0, 1).copy()), "height": 80, "width": 120}
    slide = predictor.model.inference([record], test_mode="slide")[0]["sem_seg"].argmax(0).numpy()
    whole = predictor.model.inference([record], test_mode="whole")[0]["sem_seg"].argmax(0).numpy()
    assert not np.array_equal(slide, whole)
    np.testing.assert_array_equal(predictor(rgb)["sem_seg"].argmax(0).numpy(), slide)
    predictor.max_whole_pixels = 10**9
    np.testing.assert_array_equal(predictor(rgb)["sem_seg"].argmax(0).numpy(), whole)


def test_gta5_converter_reads_images_fully_and_names_an_unwritable_output(datasets_dir):
    root = datasets_dir / "gta5"
    ids = np.full((8, 8), 7, np.uint8)
    for name in ("00001", "00002"):
        write_rgb(root / f"images/{name}.png", 8, 8, seed=int(name))
        write_palette_png(root / f"labels/{name}.png", ids)
    data = (root / "images/00002.png").read_bytes()
    (root / "images/00002.png").write_bytes(data[: len(data) - 40])  # header intact, pixels cut
    (root / "labels_trainIds").mkdir()
    (root / "labels_trainIds/.00003.999.tmp.png").write_bytes(b"left by a killed run")
    summary = gta5.main(["--nproc", "1"])
    bad = {os.path.basename(p): reason for p, reason in summary.bad}
    assert summary.converted == 1 and "truncated" in bad["00002.png"]
    assert not list((root / "labels_trainIds").glob(".*tmp*"))

    # an output folder that cannot be written (here a file stands where it should be: root can
    # write into read-only folders, so permissions cannot stage this in CI): one line naming it
    for p in (root / "labels_trainIds").iterdir():
        p.unlink()
    (root / "labels_trainIds").rmdir()
    (root / "labels_trainIds").write_text("not a folder")
    with pytest.raises(SystemExit, match=r"^error: .*cannot create the folder .*labels_trainIds for 00001\.png"):
        gta5.main(["--nproc", "1"])


def test_an_interrupted_write_leaves_no_temporary(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "label.png") as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt  # Ctrl-C during a converter
    assert list(tmp_path.iterdir()) == []


def test_unreadable_validation_images_are_skipped_counted_and_the_other_datasets_evaluated(tmp_path):
    from test_train_net import FAST, train_net

    from vltseg_d2.checkpoint.io import save_atomic
    from vltseg_d2.data.synthetic import generate

    root = tmp_path / "datasets"
    generate(root, num_train=2, num_val=3, height=96, width=192, seed=0, nproc=1)
    night = root / "synthetic" / "night" / "val" / "images"
    (night / "00000.png").write_bytes(b"")  # zero bytes
    (night / "00001.png").unlink()
    (night / "00001.png").mkdir()  # a folder named like an image
    cfg = LazyConfig.load("configs/demo/tiny_synthetic_cpu.py")
    save_atomic({"model": instantiate(cfg.model).state_dict()}, tmp_path / "model.pth")
    out = tmp_path / "eval"
    args = ["--eval-only", f"train.init_checkpoint={tmp_path / 'model.pth'}", f"train.output_dir={out}",
            "dataloader.test_datasets=[synthetic_night_val,synthetic_source_val]"] + FAST  # fmt: skip
    result = train_net(args, root)
    summary = json.loads(next(out.glob("eval/*/cross_domain.json")).read_text())
    skipped = {row["dataset"]: row["skipped_images"] for row in summary["rows"]}
    assert skipped == {"synthetic_night_val": 2, "synthetic_source_val": 0}
    folder = next(out.glob("eval/*/cross_domain.json")).parent
    confusions = np.load(folder / "cross_domain_confusion.npz")
    assert sorted(confusions.files) == ["synthetic_night_val", "synthetic_source_val"]
    assert confusions["synthetic_night_val"].sum() == 96 * 192  # the one readable night image's pixels
    for row in summary["rows"]:  # per-class accuracy recomputed from the saved matrix
        conf = confusions[row["dataset"]].astype(float)
        for k, name in enumerate(CLASS_NAMES):
            expected = 100 * conf[k, k] / conf[k].sum() if conf[k].sum() else float("nan")
            assert row["per_class_acc"][name] == pytest.approx(expected, nan_ok=True)
    record = summary["provenance"]
    assert record["images"] == {"synthetic_night_val": 3, "synthetic_source_val": 3} and record["iteration"] is None
    assert len(record["config_sha256"]) == 64 and record["checkpoint"] == str(tmp_path / "model.pth")
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?|unknown", record["commit"])
    assert "images: synthetic_night_val 3, synthetic_source_val 3;" in (folder / "cross_domain.md").read_text()
    assert re.search(r"evaluating synthetic_night_val \(1 of 2\): 3 images\n", result.stdout + result.stderr)
    eta = r"evaluating synthetic_source_val \(2 of 2\): 3 images; about \d+:\d\d:\d\d left for all 2 datasets"
    assert re.search(eta, result.stdout + result.stderr)
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert pngs == [f"cross_domain_confusion_synthetic_{d}_val.png" for d in ("night", "source")] + [
        "cross_domain_per_class_iou.png"
    ]
    log = result.stdout + result.stderr
    assert "unreadable image" in log and "00000.png" in log and "00001.png" in log and "Traceback" not in log


def test_16_bit_labels_and_images_are_read_as_what_they_hold(tmp_path):
    from vltseg_d2.data.images import read_image, read_label

    label = np.array([[0, 18, 255], [2, 3, 4]], np.uint16)
    Image.fromarray(label).save(tmp_path / "ok16.png")
    assert read_label(str(tmp_path / "ok16.png")).tolist() == label.tolist()
    label[0, 0] = 258  # would wrap to class 2
    Image.fromarray(label).save(tmp_path / "wide.png")
    with pytest.raises(ValueError, match="wide.png is uint16 with values up to 258; expected train ids"):
        read_label(str(tmp_path / "wide.png"))
    gray = np.array([[0, 257, 65535], [1000, 30000, 128]], np.uint16)
    Image.fromarray(gray).save(tmp_path / "gray16.png")
    image = read_image(str(tmp_path / "gray16.png"), format="BGR")
    assert image.shape == (2, 3, 3) and image.dtype == np.uint8
    assert image[..., 0].tolist() == [[0, 1, 255], [4, 117, 0]]  # value / 257, rounded
    Image.fromarray(np.zeros((2, 2), np.float32), mode="F").save(tmp_path / "float.tiff")
    with pytest.raises(ValueError, match="float.tiff is a 32-bit float image"):
        read_image(str(tmp_path / "float.tiff"))


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.backbone=5", r"model.backbone is a group of settings, not a value; set one of its keys"),
        ("dataloader.test_datasets={a:1}", r"dataloader.test_datasets=\{a:1\}: cannot be applied \("),
        ("dataloader.test_datasets=5", r"expected a list like the config's \["),
        ("train.ema.decay=1.5", r"train.ema.decay=1.5: must be between 0 and 1"),
        ("dataloader.train.num_workers=-2", r"num_workers=-2: must be >= 0"),
        ("train.log_period=0", r"train.log_period=0: must be > 0"),
        ("optimizer.lr=nan", r"optimizer.lr=nan: must be > 0"),
    ],
)
def test_overrides_outside_their_domain_are_one_line(override, message):
    with pytest.raises(OverrideError, match=message) as error:
        load_config("configs/demo/tiny_synthetic_cpu.py", [override])
    assert "\n" not in str(error.value)


def test_string_overrides_with_spaces_and_non_ascii_letters_are_taken_as_written():
    cfg = load_config("configs/demo/tiny_synthetic_cpu.py", ["train.output_dir=/tmp/ünï cödé/run 1"])
    assert cfg.train.output_dir == "/tmp/ünï cödé/run 1"


def test_config_files_that_fail_or_leave_values_unset_are_one_line(tmp_path):
    (tmp_path / "syntax.py").write_text("x = (\n")
    (tmp_path / "raises.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "unset.py").write_text(
        "from detectron2.config import LazyConfig\nfrom omegaconf import MISSING\n"
        "_c = LazyConfig.load('configs/demo/tiny_synthetic_cpu.py')\nglobals().update({k: _c[k] for k in _c})\n"
        "train.output_dir = MISSING\n"
    )
    cases = {
        "syntax.py": "has a syntax error at line 1: '\\(' was never closed",
        "raises.py": "failed to load: RuntimeError: boom",
        "unset.py": r"train.output_dir has no value \(\?\?\?\) in .*unset.py: set them with key=value",
    }
    original_import = builtins.__import__
    for name, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            load_config(str(tmp_path / name))
        assert builtins.__import__ is original_import  # detectron2 leaves its patch on a failing config
    with pytest.raises(FileNotFoundError, match="nothing.py does not exist"):
        load_config(str(tmp_path / "nothing.py"))


@pytest.mark.parametrize("option", ["--num-gpus=-1", "--num-gpus=0", "--num-machines=0", "--machine-rank=3"])
def test_process_counts_that_make_no_sense_are_one_line_before_anything_starts(option):
    result = subprocess.run(
        [sys.executable, "tools/train_net.py", "--config-file", "configs/demo/tiny_synthetic_cpu.py", option],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "need at least 1 process per machine" in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr
