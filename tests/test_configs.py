"""Every config in configs/ instantiates; the small one also runs a forward pass."""

from pathlib import Path

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog

from vltseg_d2.modeling import count_parameters

EXPERIMENTS = sorted(
    str(p) for p in Path("configs").glob("*/*.py") if p.parent.name != "common" and p.name != "__init__.py"
)


def test_the_recipes_are_there():
    names = {Path(p).stem for p in EXPERIMENTS}
    for expected in (
        "rein_dinov2_l_gta2cbm_512_bs4_40k",
        "rein_dinov2_l_citys2acdc_1024_bs8_40k",
        "vltseg_eva02_l_gta2cbm_512_bs16_5k",
        "vltseg_eva02_l_citys2acdc_1024_bs8_20k",
        "rein_eva02_l_gta2cbm_512_bs4_40k",
        "tiny_synthetic_cpu",
    ):
        assert expected in names


@pytest.mark.parametrize("path", EXPERIMENTS)
def test_config_instantiates(path):
    cfg = LazyConfig.load(path)
    cfg.model.backbone.pretrained = None
    with torch.device("meta"):
        model = instantiate(cfg.model)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    multiplier = instantiate(cfg.lr_multiplier)
    if hasattr(multiplier, "build"):  # tqdm: mmcv 1.x poly to an absolute min_lr, per group
        base, last = max(g["lr"] for g in optimizer.param_groups), multiplier.max_iter - 1
        assert multiplier.min_lr < multiplier.lr(base, last // 2) < base
        assert multiplier.lr(base, multiplier.max_iter) == pytest.approx(multiplier.min_lr)
    else:
        assert 0 < multiplier(0.5) < 1 and multiplier(1.0) == pytest.approx(0, abs=1e-6)
    mapper = instantiate(cfg.dataloader.train.mapper)
    assert mapper.pad_to == tuple(cfg.dataloader.train.mapper.augmentations.crop_size)
    assert cfg.dataloader.test_datasets and set(cfg.dataloader.test_datasets) <= set(DatasetCatalog.list())
    total, trainable = count_parameters(model)
    assert trainable == sum(p.numel() for g in optimizer.param_groups for p in g["params"])
    name = Path(path).stem
    if name.startswith("soma_"):  # adapters on the minor components of blocks 8..23, and their biases
        no_qkv_bias = 16 * 3072 if "dinov3" in name else 0  # timm's DINOv3-L has no qkv bias
        assert trainable - count_parameters(model.sem_seg_head)[1] == 4_866_048 - no_qkv_bias
        assert cfg.model.backbone.freeze and not cfg.model.sem_seg_head.predictor.rein_linked
    if name.startswith("tqdm_"):  # float32 (no fp16 hook in its config), CLIP's statistics
        assert cfg.train.amp.precision == "fp32" and list(cfg.model.pixel_std)[0] == pytest.approx(0.26862954 * 255)
    if name.startswith(("rein_", "vltseg_", "soma_")):  # float32, as the references train (plain OptimWrapper)
        assert cfg.train.amp.precision == "fp32"
    if name.startswith(("rein_", "vltseg_", "soma_")):  # the reference configs' ImageNet statistics, EVA02 included
        assert list(cfg.model.pixel_mean) == [123.675, 116.28, 103.53]
        assert list(cfg.model.pixel_std) == [58.395, 57.12, 57.375]
    if name.startswith("rein_"):
        assert trainable - count_parameters(model.sem_seg_head)[1] == 2_990_081  # LoRA-Rein at ViT-L
        assert cfg.model.backbone.freeze and cfg.model.sem_seg_head.predictor.rein_linked
    if name.startswith("vltseg_"):
        assert total == trainable and cfg.optimizer.params.backbone_lr_mult == 0.1
        assert cfg.train.clip_grad.enabled and cfg.train.clip_grad.max_norm == 0.01
        assert tuple(cfg.model.backbone.out_indices) == (9, 14, 19, 23) and cfg.model.backbone.patch_size == 14


def test_demo_config_runs_a_training_and_an_inference_pass(use_synthetic):
    cfg = LazyConfig.load("configs/demo/tiny_synthetic_cpu.py")
    cfg.dataloader.train.num_workers = 0
    model = instantiate(cfg.model)
    batch = next(iter(instantiate(cfg.dataloader.train)))
    assert len(batch) == 4 and batch[0]["image"].shape == (3, 256, 256)
    losses = model(batch)
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    record = DatasetCatalog.get("synthetic_fog_val")[0]
    from vltseg_d2.data.mapper import SemSegDatasetMapper

    out = model([SemSegDatasetMapper([], is_train=False)(record)])
    assert out[0]["sem_seg"].shape == (19, 96, 192)
