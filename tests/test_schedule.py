"""The lr multiplier equals mmengine's LinearLR + PolyLR of the reference configs (closed forms)."""

import pytest
from detectron2.config import LazyConfig, instantiate

from vltseg_d2.config import ConfigError
from vltseg_d2.engine.schedule import PolyWithLinearWarmup


def _at(multiplier, i):
    return multiplier(i / multiplier.max_iter)  # how detectron2's LRMultiplier asks


def test_rein_gta_poly_over_total_iters_39999():
    """PolyLR(begin=0, end=40000): total_iters = 39999, so iteration 39999 has lr 0."""
    m = instantiate(LazyConfig.load("configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py").lr_multiplier)
    assert _at(m, 0) == 1.0
    assert _at(m, 1) == pytest.approx((1 - 1 / 39999) ** 0.9, rel=1e-12)
    assert _at(m, 20000) == pytest.approx((1 - 20000 / 39999) ** 0.9, rel=1e-12)
    assert _at(m, 39998) == pytest.approx((1 / 39999) ** 0.9, rel=1e-12)
    assert _at(m, 39999) == 0.0 and _at(m, 40000) == 0.0


def test_rein_cityscapes_linear_warmup_then_poly():
    """LinearLR(1e-6, begin=0, end=10000) reaches 1 at 9999; PolyLR(begin=10000, end=40000) runs over 29999."""
    m = instantiate(LazyConfig.load("configs/rein/rein_dinov2_l_citys2acdc_1024_bs8_40k.py").lr_multiplier)
    assert _at(m, 0) == 1e-6
    assert _at(m, 1) == pytest.approx(1e-6 + (1 - 1e-6) / 9999, rel=1e-12)
    assert _at(m, 5000) == pytest.approx(1e-6 + (1 - 1e-6) * 5000 / 9999, rel=1e-12)
    assert _at(m, 9999) == pytest.approx(1.0, rel=1e-15) and _at(m, 10000) == 1.0
    assert _at(m, 10001) == pytest.approx((1 - 1 / 29999) ** 0.9, rel=1e-12)
    assert _at(m, 25000) == pytest.approx((1 - 15000 / 29999) ** 0.9, rel=1e-12)
    assert _at(m, 39999) == 0.0


def test_vltseg_constant_then_poly_from_500():
    """The re-implementation's PolyLR(begin=500, end=5000): base lr for 0..499, then poly over 4499."""
    m = instantiate(LazyConfig.load("configs/vltseg/vltseg_eva02_l_gta2cbm_512_bs16_5k.py").lr_multiplier)
    assert _at(m, 0) == _at(m, 1) == _at(m, 499) == _at(m, 500) == 1.0
    assert _at(m, 501) == pytest.approx((1 - 1 / 4499) ** 0.9, rel=1e-12)
    assert _at(m, 2750) == pytest.approx((1 - 2250 / 4499) ** 0.9, rel=1e-12)
    assert _at(m, 4999) == 0.0


def test_the_multiplier_follows_a_max_iter_override():
    cfg = LazyConfig.load("configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py")
    cfg.train.max_iter = 1000
    m = instantiate(cfg.lr_multiplier)
    assert m.max_iter == 1000 and _at(m, 999) == 0.0 and _at(m, 500) == pytest.approx((1 - 500 / 999) ** 0.9)


def test_a_warmup_that_leaves_no_decay_is_refused():
    with pytest.raises(ValueError, match="warmup_length=1.0 gives 100 warm-up iterations of 100"):
        PolyWithLinearWarmup(100, warmup_length=1.0)


def test_trainer_refuses_a_multiplier_of_another_length():
    from vltseg_d2.engine import Trainer

    cfg = LazyConfig.load("configs/demo/tiny_synthetic_cpu.py")
    cfg.lr_multiplier.max_iter = 7
    with pytest.raises(ConfigError, match="lr_multiplier.max_iter=7 but train.max_iter"):
        Trainer.build_lr_scheduler(cfg, None)
