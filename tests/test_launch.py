"""The launcher releases each worker's process group (gloo aborts at exit otherwise)."""

import pytest
import torch.distributed as dist

from vltseg_d2.engine import REQUEUE_EXIT_CODE
from vltseg_d2.engine import launcher as launch_module


def _exits_for_requeue():
    raise SystemExit(REQUEUE_EXIT_CODE)


def _fails():
    raise ValueError("bad input on one rank")


@pytest.mark.parametrize(
    "func, outcome, barrier",
    [
        (lambda: 42, 42, True),
        (_exits_for_requeue, SystemExit, True),  # every rank stops at the same iteration
        (_fails, ValueError, False),  # the other ranks may be elsewhere: a barrier could hang
    ],
)
def test_the_group_is_destroyed_after_the_worker_with_a_barrier_only_when_ranks_end_together(
    tmp_path, monkeypatch, func, outcome, barrier
):
    barriers = []
    real_barrier = dist.barrier
    monkeypatch.setattr(launch_module.dist, "barrier", lambda: barriers.append(1) or real_barrier())
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        if isinstance(outcome, type):
            with pytest.raises(outcome) as info:
                launch_module._run_then_release(func)
            if outcome is SystemExit:
                assert info.value.code == REQUEUE_EXIT_CODE
        else:
            assert launch_module._run_then_release(func) == outcome
        assert not dist.is_initialized()
        assert barriers == ([1] if barrier else [])
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
