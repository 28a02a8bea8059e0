"""One training iteration with mixed precision and gradient clipping.

detectron2's AMPTrainer is CUDA-only, always uses a grad scaler and cannot clip (clipping must
happen between unscaling and the step), so the step is written here on top of SimpleTrainer.
"""

import time
from typing import Optional

import torch
from detectron2.engine import SimpleTrainer
from detectron2.utils.events import get_event_storage

from ..utils.seeding import seed_torch


def resolve_precision(enabled: bool, precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype, or None for float32.

    ``"fp32"`` (every recipe's default: Rein, SoMA and the VLTSeg re-implementation train in float32
    with mmengine's plain ``OptimWrapper``) and ``enabled=False`` are float32. ``"bf16"`` runs bf16
    autocast on GPUs and on CPUs (native with AVX512-BF16 or AMX); ``"fp16"`` is for GPUs (with a
    grad scaler). ``"auto"``: bf16 where the GPU supports it, else fp16; float32 on the CPU, because
    whether bf16 is faster there depends on the CPU and the model (measure with tools/benchmark.py).
    """
    if precision not in ("fp32", "bf16", "fp16", "auto"):
        raise ValueError(f"train.amp.precision={precision!r}: choose fp32, bf16, fp16 or auto")
    if not enabled or precision == "fp32":
        return None
    if device.type == "cuda":
        if precision == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if precision == "fp16":
        raise ValueError("train.amp.precision=fp16 is for GPUs; on the CPU use bf16 (or fp32)")
    return torch.bfloat16 if precision == "bf16" else None


def autocast(device: torch.device, precision: Optional[torch.dtype]):
    """``torch.autocast`` for ``precision`` (a no-op context for float32)."""
    return torch.autocast(device.type, dtype=precision or torch.float32, enabled=precision is not None)


class MixedPrecisionTrainer(SimpleTrainer):
    def __init__(
        self,
        model,
        data_loader,
        optimizer,
        *,
        precision: Optional[torch.dtype] = None,
        clip_grad_norm: Optional[float] = None,
        device_type: str = "cpu",
        seed: int = -1,
    ):
        super().__init__(model, data_loader, optimizer)
        self.seed = seed
        self.precision, self.clip_grad_norm, self.device_type = precision, clip_grad_norm, device_type
        # only fp16 needs loss scaling; bf16 has fp32's range
        self.grad_scaler = torch.amp.GradScaler("cuda") if precision == torch.float16 else None

    def run_step(self):
        assert self.model.training, "the model was left in eval mode"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        if self.seed >= 0:  # the model's own randomness (point sampling) depends on the iteration only
            seed_torch(self.seed + self.iter, self.device_type)
        with autocast(torch.device(self.device_type), self.precision):
            try:
                loss_dict = self.model(data)
            except FloatingPointError as e:  # raised by the matcher on NaN predictions
                raise FloatingPointError(
                    f"at iteration {self.iter}: {e} ({self._lr_text()}); training diverged: "
                    "lower optimizer.lr or enable train.clip_grad and restart"
                ) from None
            losses = sum(loss_dict.values())
        self.optimizer.zero_grad(set_to_none=True)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(losses).backward()
            self.grad_scaler.unscale_(self.optimizer)
        else:
            losses.backward()
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        if self.clip_grad_norm:
            norm = torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm)
            get_event_storage().put_scalar("grad_norm", norm.item(), smoothing_hint=False)
        else:  # fp16's grad scaler skips inf/NaN steps by itself: only the loss is checked there
            norm = torch.nn.utils.get_total_norm([p.grad for p in params]) if self.grad_scaler is None else None
        self._check_finite(loss_dict, losses, norm if self.grad_scaler is None else None)
        self._write_metrics(loss_dict, data_time)
        # the window-smoothed total_loss of detectron2's writers cannot compare two runs iteration by iteration
        get_event_storage().put_scalar("total_loss_unsmoothed", losses.item(), smoothing_hint=False)
        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()

    def _check_finite(self, loss_dict, losses, grad_norm):
        """Stop before the optimizer step spreads a non-finite loss or gradient into the weights
        (so nothing broken is saved). One host sync per step, after the backward pass, where the
        metrics writer reads the losses anyway."""
        finite = torch.isfinite(losses) if grad_norm is None else torch.isfinite(losses) & torch.isfinite(grad_norm)
        if finite.item():
            return
        bad = [k for k, v in loss_dict.items() if not torch.isfinite(v).all().item()]
        if bad:
            raise FloatingPointError(
                f"non-finite loss at iteration {self.iter}: {', '.join(bad)} ({self._lr_text()}). The last "
                "checkpoint is intact; lower optimizer.lr, enable train.clip_grad or use bf16 instead of fp16, "
                "then --resume."
            )
        raise FloatingPointError(
            f"non-finite gradients at iteration {self.iter} ({self._lr_text()}); the weights were not updated "
            "and the last checkpoint is intact: lower optimizer.lr or enable train.clip_grad, then --resume"
        )

    def _lr_text(self) -> str:
        return "learning rate " + ", ".join(
            f"{lr:.3g}" for lr in sorted({g["lr"] for g in self.optimizer.param_groups})
        )

    def state_dict(self):
        ret = super().state_dict()
        if self.grad_scaler is not None:
            ret["grad_scaler"] = self.grad_scaler.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if self.grad_scaler is not None and "grad_scaler" in state_dict:
            self.grad_scaler.load_state_dict(state_dict["grad_scaler"])
