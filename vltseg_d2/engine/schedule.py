"""The reference recipes' learning-rate schedule as a detectron2 lr multiplier, and SoMA's cosine
weight-decay schedule as a hook.

mmengine's ``LinearLR(start_factor, begin=0, end=W)`` followed by ``PolyLR(power, eta_min=0,
begin=W, end=N)`` (Rein and SoMA configs; VLTSeg's re-implementation holds the lr until W, i.e.
``start_factor=1``), which each run over ``end - begin - 1`` steps (their ``total_iters``). At
iteration ``i`` (0-based; the lr the optimizer uses for that step):

    i <  W:  start + (1 - start) * i / (W - 1)
    i >= W:  (1 - min(i - W, N - W - 1) / (N - W - 1)) ** power

so the warm-up reaches 1.0 at iteration W - 1 and the poly curve reaches 0 at the last iteration
N - 1. detectron2's ``WarmupParamScheduler`` + ``PolynomialDecayParamScheduler`` divide by N
instead (and blend the warm-up into the decay), up to 1e-4 x the base lr away from these values.
"""

import math

import torch
from detectron2.engine import HookBase
from fvcore.common.param_scheduler import ParamScheduler

from ..config import ConfigError


class PolyWithLinearWarmup(ParamScheduler):
    """Args:
    max_iter: N, the training length (the configs interpolate ``${train.max_iter}``).
    power: the poly exponent (0.9 in every recipe).
    warmup_length: W as a fraction of ``max_iter`` (0.25 = 10k of 40k), rounded to an iteration.
    warmup_factor: the warm-up's start factor (mmengine's ``start_factor``, 1e-6 in Rein).
    """

    def __init__(self, max_iter: int, power: float = 0.9, warmup_length: float = 0.0, warmup_factor: float = 1e-6):
        self.max_iter, self.power = int(max_iter), float(power)
        self.warmup_iters = int(round(warmup_length * self.max_iter))
        self.warmup_factor = float(warmup_factor)
        if not 0 <= self.warmup_iters <= self.max_iter - 2:
            raise ConfigError(
                f"train.max_iter={self.max_iter} with lr_multiplier.warmup_length={warmup_length} gives "
                f"{self.warmup_iters} warm-up iterations of {self.max_iter}: leave at least 2 for the poly decay"
            )

    def at_iteration(self, i: int) -> float:
        if i < self.warmup_iters:
            if self.warmup_iters == 1:
                return self.warmup_factor
            return self.warmup_factor + (1.0 - self.warmup_factor) * i / (self.warmup_iters - 1)
        total = self.max_iter - self.warmup_iters - 1
        return (1.0 - min(i - self.warmup_iters, total) / total) ** self.power

    def __call__(self, where: float) -> float:
        # detectron2's LRMultiplier asks at where = iteration / max_iter
        return self.at_iteration(int(round(where * self.max_iter)))


class PolyToAbsoluteMinLR:
    """mmcv 1.x's ``lr_config=dict(policy="poly", power, min_lr, by_epoch=False, warmup="linear",
    warmup_iters=W, warmup_ratio=r)`` (tqdm's configs), which detectron2's single lr multiplier
    cannot express: ``min_lr`` is absolute, the same for every parameter group. For a group of base
    lr ``b`` at iteration ``i`` (0-based) of ``N``:

        regular(i) = (b - min_lr) * (1 - i / N) ** power + min_lr
        lr(i)      = regular(i) * (1 - (1 - i / W) * (1 - r))   for i < W, else regular(i)

    (``PolyLrUpdaterHook.get_lr`` divides by N, not N - 1; the linear warm-up scales the regular lr).
    A group whose base lr equals ``min_lr`` (tqdm's backbone: 1e-5 x 0.1 = 1e-6) keeps it after the
    warm-up. The config names it as ``lr_multiplier``; :meth:`build` makes the optimizer's scheduler.
    """

    def __init__(self, max_iter: int, power: float = 0.9, min_lr: float = 1e-6, warmup_iters: int = 0,
                 warmup_ratio: float = 0.1):  # fmt: skip
        self.max_iter, self.power, self.min_lr = int(max_iter), float(power), float(min_lr)
        self.warmup_iters, self.warmup_ratio = int(warmup_iters), float(warmup_ratio)
        if not 0 <= self.warmup_iters < self.max_iter:
            raise ConfigError(f"lr_multiplier.warmup_iters={warmup_iters} must be in [0, train.max_iter={max_iter})")

    def lr(self, base_lr: float, i: int) -> float:
        regular = (base_lr - self.min_lr) * (1 - i / self.max_iter) ** self.power + self.min_lr
        if i < self.warmup_iters:
            return regular * (1 - (1 - i / self.warmup_iters) * (1 - self.warmup_ratio))
        return regular

    def build(self, optimizer):
        schedule = self

        class _Scheduler(torch.optim.lr_scheduler.LRScheduler):
            def get_lr(self):
                return [schedule.lr(base, min(self.last_epoch, schedule.max_iter - 1)) for base in self.base_lrs]

        return _Scheduler(optimizer)


class CosineWeightDecay(HookBase):
    """mmengine's ``CosineAnnealingParamScheduler(param_name="weight_decay", eta_min, begin=0,
    end=max_iter)`` (SoMA's configs), per parameter group, before each step ``t``:

        wd_t = eta_min + (wd_0 - eta_min) * (1 + cos(pi * t / max_iter)) / 2

    with ``wd_0`` the group's configured decay (``T_max = end - begin``: cosine does not subtract
    one). Groups configured without decay follow the same rule, so they end near ``eta_min``, as
    mmengine's chained updates make them. ``wd_0`` is kept in the group as ``initial_weight_decay``,
    so a resumed run (which restores the optimizer's groups) continues the same curve.
    """

    def __init__(self, max_iter: int, eta_min: float = 1e-5):
        self.max_iter, self.eta_min = int(max_iter), float(eta_min)

    def at_iteration(self, initial: float, t: int) -> float:
        return self.eta_min + (initial - self.eta_min) * (1 + math.cos(math.pi * t / self.max_iter)) / 2

    def before_step(self):
        for group in self.trainer.optimizer.param_groups:
            initial = group.setdefault("initial_weight_decay", group["weight_decay"])
            group["weight_decay"] = self.at_iteration(initial, self.trainer.iter)
