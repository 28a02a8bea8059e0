"""Outputs are never lost or mixed: one training per folder, frames of the same name kept apart,
verified image writes, tables of other datasets kept, a resume with nothing to train stops."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_train_net import FAST, train_net, wait_until

from vltseg_d2.data.datasets.classes import CLASS_NAMES
from vltseg_d2.evaluation.cross_domain import save_cross_domain
from vltseg_d2.evaluation.plots import training_series
from vltseg_d2.evaluation.prediction_writer import PredictionWriter
from vltseg_d2.visualization import run_images

RUN = ["train.checkpointer.period=100", "train.eval_period=0", "dataloader.test_datasets=[synthetic_source_val]"]


def test_a_second_training_in_the_same_folder_is_refused_and_a_killed_ones_lock_is_free(synthetic_root, tmp_path):
    out = tmp_path / "run"
    first = train_net([f"train.output_dir={out}", "train.max_iter=500"] + RUN + FAST, synthetic_root,
                      background=tmp_path / "first.log")  # fmt: skip
    try:
        wait_until(first, lambda: (out / "metrics.json").exists(), "its first iteration")
        second = train_net([f"train.output_dir={out}", "train.max_iter=2"] + RUN + FAST, synthetic_root, check=False)
        assert second.returncode == 1
        assert f"error: train.output_dir={out} is in use by another training (pid {first.pid} on " in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # a crash: the kernel releases the lock
        first.wait(timeout=120)
    third = train_net([f"train.output_dir={out}", "train.max_iter=2"] + RUN + FAST, synthetic_root, check=False)
    assert third.returncode == 0, third.stderr[-2000:]


def test_resume_with_max_iter_below_the_checkpoint_says_so_and_stops(synthetic_root, tmp_path):
    out = tmp_path / "run"
    train_net(
        [f"train.output_dir={out}", "train.max_iter=4", "train.checkpointer.period=2", "dataloader.in_domain=[]"]
        + RUN[1:]
        + FAST,
        synthetic_root,
    )
    tables = sorted(out.glob("eval/*/cross_domain.json"))
    assert json.loads(tables[0].read_text())["provenance"]["iteration"] == 3  # the weights of the last iteration
    series = training_series(out / "metrics.json")
    assert sorted(series["total_loss"]) == [0, 1, 2, 3] and sorted(series["mIoU"]) == ["synthetic_source_val"]
    # TensorBoard and metrics.json get each dataset's three figures and the mean over targets, no per-class ones
    logged = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    evaluated = {k: v for row in logged for k, v in row.items() if k.startswith("eval/")}
    metric = "eval/synthetic_source_val/"
    assert sorted(evaluated) == ["eval/mean_target_mIoU", metric + "aAcc", metric + "mAcc", metric + "mIoU"]
    assert evaluated["eval/mean_target_mIoU"] == evaluated[metric + "mIoU"]
    assert not any("IoU-" in k or "sem_seg" in k for row in logged for k in row)
    assert Image.open(out / "training_curves.png").size[0] > 800
    log = (out / "log.txt").read_text()
    assert "Contents of args.config_file" in log and "\x1b[" not in log  # plain text, no terminal colours
    below = train_net(
        ["--resume", f"train.output_dir={out}", "train.max_iter=2"] + RUN[1:] + FAST, synthetic_root, check=False
    )
    assert below.returncode == 1 and "Traceback" not in below.stderr
    assert f"the checkpoint in {out} is at iteration 3, past train.max_iter=2: nothing to train" in below.stderr
    same = train_net(
        ["--resume", f"train.output_dir={out}", "train.max_iter=4"] + RUN[1:] + FAST, synthetic_root, check=False
    )
    assert same.returncode == 0
    assert "training already ran to its last iteration (3); evaluate it with --eval-only" in same.stderr + same.stdout
    assert sorted(out.glob("eval/*/cross_domain.json")) == tables  # no new table


def _summary(*datasets):
    scores = {"mIoU": 50.0, "mAcc": 60.0, "aAcc": 70.0, "per_class": dict.fromkeys(CLASS_NAMES, 50.0)}
    counts = {"skipped_images": 0, "invalid_label_pixels": 0}
    rows = [{"dataset": d, "in_domain": False, **scores, **counts} for d in datasets]
    return {"rows": rows, "mean_mIoU": 50.0, "num_target_domains": len(rows), "checkpoint": "m.pth", "protocol": {}}


def test_a_table_of_other_datasets_is_kept_beside_the_new_one(tmp_path):
    assert save_cross_domain(_summary("a_val", "b_val"), tmp_path)[0].name == "cross_domain.json"
    assert save_cross_domain(_summary("c_val"), tmp_path)[0].name == "cross_domain_2.json"
    assert save_cross_domain(_summary("b_val", "a_val"), tmp_path)[0].name == "cross_domain.json"  # the same set
    assert save_cross_domain(_summary("c_val"), tmp_path)[0].name == "cross_domain_2.json"
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["cross_domain.json", "cross_domain_2.json"]


def _frames(tmp_path):
    paths = []
    for city, value in (("aachen", 40), ("bremen", 200)):
        path = tmp_path / "images" / city / "frame_leftImg8bit.png"
        path.parent.mkdir(parents=True)
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)
        paths.append(path)
    return paths


def test_frames_of_the_same_name_in_different_folders_keep_their_predictions_and_overlays(tmp_path):
    frames = _frames(tmp_path)
    records = [{"file_name": str(p), "image_id": f"{p.parent.name}/frame"} for p in frames]  # as registered
    writer = PredictionWriter("cityscapes_test", tmp_path / "pred", "trainId")
    writer.reset()
    for k, record in enumerate(records):
        scores = torch.zeros(19, 8, 8)
        scores[k + 1] = 1.0  # class 1 for aachen, 2 for bremen
        writer.process([record], [{"sem_seg": scores}])
    for k, city in enumerate(("aachen", "bremen")):
        written = np.asarray(Image.open(tmp_path / "pred" / city / "frame_leftImg8bit.png"))
        assert (written == k + 1).all()

    written = run_images(_fake_predictor, frames, tmp_path / "overlays")
    assert sorted(Path(p).relative_to(tmp_path / "overlays").as_posix() for p in written) == [
        "aachen/frame_leftImg8bit_seg.png",
        "bremen/frame_leftImg8bit_seg.png",
    ]
    assert all(Path(p).is_file() for p in written)


def test_a_write_cut_short_by_a_full_disk_keeps_the_previous_file(tmp_path):
    from vltseg_d2.data.prepare.common import write_atomic

    target = tmp_path / "pred.png"
    write_atomic(target, np.zeros((4, 4), np.uint8))
    before = target.read_bytes()
    # a file size limit makes the kernel refuse writes past 300 bytes, as a full disk does
    script = (
        "import resource, signal, sys, numpy as np\n"
        "from vltseg_d2.data.prepare.common import write_atomic\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))\n"
        "try:\n"
        f"    write_atomic({str(target)!r}, np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8))\n"
        "except OSError as e:\n"
        "    sys.exit(f'refused: {e}')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and f"could not write {target}: File too large" in result.stderr, result.stderr
    assert target.read_bytes() == before and sorted(tmp_path.iterdir()) == [target]


def test_an_output_folder_that_is_a_file_is_one_line_for_training_and_evaluation(synthetic_root, tmp_path):
    (tmp_path / "taken").write_text("a file")
    (tmp_path / "model.pth").write_bytes(b"")
    for mode in ([], ["--eval-only", f"train.init_checkpoint={tmp_path / 'model.pth'}"]):
        result = train_net(mode + [f"train.output_dir={tmp_path / 'taken'}"] + RUN + FAST, synthetic_root, check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert f"train.output_dir={tmp_path / 'taken'} cannot be written" in result.stderr or (
            f"cannot create the output folder {tmp_path / 'taken'}" in result.stderr
        )


def _demo_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_tool", "tools/demo.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _fake_predictor(rgb):
    return {"sem_seg": torch.zeros(19, *rgb.shape[:2])}


def test_a_video_written_into_a_folder_is_there_with_every_frame(tmp_path):
    import cv2

    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 5, (32, 24))
    for k in range(4):
        writer.write(np.full((24, 32, 3), 60 * k, np.uint8))
    writer.release()
    (tmp_path / "out").mkdir()
    written = _demo_tool().run_video(_fake_predictor, str(clip), str(tmp_path / "out"), side_by_side=False)
    assert written == [tmp_path / "out" / "clip_seg.mp4"]
    reader = cv2.VideoCapture(str(written[0]))
    frames = 0
    while reader.read()[0]:
        frames += 1
    assert frames == 4 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip_seg.mp4"]


def test_one_output_image_name_for_several_inputs_is_refused(tmp_path):
    frames = _frames(tmp_path)
    with pytest.raises(ValueError, match=r"--output .*out.png names one image file, but 2 images were given"):
        run_images(_fake_predictor, frames, tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()


def test_the_demo_writes_a_legend_of_the_classes_present_and_the_raw_prediction(tmp_path):
    from vltseg_d2.visualization import overlay

    frame = tmp_path / "frame.png"
    Image.fromarray(np.full((240, 320, 3), 90, np.uint8)).save(frame)

    def road_and_car(rgb):
        scores = torch.zeros(19, *rgb.shape[:2])
        scores[0] = 1.0
        scores[13, 100:140, 100:200] = 2.0  # a car on the road
        return {"sem_seg": scores}

    written = run_images(road_and_car, [frame], tmp_path / "out", labels="labelId")
    assert [p.name for p in written] == ["frame_seg.png", "frame_labelId.png"]
    raw = np.asarray(Image.open(tmp_path / "out" / "frame_labelId.png"))
    assert raw[120, 150] == 26 and raw[10, 10] == 7  # Cityscapes label ids of car and road
    pred = np.zeros((240, 320), np.int64)
    pred[100:140, 100:200] = 13
    rgb = np.full((240, 320, 3), 90, np.uint8)
    with_legend, without = overlay(rgb, pred, False), overlay(rgb, pred, False, legend=False)
    corner = (slice(170, 240), slice(220, 320))  # the legend's place: lower right
    assert np.abs(with_legend[corner].astype(int) - without[corner]).sum() > 0
    assert np.array_equal(with_legend[:100, :100], without[:100, :100])  # nothing else changes


def test_training_series_reads_every_curve_and_skips_a_line_cut_by_a_kill(tmp_path):
    lines = [
        {"iteration": 0, "total_loss": 5.0, "lr": 0.1},
        {"iteration": 1, "total_loss": 4.0, "lr": 0.05},
        {"iteration": 1, "eval/a_val/mIoU": 12.5, "eval/b_val/mIoU": 7.5, "eval/a_val/aAcc": 80.0},
        {"iteration": 1, "eval/mean_target_mIoU": 10.0},
    ]
    (tmp_path / "metrics.json").write_text("\n".join(json.dumps(r) for r in lines) + '\n{"iteration": 2, "tot')
    series = training_series(tmp_path / "metrics.json")
    assert series == {
        "total_loss": {0: 5.0, 1: 4.0},
        "lr": {0: 0.1, 1: 0.05},
        "mIoU": {"a_val": {1: 12.5}, "b_val": {1: 7.5}},
        "mean_target_mIoU": {1: 10.0},
    }
