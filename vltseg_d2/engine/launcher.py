"""detectron2's ``launch``, with each worker's process group torn down when its function ends.

detectron2 leaves the process group to interpreter exit. With gloo (the CPU backend) its worker
threads can then outlive Python's finalisation and abort the process ("terminate called without
an active exception", SIGABRT; 2 of 20 two-process runs here): a finished run reports a crash,
and a requeue exit status is lost. Destroying the group alone still aborted 1 run in 30, when one
rank closed its connections while the other still used them; with a barrier first, 0 in 60.
"""

import torch.distributed as dist
from detectron2.engine import launch as detectron2_launch

from .preemption import REQUEUE_EXIT_CODE


def _run_then_release(main_func, *args):
    together = False  # did every rank reach the end at the same point (so a barrier cannot hang)?
    try:
        result = main_func(*args)
        together = True
        return result
    except SystemExit as e:  # success, or the requeue exit every rank takes at the same iteration
        together = e.code in (None, 0, REQUEUE_EXIT_CODE)
        raise
    finally:
        if dist.is_available() and dist.is_initialized():
            if together:
                dist.barrier()
            dist.destroy_process_group()


def launch(main_func, num_gpus_per_machine, args=(), **kwargs):
    """``detectron2.engine.launch`` with the same arguments."""
    detectron2_launch(_run_then_release, num_gpus_per_machine, args=(main_func, *args), **kwargs)
