"""bf16 autocast on the CPU: opt-in, float32 where accuracy needs it."""

import pytest
import torch
from test_mask2former import _frames
from tiny_models import tiny_model

from vltseg_d2.engine.train_step import autocast, resolve_precision

CPU = torch.device("cpu")


def test_the_cpu_runs_bf16_only_when_asked():
    assert resolve_precision(True, "auto", CPU) is None  # float32 unless measured faster
    assert (
        resolve_precision(True, "fp32", CPU) is None and resolve_precision(True, "fp32", torch.device("cuda")) is None
    )
    assert resolve_precision(True, "bf16", CPU) is torch.bfloat16
    assert resolve_precision(False, "bf16", CPU) is None
    with pytest.raises(ValueError, match="use bf16"):
        resolve_precision(True, "fp16", CPU)
    with pytest.raises(ValueError, match="choose fp32, bf16, fp16 or auto"):
        resolve_precision(True, "float16", CPU)


def test_a_bf16_step_keeps_losses_and_scores_in_float32():
    torch.manual_seed(0)
    model = tiny_model().train()
    frames = _frames()
    seen = []
    model.backbone.vit.blocks[0].mlp.fc1.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    with autocast(CPU, torch.bfloat16):
        losses = model([dict(f) for f in frames])
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    assert seen == [torch.bfloat16]  # the heavy layers did run in bf16
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        full = model([dict(f) for f in frames])[0]["sem_seg"]
        with autocast(CPU, torch.bfloat16):
            half = model([dict(f) for f in frames])[0]["sem_seg"]
    assert half.dtype == torch.float32
    assert (half.argmax(0) == full.argmax(0)).float().mean() > 0.95
