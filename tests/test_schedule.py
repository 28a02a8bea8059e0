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


def test_somas_cosine_weight_decay_per_group_and_across_a_resume():
    """CosineAnnealingParamScheduler(weight_decay, eta_min=1e-5, begin=0, end=40000): T_max = 40000."""
    import math
    from types import SimpleNamespace

    import torch

    from vltseg_d2.engine.schedule import CosineWeightDecay

    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.AdamW(
        [{"params": params[:1], "weight_decay": 0.05}, {"params": params[1:], "weight_decay": 0.0}]
    )
    hook = CosineWeightDecay(40000, 1e-5)
    hook.trainer = SimpleNamespace(optimizer=optimizer, iter=0)
    expected = {
        0: (0.05, 0.0),
        20000: (1e-5 + (0.05 - 1e-5) / 2, 1e-5 / 2),
        39999: (
            1e-5 + (0.05 - 1e-5) * (1 + math.cos(math.pi * 39999 / 40000)) / 2,
            1e-5 * (1 - math.cos(math.pi * 39999 / 40000)) / 2,
        ),
    }
    for t, (decayed, undecayed) in expected.items():
        hook.trainer.iter = t
        hook.before_step()
        got = [g["weight_decay"] for g in optimizer.param_groups]
        assert got == pytest.approx([decayed, undecayed], rel=1e-12, abs=1e-18)
    resumed = torch.optim.AdamW([{"params": params[:1]}, {"params": params[1:]}])
    resumed.load_state_dict(optimizer.state_dict())  # groups carry initial_weight_decay
    hook.trainer = SimpleNamespace(optimizer=resumed, iter=20000)
    hook.before_step()
    assert [g["weight_decay"] for g in resumed.param_groups] == pytest.approx(list(expected[20000]), rel=1e-12)


def test_soma_recipe_anneals_decay_and_averages_from_12000():
    cfg = LazyConfig.load("configs/soma/soma_dinov2_l_gta2cbm_512_bs4_40k.py")
    assert cfg.train.cosine_weight_decay.enabled and cfg.train.cosine_weight_decay.eta_min == 1e-5
    assert cfg.train.ema.enabled and cfg.train.ema.decay == pytest.approx(0.9998) and cfg.train.ema.start_iter == 12000
    assert cfg.model.backbone.soma.init == "released"


def test_the_trainer_runs_the_weight_decay_schedule_when_asked(use_synthetic, tmp_path):
    from vltseg_d2.engine import Trainer
    from vltseg_d2.engine.schedule import CosineWeightDecay

    cfg = LazyConfig.load("configs/demo/tiny_synthetic_cpu.py")
    cfg.train.update(output_dir=str(tmp_path), device="cpu")
    cfg.dataloader.train.num_workers = 0
    assert not any(isinstance(h, CosineWeightDecay) for h in Trainer(cfg)._hooks)
    cfg.train.cosine_weight_decay.enabled = True
    hooks = [h for h in Trainer(cfg)._hooks if isinstance(h, CosineWeightDecay)]
    assert len(hooks) == 1 and hooks[0].max_iter == cfg.train.max_iter and hooks[0].eta_min == 1e-5


def test_mmcv_poly_with_an_absolute_min_lr_per_group_as_tqdm_configures_it():
    """tqdm: lr 1e-5 (head) and 1e-6 (backbone, x0.1), poly 0.9 to min_lr 1e-6 over 20k iterations,
    linear warm-up over 1,500 from ratio 1e-6. By hand, (b - 1e-6) * (1 - i / 20000) ** 0.9 + 1e-6,
    times 1 - (1 - i / 1500) * (1 - 1e-6) before 1,500:
    i = 750: 9e-6 * 0.9625 ** 0.9 + 1e-6 = 9.695673e-6, x 0.5000005 = 4.847841e-6 (backbone 5.000005e-7);
    i = 1500: 9e-6 * 0.925 ** 0.9 + 1e-6 = 9.390157e-6 (backbone 1e-6, from then on constant)."""
    import torch

    from vltseg_d2.engine.schedule import PolyToAbsoluteMinLR

    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.AdamW([{"params": params[:1], "lr": 1e-5}, {"params": params[1:], "lr": 1e-6}])
    scheduler = PolyToAbsoluteMinLR(20000, 0.9, min_lr=1e-6, warmup_iters=1500, warmup_ratio=1e-6).build(optimizer)
    expected = {
        0: (1.0000000000287558e-11, 1.0000000000287556e-12),
        750: (4.847841087757463e-06, 5.000005000000001e-07),
        1499: (9.384304437256809e-06, 9.99333334e-07),
        1500: (9.390156638855496e-06, 1e-06),
        19999: (1.0012114779481884e-06, 1e-06),
    }
    for i in range(20000):
        if i in expected:
            assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(expected[i], rel=1e-12), i
        optimizer.step()
        scheduler.step()
