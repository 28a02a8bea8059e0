"""Training under interruption and divergence: SIGTERM/SIGINT, NaN losses."""

import json
import logging
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from detectron2.utils.events import EventStorage
from test_train_net import FAST, losses_by_iter, train_net, wait_until

from vltseg_d2.data.test_loader import TestLoader
from vltseg_d2.engine import REQUEUE_EXIT_CODE
from vltseg_d2.engine.preemption import PreemptionHook, _interrupt_at_once, raise_if_interrupted
from vltseg_d2.engine.writers import MetricPrinter

COMMON = [
    "train.max_iter=20",  # margin: the signal must land before the run ends, also on a busy machine
    "train.checkpointer.period=100",
    "train.eval_period=0",
    "dataloader.test_datasets=[synthetic_source_val]",
] + FAST


def wait_for_iteration(out, proc, iteration):
    def reached():
        return (out / "metrics.json").exists() and max(losses_by_iter(out), default=-1) >= iteration

    wait_until(proc, reached, f"iteration {iteration}")


def stop_with_signal(out, proc, sig, after_iteration=1, group=False):
    """Send ``sig`` once the background run logged ``after_iteration`` (to the main process, or
    with ``group`` to every process of the job, data-loader workers included, as a terminal's
    Ctrl-C and SLURM do); the run must checkpoint and exit for requeue. Returns the iteration it
    stopped at."""
    wait_for_iteration(out, proc, after_iteration)
    os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
    code = proc.wait(timeout=300)
    log = proc.log.read_text()
    assert "received after the last iteration" not in log, "the run ended before the signal: raise train.max_iter"
    assert code == REQUEUE_EXIT_CODE, f"exit status {code}:\n{log[-3000:]}"
    stopped_at = max(losses_by_iter(out))
    assert (out / "last_checkpoint").read_text() == f"model_{stopped_at:07d}.pth"
    return stopped_at


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_the_iteration_and_resume_repeats_the_run(synthetic_root, tmp_path, sig):
    train_net([f"train.output_dir={tmp_path / 'ref'}"] + COMMON, synthetic_root)
    reference = losses_by_iter(tmp_path / "ref")

    out = tmp_path / "stopped"
    proc = train_net([f"train.output_dir={out}"] + COMMON, synthetic_root, background=tmp_path / "stopped.log")
    stopped_at = stop_with_signal(out, proc, sig)
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


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_whole_process_group_still_checkpoints(synthetic_root, tmp_path, sig, processes):
    """Data-loader workers ignore the signal (the main process decides): the run checkpoints and
    exits for requeue instead of failing on a dead worker."""
    out = tmp_path / "group"
    workers = ["dataloader.train.num_workers=2", "dataloader.test.num_workers=1"]  # after COMMON's 0
    args = [f"--num-gpus={processes}", f"train.output_dir={out}"] + COMMON + workers
    proc = train_net(args, synthetic_root, background=tmp_path / "group.log")
    stop_with_signal(out, proc, sig, after_iteration=2, group=True)


def _children(pid):
    return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]


def test_a_killed_data_worker_is_one_line_naming_the_checkpoint_to_resume_from(synthetic_root, tmp_path):
    out = tmp_path / "killed"
    args = [f"train.output_dir={out}"] + COMMON + ["train.checkpointer.period=2", "dataloader.train.num_workers=2"]
    proc = train_net(args, synthetic_root, background=tmp_path / "killed.log")
    wait_for_iteration(out, proc, 3)
    os.kill(_children(proc.pid)[0], signal.SIGKILL)  # the first data-loader worker
    assert proc.wait(timeout=300) == 1
    log = proc.log.read_text()
    last = (out / "last_checkpoint").read_text()
    assert f"the last checkpoint ({last}) is kept: run again with --resume to continue" in log, log[-3000:]
    assert "error: a data-loader worker died at iteration" in log and "Traceback" not in log, log[-3000:]


def test_a_worker_ignores_sigterm_from_others_and_ends_on_its_parents():
    echo = (
        "import sys; from vltseg_d2.data.workers import ignore_job_signals; ignore_job_signals()\n"
        "for line in sys.stdin: print('alive', flush=True)"
    )
    worker = subprocess.Popen([sys.executable, "-c", echo], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def alive():
        worker.stdin.write("ping\n")
        worker.stdin.flush()
        return worker.stdout.readline() == "alive\n"  # EOF ("") once a signal ended it

    try:
        assert alive()  # its signal set-up has run
        for sig in ("TERM", "INT"):  # sent by another process, as a terminal or SLURM does
            subprocess.run(["kill", f"-{sig}", str(worker.pid)], check=True)
            assert alive()
        worker.terminate()  # from its parent: what torch and multiprocessing's exit handler do
        assert worker.wait(timeout=60) == 0  # a stop it was asked for, not a crash
    finally:
        worker.kill()


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
        background=tmp_path / "two.log",
    )
    stop_with_signal(out, proc, signal.SIGTERM, after_iteration=2)


