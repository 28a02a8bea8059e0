"""Override validation and the optimizer's parameter groups."""

from pathlib import Path

import pytest
import torch
from detectron2.config import LazyConfig
from tiny_models import tiny_model

from vltseg_d2.config import OverrideError, apply_overrides
from vltseg_d2.engine import Trainer, param_groups
from vltseg_d2.engine.optimizer import recipe_param_table

CFG = "configs/demo/tiny_synthetic_cpu.py"
FIXTURES = Path(__file__).parent / "fixtures"


def test_valid_overrides_apply():
    cfg = apply_overrides(
        LazyConfig.load(CFG),
        [
            "train.max_iter=7",
            "optimizer.lr=5e-5",
            "model.backbone.model_kwargs.drop_path_rate=0.1",
            "dataloader.test.batch_size=2",
            "model.backbone.freeze=True",
        ],
    )
    assert cfg.train.max_iter == 7 and cfg.optimizer.lr == 5e-5 and cfg.model.backbone.freeze is True
    assert cfg.model.backbone.model_kwargs.drop_path_rate == 0.1 and cfg.dataloader.test.batch_size == 2


@pytest.mark.parametrize(
    "item,message",
    [
        ("train.typo=5", "train has no 'typo'"),
        ("train.max_itr=5", "Did you mean 'train.max_iter'"),
        ("model.backbone.frezee=True", "'model.backbone.freeze'"),
        ("optimizer.params.lr_mult=2", "optimizer.params has no 'lr_mult'"),
        ("nonsense", "key=value"),
    ],
)
def test_misspelled_keys_are_errors_naming_the_key(item, message):
    with pytest.raises(OverrideError, match=message.replace("(", r"\(")):
        apply_overrides(LazyConfig.load(CFG), [item])


def test_param_groups_follow_the_recipe():
    model = tiny_model()  # frozen ViT + Rein + head
    for p in model.backbone.vit.blocks[0].parameters():
        p.requires_grad_(True)  # pretend one block is trainable to see the backbone multiplier
    groups = param_groups(model, base_lr=1e-4, weight_decay=0.05, backbone_lr_mult=0.1)
    by_param = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    frozen = [n for n, p in named.items() if not p.requires_grad]
    assert frozen and all(id(named[n]) not in by_param for n in frozen)

    def group(name):
        return by_param[id(named[name])]

    assert group("backbone.vit.blocks.0.attn.qkv.weight") == {
        **group("backbone.vit.blocks.0.attn.qkv.weight"),
        "lr": pytest.approx(1e-5),
        "weight_decay": 0.05,
    }
    for name in (
        "backbone.rein.learnable_tokens_a",
        "backbone.rein.scale",
        "backbone.vit.blocks.0.norm1.weight",
        "sem_seg_head.predictor.level_embed.weight",
        "sem_seg_head.pixel_decoder.input_proj.0.1.weight",
        "sem_seg_head.predictor.decoder_norm.bias",
    ):
        assert group(name)["weight_decay"] == 0.0, name
    assert group("backbone.rein.mlp_delta_f.weight")["lr"] == pytest.approx(1e-4)  # Rein is not "backbone"
    assert group("sem_seg_head.predictor.class_embed.weight")["weight_decay"] == 0.05
    # Rein's level_embed key names the decoder's tensor; the pixel decoder's (level_encoding) decays
    assert group("sem_seg_head.pixel_decoder.transformer.level_embed")["weight_decay"] == 0.05
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())
    optimizer = torch.optim.AdamW(groups, lr=1e-4)
    assert len(optimizer.param_groups) == len(groups) <= 6


def test_every_trained_tensor_of_the_rein_recipe_gets_reins_lr_and_decay():
    """Against the table Rein's own optimizer constructor builds (tests/fixtures, written by
    tools/compare_with_mmseg.py from Rein's code): 303 tensors, 94 without decay."""
    rows = [line.split() for line in FIXTURES.joinpath("rein_recipe_optimizer_groups.txt").read_text().splitlines()]
    reference = {name: (float(lr), float(wd)) for name, lr, wd in (r for r in rows if not r[0].startswith("#"))}
    ours = recipe_param_table("configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py")
    assert len(reference) == 303 and sum(wd == 0 for _, wd in reference.values()) == 94
    assert ours == reference


def test_layer_decay_scales_blocks_by_depth():
    model = tiny_model()
    model.backbone.vit.requires_grad_(True)
    groups = param_groups(model, base_lr=1.0, weight_decay=0.0, layer_decay=0.5)
    lr = {id(p): g["lr"] for g in groups for p in g["params"]}
    blocks = model.backbone.vit.blocks
    assert lr[id(blocks[-1].mlp.fc1.weight)] == pytest.approx(0.5)  # depth 4: 0.5 ** (5 - 4)
    assert lr[id(blocks[0].mlp.fc1.weight)] == pytest.approx(0.5**4)
    assert lr[id(model.backbone.vit.patch_embed.proj.weight)] == pytest.approx(0.5**5)


def test_recipe_optimizer_is_fused_adamw_with_the_per_tensor_update():
    model = tiny_model()  # frozen ViT + Rein + head: only trainable parameters reach the optimizer
    clone = {}
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.randn_like(p)
            clone[p] = p.detach().clone()
            clone[p].grad = p.grad.clone()
    optimizer = Trainer.build_optimizer(LazyConfig.load(CFG), model)
    assert optimizer.defaults["fused"] is True
    per_tensor = torch.optim.AdamW(
        [{**g, "params": [clone[p] for p in g["params"]], "fused": None} for g in optimizer.param_groups],
        foreach=False,
    )
    for _ in range(3):
        optimizer.step()
        per_tensor.step()
    for p, reference in clone.items():
        torch.testing.assert_close(p.detach(), reference, rtol=1e-6, atol=1e-7)


def test_every_tool_takes_overrides_trailing_and_after_opts():
    import argparse
    import importlib.util

    from vltseg_d2.config import add_override_arguments, overrides_of

    parser = argparse.ArgumentParser()
    parser.add_argument("--config-file")
    add_override_arguments(parser)
    for argv in (["--config-file", "c.py", "a.b=1", "c=2"], ["--config-file", "c.py", "--opts", "a.b=1", "c=2"]):
        assert overrides_of(parser.parse_args(argv)) == ["a.b=1", "c=2"]
    spec = importlib.util.spec_from_file_location("train_net_tool", "tools/train_net.py")
    train_net = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_net)
    config = "configs/demo/tiny_synthetic_cpu.py"
    for argv in (
        ["--config-file", config, "train.max_iter=3"],
        ["--config-file", config, "--opts", "train.max_iter=3"],
    ):
        assert train_net.parse_args(argv).opts == ["train.max_iter=3"]


def test_train_net_without_a_config_file_is_one_line(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_net_tool", "tools/train_net.py")
    train_net = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_net)
    with pytest.raises(SystemExit):
        train_net.parse_args([])
    assert "error: --config-file is required, e.g. --config-file configs/" in capsys.readouterr().err
