"""Poly learning-rate schedule (power 0.9) with optional linear warm-up, as an lr multiplier."""

from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import PolynomialDecayParamScheduler

# warmup_length is a fraction of train.max_iter (0.25 = 10k of 40k)
poly = L(WarmupParamScheduler)(
    scheduler=L(PolynomialDecayParamScheduler)(base_value=1.0, power=0.9),
    warmup_length=0.0,
    warmup_factor=1e-6,
    warmup_method="linear",
    rescale_interval=True,
)
