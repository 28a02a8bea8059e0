"""Training under interruption and divergence: SIGTERM/SIGINT, NaN losses."""

import json
import signal
import time

import pytest
import torch
from test_train_net import FAST, losses_by_iter, train_net

from vltseg_d2.engine import REQUEUE_EXIT_CODE

COMMON = [
    "train.max_iter=20",  # margin: the signal must land before the run ends, also on a busy machine
    "train.checkpointer.period=100",
    "train.eval_period=0",
    "dataloader.test_datasets=[synthetic_source_val]",
] + FAST


def wait_for_iteration(out, proc, iteration, timeout=300):
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if (out / "metrics.json").exists() and max(losses_by_iter(out), default=-1) >= iteration:
            return
        time.sleep(0.05)
    raise AssertionError(f"training did not reach iteration {iteration}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_the_iteration_and_resume_repeats_the_run(synthetic_root, tmp_path, sig):
    train_net([f"train.output_dir={tmp_path / 'ref'}"] + COMMON, synthetic_root)
    reference = losses_by_iter(tmp_path / "ref")

    out = tmp_path / "stopped"
    proc = train_net([f"train.output_dir={out}"] + COMMON, synthetic_root, background=True)
    wait_for_iteration(out, proc, 1)
    proc.send_signal(sig)
    assert proc.wait(timeout=300) == REQUEUE_EXIT_CODE
    stopped_at = max(losses_by_iter(out))
    assert stopped_at < 19, "the run finished before the signal arrived"
    assert (out / "last_checkpoint").read_text() == f"model_{stopped_at:07d}.pth"
    assert torch.load(out / f"model_{stopped_at:07d}.pth", weights_only=True)["iteration"] == stopped_at

    train_net(["--resume", f"train.output_dir={out}"] + COMMON, synthetic_root)
    after = losses_by_iter(out)
    assert sorted(after) == list(range(20))  # no iteration lost or repeated
    for it in range(20):
        assert after[it] == pytest.approx(reference[it], rel=1e-5), (it, after[it], reference[it])


def test_a_nan_loss_stops_training_naming_iteration_terms_and_lr(synthetic_root, tmp_path):
    out = tmp_path / "diverged"
    result = train_net(
        [
            f"train.output_dir={out}",
            "optimizer.lr=1e9",
            "train.max_iter=30",
            "train.checkpointer.period=1",
            "train.eval_period=0",
            "dataloader.test_datasets=[synthetic_source_val]",
        ]
        + FAST,
        synthetic_root,
        check=False,
    )
    message = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0 and message.startswith("error: "), result.stderr[-2000:]
    assert "at iteration" in message and "learning rate" in message and ("loss" in message or "NaN" in message)
    for path in out.glob("model_*.pth"):  # nothing broken was saved
        state = torch.load(path, weights_only=True)["model"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), path
    last = json.loads((out / "metrics.json").read_text().splitlines()[-1])
    assert last["iteration"] < 29


def test_the_launcher_forwards_sigterm_to_its_workers_and_exits_for_requeue(synthetic_root, tmp_path):
    """Two gloo processes: SIGTERM to the launcher reaches both workers, which agree on the
    iteration, write one checkpoint and exit with the requeue status."""
    out = tmp_path / "two"
    proc = train_net(
        [
            "--num-gpus",
            "2",
            f"train.output_dir={out}",
            "train.max_iter=60",
            "train.checkpointer.period=100",
            "train.eval_period=0",
            "dataloader.test_datasets=[synthetic_source_val]",
        ]
        + FAST,
        synthetic_root,
        background=True,
    )
    wait_for_iteration(out, proc, 2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == REQUEUE_EXIT_CODE
    stopped_at = max(losses_by_iter(out))
    assert stopped_at < 59 and (out / "last_checkpoint").read_text() == f"model_{stopped_at:07d}.pth"
