"""The CUDA path: the same numbers as the CPU, every precision, the trainer, the predictor.

Marked ``cuda``: skipped on a machine without a GPU, run by ``make gpu-check`` where one is.
"""

import copy
import json

import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from test_train_net import FAST, train_net
from tiny_models import tiny_model_cfg

from vltseg_d2.engine import Predictor
from vltseg_d2.modeling.backbone.low_precision import cache_low_precision_casts
from vltseg_d2.modeling.pixel_decoder.ms_deform_attn import ms_deform_attn

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


def _batch(n=2, size=64, seed=0):
    from vltseg_d2.data.mapper import per_class_instances

    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        sem = torch.randint(0, 4, (size // 8, size // 8), generator=g).repeat_interleave(8, 0).repeat_interleave(8, 1)
        image = torch.randint(0, 255, (3, size, size), dtype=torch.uint8, generator=g)
        out.append({"image": image, "sem_seg": sem, "instances": per_class_instances(sem)})
    return out


def _tiny_pair():
    torch.manual_seed(0)
    cpu = instantiate(tiny_model_cfg())
    return cpu, copy.deepcopy(cpu).to(CUDA)


def test_inference_on_cuda_equals_the_cpu_in_float32():
    cpu, gpu = _tiny_pair()
    image = _batch(1)[0]["image"]
    with torch.no_grad():
        a = cpu.eval().inference([{"image": image}], test_mode="slide")[0]["sem_seg"]
        b = gpu.eval().inference([{"image": image}], test_mode="slide")[0]["sem_seg"].cpu()
    torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_a_training_step_on_cuda_gives_finite_losses_and_gradients_in_every_precision(dtype):
    _, gpu = _tiny_pair()
    with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        losses = gpu.train()(_batch())
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total) and total.item() > 0
    grads = [p.grad for p in gpu.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0


def test_deformable_attention_on_cuda_equals_the_cpu():
    g = torch.Generator().manual_seed(0)
    shapes = [(8, 8), (4, 4)]
    value = torch.randn(2, 80, 4, 16, generator=g)
    locations = torch.rand(2, 10, 4, 2, 3, 2, generator=g)
    weights = torch.rand(2, 10, 4, 2 * 3, generator=g).softmax(-1).view(2, 10, 4, 2, 3)
    for sampling in ("grid_sample", "gather"):
        a = ms_deform_attn(value, shapes, locations, weights, sampling)
        b = ms_deform_attn(value.to(CUDA), shapes, locations.to(CUDA), weights.to(CUDA), sampling)
        torch.testing.assert_close(b.cpu(), a, rtol=1e-4, atol=1e-5)


def test_cached_casts_on_cuda_equal_autocasts_own():
    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Linear(64, 8)).to(CUDA).requires_grad_(False)
    cached = copy.deepcopy(plain)
    cache_low_precision_casts(cached)
    x = torch.randn(4, 32, device=CUDA)
    with torch.autocast("cuda", torch.bfloat16):
        assert torch.equal(cached(x), plain(x))


def test_compiled_model_on_cuda_gives_the_eager_scores():
    from vltseg_d2.engine.compile import compile_heavy_parts

    _, gpu = _tiny_pair()
    image = _batch(1)[0]["image"]
    with torch.no_grad():
        eager = gpu.eval().inference([{"image": image}])[0]["sem_seg"]
        compile_heavy_parts(gpu, "inductor", False)
        compiled = gpu.inference([{"image": image}])[0]["sem_seg"]
    torch.testing.assert_close(compiled, eager, rtol=1e-3, atol=1e-3)


def test_predictor_on_cuda(tmp_path):
    cfg = LazyConfig.load("configs/demo/tiny_synthetic_cpu.py")
    cfg.train.device = "cuda"
    torch.save({"model": instantiate(cfg.model).state_dict()}, tmp_path / "model.pth")
    scores = Predictor(cfg, str(tmp_path / "model.pth"))(np.zeros((70, 110, 3), np.uint8))["sem_seg"]
    assert scores.device.type == "cuda" and scores.shape == (19, 70, 110)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_net_trains_and_evaluates_on_cuda(synthetic_root, tmp_path, precision):
    out = tmp_path / "run"
    train_net([f"train.output_dir={out}", "train.device=cuda", f"train.amp.precision={precision}",
               "train.amp.enabled=True", "train.max_iter=6", "train.eval_period=0",
               "dataloader.test_datasets=[synthetic_source_val]"] + FAST, synthetic_root)  # fmt: skip
    losses = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines() if "total_loss" in line]
    assert len(losses) == 6 and all(np.isfinite(r["total_loss"]) for r in losses)
    assert next(out.glob("eval/*/cross_domain.json")).is_file()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_process_nccl_training(synthetic_root, tmp_path):
    out = tmp_path / "run"
    args = ["--num-gpus", "2", f"train.output_dir={out}", "train.device=cuda", "train.max_iter=4"]
    train_net(args + ["train.eval_period=0", "dataloader.test_datasets=[synthetic_source_val]"] + FAST, synthetic_root)
    assert (out / "model_final.pth").is_file()
