"""Training hooks for interruption: checkpoint rotation that survives resumes, and SIGTERM/SIGINT.

SLURM sends SIGTERM before preemption and at the time limit (``--signal``); a user presses
Ctrl-C. Either way the iteration in progress finishes, a checkpoint of it is written atomically,
and training stops with :class:`TrainingInterrupted`; ``tools/train_net.py`` then exits with
:data:`REQUEUE_EXIT_CODE`, which ``tools/slurm_train.sh`` answers by requeueing the job, and the
requeued job continues with ``--resume`` at the next iteration: no iteration is lost or repeated.
"""

import logging
import os
import re
import signal
import threading

import torch
from detectron2.engine import HookBase, hooks
from detectron2.utils import comm

logger = logging.getLogger("vltseg_d2")

REQUEUE_EXIT_CODE = 75  # EX_TEMPFAIL: "temporary failure, try again"
_PERIODIC = re.compile(r"model_(\d{7})\.pth")


class TrainingInterrupted(BaseException):
    """Training stopped on a signal after saving ``checkpoint``. A BaseException, like
    KeyboardInterrupt, so detectron2's trainer does not log it as a crash."""

    def __init__(self, signal_name: str, iteration: int, checkpoint: str):
        super().__init__(
            f"{signal_name} received: saved iteration {iteration} to {checkpoint}; run again with --resume to continue"
        )
        self.signal_name, self.iteration, self.checkpoint = signal_name, iteration, checkpoint


_INTERRUPTED = threading.Event()  # Ctrl-C after the last iteration: the final evaluation stops


def _interrupt_at_once(signum, frame):
    """SIGINT after the last iteration: KeyboardInterrupt now, and a flag that the evaluation
    checks before every batch and before writing its table. The flag is what makes it certain: a
    KeyboardInterrupt raised while the main thread runs a finaliser (a data loader shutting its
    workers down between two datasets) is printed as "Exception ignored" and lost."""
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def raise_if_interrupted():
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


class RotatingCheckpointer(hooks.PeriodicCheckpointer):
    """detectron2's PeriodicCheckpointer, with ``max_to_keep`` holding across resumes: the
    periodic checkpoints already in the folder count towards it (detectron2 forgets them)."""

    def before_train(self):
        super().before_train()
        if self.max_to_keep is not None and self.checkpointer.save_dir:
            found = sorted(f for f in os.listdir(self.checkpointer.save_dir) if _PERIODIC.fullmatch(f))
            self.recent_checkpoints = [os.path.join(self.checkpointer.save_dir, f) for f in found]

    def save_now(self, iteration: int) -> str:
        """Save ``model_<iteration>`` outside the period (it joins the rotation)."""
        name = f"{self.file_prefix}_{iteration:07d}"
        self.checkpointer.save(name, iteration=iteration)
        path = self.checkpointer.get_checkpoint_file()
        if self.max_to_keep is not None and path not in self.recent_checkpoints:
            self.recent_checkpoints.append(path)
            while len(self.recent_checkpoints) > self.max_to_keep:
                old = self.recent_checkpoints.pop(0)
                if os.path.exists(old) and old != path:
                    os.remove(old)
        return path


class PreemptionHook(HookBase):
    """On SIGTERM or SIGINT: finish the current iteration, checkpoint it, stop.

    Every rank must stop at the same iteration, so with several processes the flag is agreed on
    with one tiny all-reduce per iteration (a signal may reach the ranks a step apart).
    Repeated signals are ignored while the checkpoint is written.

    Once the last iteration has run, Ctrl-C interrupts the final checkpoint and evaluation at once
    (:func:`_interrupt_at_once`); SIGTERM still lets them finish (SLURM's ``--signal`` comes
    minutes before the time limit) and is reported at the end.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, checkpointer_hook: RotatingCheckpointer, device: torch.device):
        self.checkpointer_hook, self.device = checkpointer_hook, device
        self.received = None
        self._previous = {}

    def _handler(self, signum, frame):
        # Only set the flag: the handler runs between any two bytecodes of the main thread, and
        # logging from here could re-enter a stream write that was in progress there.
        if self.received is None:
            self.received = signal.Signals(signum).name

    def before_train(self):
        _INTERRUPTED.clear()
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)

    def _restore(self, *signals):
        for sig in signals:
            if sig in self._previous:
                signal.signal(sig, self._previous.pop(sig))

    def after_train(self):
        if self.received and self.trainer.iter >= self.trainer.max_iter:  # after the last step's check
            logger.warning(
                f"{self.received} received after the last iteration: training is complete "
                "(final checkpoint and evaluation included), nothing to resume"
            )
        if self.received is None:
            self._restore(*self.SIGNALS)
        # else the flag-only handler stays to the end: the same signal often comes twice (to the
        # whole process group, and forwarded by the launcher), and the second one must not
        # interrupt the exit that the first one started
        _INTERRUPTED.clear()

    def _any_rank_received(self) -> bool:
        if comm.get_world_size() == 1:
            return self.received is not None
        flag = torch.tensor([self.received is not None], dtype=torch.int32, device=self.device)
        torch.distributed.all_reduce(flag)
        return bool(flag.item())

    def after_step(self):
        if not self._any_rank_received():
            if self.trainer.iter + 1 >= self.trainer.max_iter and signal.SIGINT in self._previous:
                signal.signal(signal.SIGINT, _interrupt_at_once)  # the loop is over: Ctrl-C stops what follows
            return
        iteration = self.trainer.iter
        logger.warning(f"{self.received or 'a signal on another rank'}: stopping after iteration {iteration}")
        path = self.checkpointer_hook.save_now(iteration) if comm.is_main_process() else "(saved by rank 0)"
        comm.synchronize()
        logger.warning(f"checkpoint of iteration {iteration} written to {path}")
        raise TrainingInterrupted(self.received or "signal on another rank", iteration, path)
