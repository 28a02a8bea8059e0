"""Data-loader worker processes leave the job's SIGTERM and SIGINT to the main process.

A terminal's Ctrl-C and SLURM's SIGTERM reach every process of the job. A worker that dies of
it makes the main process fail with "DataLoader worker exited unexpectedly" before it can write
its checkpoint (a run lost up to a checkpoint period). So workers ignore SIGINT, and SIGTERM from
anyone but their parent. The parent's own SIGTERM must still end a worker: torch terminates
workers that do not stop in time, and multiprocessing's exit handler terminates every daemonic
child and then joins it, which would wait forever on a worker that ignored it. A plain handler
cannot tell who sent a signal, so SIGTERM is blocked in the worker and a thread takes it with
``sigwaitinfo``, which reports the sender's pid.
"""

import contextlib
import os
import signal
import threading


def _take_sigterm():
    while True:
        info = signal.sigwaitinfo({signal.SIGTERM})
        if info.si_pid == os.getppid():  # torch's or multiprocessing's terminate(): go
            # status 0: the parent asked for it (torch's SIGCHLD handler reports any other status
            # of a worker it still tracks, e.g. at multiprocessing's exit, as a crash)
            os._exit(0)


def ignore_job_signals(worker_id: int = 0):
    """``worker_init_fn`` of every loader: SIGINT is ignored, SIGTERM ends the worker only when its
    parent sends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # threads started later inherit the mask
    threading.Thread(target=_take_sigterm, name="sigterm-from-parent", daemon=True).start()


class DataWorkerDied(BaseException):
    """A data-loader worker ended without being asked (killed, out of memory). A BaseException,
    so detectron2's trainer does not log a traceback before the one-line report."""


def is_dead_worker_error(error: BaseException) -> bool:
    """torch's errors when a worker process ended unexpectedly: raised by the next fetch ("exited
    unexpectedly"), or at any point of the main thread by its SIGCHLD handler ("is killed by signal")."""
    return isinstance(error, RuntimeError) and str(error).startswith("DataLoader worker (pid")


@contextlib.contextmanager
def dead_worker_stops(where: str):
    """torch raises a dead worker's error wherever the main thread is (its SIGCHLD handler): in the
    model, a hook or the loader. Inside this block it becomes :class:`DataWorkerDied`."""
    try:
        yield
    except RuntimeError as e:
        if not is_dead_worker_error(e):
            raise
        raise DataWorkerDied(f"{where}: {str(e).splitlines()[0].strip()}") from None
