"""Poly learning-rate schedule (power 0.9) with optional linear warm-up, as an lr multiplier,
per iteration equal to mmengine's ``LinearLR`` + ``PolyLR`` of the reference configs."""

from detectron2.config import LazyCall as L

from vltseg_d2.engine.schedule import PolyWithLinearWarmup

# warmup_length is a fraction of train.max_iter (0.25 = 10k of 40k)
poly = L(PolyWithLinearWarmup)(max_iter="${train.max_iter}", power=0.9, warmup_length=0.0, warmup_factor=1e-6)
