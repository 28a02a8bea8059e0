"""Exponential moving average of the trained weights, for evaluation.

Only parameters with ``requires_grad`` are averaged: with a frozen ViT-L that is 24M values
instead of 330M (timm's ``ModelEmaV3`` copies the whole model, frozen backbone included, which is
why this small class exists). Update after iteration ``t`` (0-based):

    t <  start_iter:  ema = w                        (the average starts from the weights then)
    t >= start_iter:  ema = decay * ema + (1 - decay) * w

The trainer saves it in checkpoints as ``ema``, resumes it, and evaluates with it; ``--eval-only``,
the demo and the predictor use it when a checkpoint holds one.
"""

import contextlib
from typing import Dict

import torch
from detectron2.engine import HookBase
from torch import nn

from ..utils.tensor_fit import misfits


class TrainableEMA:
    """Args:
    model: the (unwrapped) model whose trainable parameters are averaged.
    decay: weight of the running average per update.
    start_iter: iterations before which the average just follows the weights.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, start_iter: int = 0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"train.ema.decay must be in (0, 1), not {decay}")
        self.decay, self.start_iter = decay, start_iter
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.shadow: Dict[str, torch.Tensor] = {n: p.detach().float().clone() for n, p in self.params.items()}

    @torch.no_grad()
    def update(self, iteration: int):
        for name, param in self.params.items():
            if iteration < self.start_iter:
                self.shadow[name].copy_(param.detach())
            else:
                self.shadow[name].lerp_(param.detach().float(), 1.0 - self.decay)

    @contextlib.contextmanager
    def swapped(self):
        """The model holds the averaged weights inside the ``with`` block, its own after."""
        saved = {n: p.detach().clone() for n, p in self.params.items()}
        apply_ema(self.params, self.shadow)
        try:
            yield
        finally:
            apply_ema(self.params, saved)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "start_iter": self.start_iter, "shadow": self.shadow}

    def load_state_dict(self, state: dict):
        missing = sorted(self.shadow.keys() - state["shadow"].keys())
        if missing:
            raise KeyError(f"the checkpoint's EMA lacks {len(missing)} trained parameters ({', '.join(missing[:3])})")
        wrong = misfits(self.shadow, state["shadow"], "EMA")
        if wrong:
            raise ValueError(
                f"{len(wrong)} EMA weights of the checkpoint do not fit the model ({'; '.join(wrong[:3])})"
            )
        for name in self.shadow:
            self.shadow[name].copy_(state["shadow"][name])


@torch.no_grad()
def apply_ema(params: Dict[str, torch.Tensor], values: Dict[str, torch.Tensor]):
    for name, param in params.items():
        param.copy_(values[name].to(param.dtype))


class EMAHook(HookBase):
    def __init__(self, ema: TrainableEMA):
        self.ema = ema

    def after_step(self):
        self.ema.update(self.trainer.iter)
