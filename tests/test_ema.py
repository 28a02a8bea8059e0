"""EMA of the trained weights: the update rule, evaluation with it, and resume keeping it."""

import signal

import torch
from detectron2.config import LazyConfig, instantiate
from test_reliability_training import stop_with_signal
from test_train_net import FAST, train_net
from torch import nn

from vltseg_d2.checkpoint import load_weights
from vltseg_d2.engine.ema import TrainableEMA


def test_the_update_follows_the_weights_then_averages_them():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    model[0].requires_grad_(False)  # frozen: not averaged
    ema = TrainableEMA(model, decay=0.9, start_iter=2)
    assert set(ema.shadow) == {"1.weight", "1.bias"}
    weights = [torch.full((1, 2), float(v)) for v in (1.0, 2.0, 4.0, 8.0)]
    for it, w in enumerate(weights):
        with torch.no_grad():
            model[1].weight.copy_(w)
        ema.update(it)
    # iterations 0, 1 copy (-> 2.0); 2: 0.9 * 2 + 0.1 * 4 = 2.2; 3: 0.9 * 2.2 + 0.1 * 8 = 2.78
    torch.testing.assert_close(ema.shadow["1.weight"], torch.full((1, 2), 2.78))
    with ema.swapped():
        torch.testing.assert_close(model[1].weight, torch.full((1, 2), 2.78))
    torch.testing.assert_close(model[1].weight, torch.full((1, 2), 8.0))


def test_training_saves_the_ema_resume_keeps_it_and_evaluation_uses_it(synthetic_root, tmp_path):
    common = ["train.ema.enabled=True", "train.ema.decay=0.5", "train.ema.start_iter=1", "train.checkpointer.period=2",
              "train.eval_period=0", "dataloader.test_datasets=[synthetic_source_val]"] + FAST  # fmt: skip
    common += ["train.max_iter=20"]  # margin: the signal must land before the run ends, also on a busy machine
    train_net([f"train.output_dir={tmp_path / 'straight'}"] + common, synthetic_root)
    straight = torch.load(tmp_path / "straight" / "model_final.pth", weights_only=True)
    out = tmp_path / "resumed"
    proc = train_net([f"train.output_dir={out}"] + common, synthetic_root, background=tmp_path / "resumed.log")
    stop_with_signal(out, proc, signal.SIGTERM)  # stop part-way (same schedule), then resume
    train_net(["--resume", f"train.output_dir={out}"] + common, synthetic_root)
    resumed = torch.load(out / "model_final.pth", weights_only=True)

    model = instantiate(LazyConfig.load("configs/demo/tiny_synthetic_cpu.py").model)
    shadow = straight["ema"]["shadow"]
    assert set(shadow) == {n for n, p in model.named_parameters()}  # the demo recipe trains every weight
    for name, value in shadow.items():
        torch.testing.assert_close(resumed["ema"]["shadow"][name], value, rtol=1e-5, atol=1e-7)
    assert any(not torch.equal(value, straight["model"][name]) for name, value in shadow.items())

    load_weights(model, str(tmp_path / "straight" / "model_final.pth"))  # evaluation uses the average
    params = dict(model.named_parameters())
    for name, value in shadow.items():
        torch.testing.assert_close(params[name].detach(), value)
