"""tools/train_net.py end to end on CPU: two gloo processes, kill -9 and --resume, --eval-only."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from images import read_image

FAST = [
    "dataloader.train.mapper.augmentations.crop_size=[64,64]",
    "dataloader.train.mapper.augmentations.short_edges=[96]",
    "dataloader.train.total_batch_size=2",
    "dataloader.train.num_workers=0",
    "dataloader.test.num_workers=0",
    "model.criterion.num_points=256",
    "train.log_period=1",
]


def train_net(args, datasets, check=True, **kwargs):
    env = {**os.environ, "DETECTRON2_DATASETS": str(datasets), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "tools/train_net.py", "--config-file", "configs/demo/tiny_synthetic_cpu.py"] + args
    log = kwargs.pop("background", None)  # a path: run in the background, output to that file
    if log:
        with open(log, "w") as f:
            # its own process group: a test can signal the whole job (as a terminal or SLURM does)
            proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log = log
        return proc
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr[-3000:])
    return result


def wait_until(proc, reached, what, timeout=300):
    """Poll ``reached()`` while the background run lives; fail with its log if it never holds."""
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if reached():
            return
        time.sleep(0.02)
    raise AssertionError(f"training did not reach {what}:\n{proc.log.read_text()[-3000:]}")


def losses_by_iter(output_dir):
    rows = [json.loads(line) for line in (output_dir / "metrics.json").read_text().splitlines() if "total_loss" in line]
    return {r["iteration"]: r["total_loss_unsmoothed"] for r in rows}


def test_two_cpu_processes_train_and_evaluate(synthetic_root, tmp_path):
    out = tmp_path / "run"
    train_net(
        [
            "--num-gpus",
            "2",
            f"train.output_dir={out}",
            "train.max_iter=3",
            "train.checkpointer.period=2",
            "dataloader.test_datasets=[synthetic_source_val,synthetic_night_val]",
        ]
        + FAST,
        synthetic_root,
    )
    assert (out / "model_final.pth").exists() and (out / "model_0000001.pth").exists()
    summary = json.loads((out / "eval" / "model_final" / "cross_domain.json").read_text())
    assert [r["dataset"] for r in summary["rows"]] == ["synthetic_source_val", "synthetic_night_val"]
    assert max(losses_by_iter(out)) == 2

    # --eval-only with two processes: table and predictions under train.output_dir/eval/<checkpoint name>
    ckpt = tmp_path / "eval" / "model.pth"
    ckpt.parent.mkdir()
    os.link(out / "model_final.pth", ckpt)
    result = train_net(
        [
            "--eval-only",
            "--num-gpus",
            "2",
            "--per-class",
            f"train.init_checkpoint={ckpt}",
            "dataloader.test_datasets=[synthetic_fog_val]",
            "train.write_predictions=labelId",
            f"train.output_dir={tmp_path / 'eval_out'}",
        ]
        + FAST,
        synthetic_root,
    )
    eval_dir = tmp_path / "eval_out" / "eval" / "model"
    evaluated = json.loads((eval_dir / "cross_domain.json").read_text())
    assert evaluated["checkpoint"] == str(ckpt)
    log = result.stdout + result.stderr
    assert evaluated["rows"][0]["dataset"] == "synthetic_fog_val" and "mean of 1 target domains" in log
    assert "traffic light" in log  # per-class columns on request
    preds = sorted((eval_dir / "predictions" / "synthetic_fog_val").glob("*.png"))
    assert len(preds) == 8
    assert set(np.unique(read_image(preds[0]))) <= {
        7,
        8,
        11,
        12,
        13,
        17,
        19,
        20,
        21,
        22,
        23,
        24,
        25,
        26,
        27,
        28,
        31,
        32,
        33,
    }  # Cityscapes label ids


def test_resume_after_sigkill_repeats_the_uninterrupted_run(synthetic_root, tmp_path):
    common = [
        "train.max_iter=24",  # margin: the kill must land before the run ends, also on a busy machine
        "train.checkpointer.period=3",
        "train.eval_period=0",
        "dataloader.test_datasets=[synthetic_source_val]",
    ] + FAST
    train_net([f"train.output_dir={tmp_path / 'ref'}"] + common, synthetic_root)
    reference = losses_by_iter(tmp_path / "ref")

    out = tmp_path / "killed"
    proc = train_net([f"train.output_dir={out}"] + common, synthetic_root, background=tmp_path / "killed.log")
    wait_until(proc, (out / "model_0000005.pth").exists, "the checkpoint of iteration 5")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    last = (out / "last_checkpoint").read_text()
    resumed_from = int(last.split("_")[1].split(".")[0]) + 1
    assert 6 <= resumed_from < 24, last
    assert not list(out.glob("*.tmp"))  # no half-written checkpoint under a final name

    train_net(["--resume", f"train.output_dir={out}"] + common, synthetic_root)
    after = losses_by_iter(out)
    assert max(after) == 23 and (out / "model_final.pth").exists()
    for it in range(resumed_from, 24):
        assert after[it] == pytest.approx(reference[it], rel=1e-5), (it, after[it], reference[it])


def test_misspelled_override_fails_before_training(synthetic_root, tmp_path):
    result = train_net([f"train.output_dir={tmp_path}", "train.max_itr=3"], synthetic_root, check=False)
    assert result.returncode == 2 and "Did you mean 'train.max_iter'" in result.stderr
    assert not (tmp_path / "metrics.json").exists()


def test_eval_only_without_weights_is_a_clear_error(synthetic_root, tmp_path):
    result = train_net(["--eval-only", f"train.output_dir={tmp_path}"], synthetic_root, check=False)
    assert result.returncode != 0 and "train.init_checkpoint" in result.stderr


def test_a_batch_that_cannot_be_split_names_the_ways_out(synthetic_root, tmp_path):
    result = train_net(["--num-gpus", "3", f"train.output_dir={tmp_path}"], synthetic_root, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "total_batch_size=4 is not divisible by the 3 processes: run on 1, 2, 4 process(es)" in result.stderr
    assert "total_batch_size=6 and optimizer.lr=0.0015" in result.stderr  # the demo's lr 1e-3 x 6/4
    assert not (tmp_path / "metrics.json").exists()