def test_ctrl_c_in_the_final_evaluation_stops_at_once_and_names_the_kept_weights(synthetic_root, tmp_path):
    out, log = tmp_path / "run", tmp_path / "run.log"
    slow_evaluation = ["model.test_mode=slide", "model.test_crop=[32,32]", "model.test_stride=[8,8]"]  # seconds
    args = [f"train.output_dir={out}", "train.max_iter=2", "train.eval_period=0"] + slow_evaluation
    proc = train_net(args + ["dataloader.test_datasets=[synthetic_source_val,synthetic_night_val]"] + FAST,
                     synthetic_root, background=log)  # fmt: skip
    wait_until(proc, lambda: "Start inference" in log.read_text(), "the final evaluation")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=300) == 130, log.read_text()[-3000:]
    final = out / "model_final.pth"
    assert f"evaluate with --eval-only train.init_checkpoint={final}" in log.read_text() and final.exists()
    assert not (out / "eval" / "model_final" / "cross_domain.json").exists()  # stopped before the table


def test_the_handler_only_flags_the_signal_and_a_signal_after_the_last_step_is_reported(caplog):
    hook = PreemptionHook(checkpointer_hook=None, device=torch.device("cpu"))
    hook.trainer = SimpleNamespace(iter=20, max_iter=20)  # detectron2's loop ended normally
    with caplog.at_level(logging.DEBUG):
        hook._handler(signal.SIGTERM, None)
        hook._handler(signal.SIGINT, None)  # a repeat is ignored
        assert hook.received == "SIGTERM" and not caplog.records  # no I/O inside a signal handler
        hook.after_train()
    assert "SIGTERM received after the last iteration" in caplog.text and "nothing to resume" in caplog.text


def test_after_the_last_iteration_ctrl_c_interrupts_and_sigterm_still_waits():
    hook = PreemptionHook(checkpointer_hook=None, device=torch.device("cpu"))
    hook.trainer = SimpleNamespace(iter=18, max_iter=20)
    before = {sig: signal.getsignal(sig) for sig in PreemptionHook.SIGNALS}
    hook.before_train()
    try:
        hook.after_step()  # iteration 18: both signals still stop after the iteration
        assert all(signal.getsignal(sig) == hook._handler for sig in PreemptionHook.SIGNALS)
        hook.trainer.iter = 19
        hook.after_step()  # the last iteration: final checkpoint and evaluation follow
        assert signal.getsignal(signal.SIGINT) is _interrupt_at_once  # Ctrl-C: KeyboardInterrupt at once
        assert signal.getsignal(signal.SIGTERM) == hook._handler
    finally:
        hook.trainer.iter = 20
        hook.after_train()
    assert {sig: signal.getsignal(sig) for sig in PreemptionHook.SIGNALS} == before


class _ShutsDownWorkers:
    """Stands for a data loader iterator whose finaliser runs when the signal arrives."""

    def __del__(self):
        signal.raise_signal(signal.SIGINT)  # KeyboardInterrupt inside __del__: printed and ignored


def test_ctrl_c_lost_in_a_finaliser_still_stops_the_evaluation_at_the_next_batch():
    """The race of the final evaluation: the KeyboardInterrupt of a Ctrl-C that lands in a
    finaliser is swallowed; the flag stops the evaluation before its next batch all the same."""
    hook = PreemptionHook(checkpointer_hook=None, device=torch.device("cpu"))
    hook.trainer = SimpleNamespace(iter=19, max_iter=20)
    before = signal.getsignal(signal.SIGINT)
    hook.before_train()
    try:
        hook.after_step()  # the last iteration: the final evaluation follows
        seen = []
        with pytest.raises(KeyboardInterrupt):
            for batch in TestLoader([[{"k": 1}], [{"k": 2}], [{"k": 3}]], before_batch=raise_if_interrupted):
                seen.append(batch)
                if batch == [{"k": 1}]:
                    _ShutsDownWorkers()  # created and finalised at once: the signal lands in __del__
        assert seen == [[{"k": 1}]]
    finally:
        hook.trainer.iter = 20
        hook.after_train()
    assert signal.getsignal(signal.SIGINT) is before
    again = TestLoader([[{"k": 1}], [{"k": 2}]], before_batch=raise_if_interrupted)
    assert list(again) == [[{"k": 1}], [{"k": 2}]]  # the flag ends with the run


def test_the_console_printer_writes_twice_at_one_iteration_of_the_timer_warm_up(caplog):
    printer = MetricPrinter(max_iter=20)
    with EventStorage(start_iter=1) as storage, caplog.at_level(logging.INFO):
        storage.put_scalar("total_loss", 1.0)
        printer.write()  # after_step, iteration 1: no "time" history yet
        printer.write()  # after_train, same iteration, when a signal stopped training
        storage.iter = 3
        printer.write()
    assert [("iter: 1" in r.message, "eta:" in r.message) for r in caplog.records] == [
        (True, False),
        (True, False),
        (False, True),
    ]
