"""SoMA's released checkpoints (adapters + biases + mmdet head) give the released model: the
pretrained weight plus the trained low-rank product, every tensor where the layout says."""

import subprocess
import sys

import pytest
import timm
import torch
from detectron2.config import instantiate
from pretrained_files import dinov2_state
from rein_released import distinct_tensors, released_rein_shapes
from test_rein_checkpoint import TINY_RELEASED
from tiny_models import tiny_model_cfg

from vltseg_d2.checkpoint import CheckpointMismatchError, load_weights
from vltseg_d2.checkpoint.rein_mmseg import map_key
from vltseg_d2.checkpoint.soma_mmseg import convert_soma_state_dict, read_soma_checkpoint

C, DEPTH, START, RANK, HIDDEN = 64, 4, 2, 4, 256
B = "backbone.model."


def released_soma_shapes(queries=20) -> dict:
    """SoMA's released layout at the tiny size, from its model (DINOv2 with q/k/v split, SoRA
    Linear layers with ``lora_A = Linear(in, r)``, ``lora_B = Linear(r, out)``) and its
    extract_soma_weights.py filter (every bias, the mask token, adapters, the head)."""
    shapes = {B + "mask_token": (1, C), B + "patch_embed.proj.bias": (C,), B + "norm.bias": (C,)}
    for i in range(DEPTH):
        layers = {"attn.q": (C, C), "attn.k": (C, C), "attn.v": (C, C), "attn.proj": (C, C)}
        layers.update({"mlp.fc1": (HIDDEN, C), "mlp.fc2": (C, HIDDEN)})
        for name, (out, n_in) in layers.items():
            shapes[f"{B}blocks.{i}.{name}.bias"] = (out,)
            if i >= START:
                shapes[f"{B}blocks.{i}.{name}.lora_A.weight"] = (RANK, n_in)
                shapes[f"{B}blocks.{i}.{name}.lora_B.weight"] = (out, RANK)
        shapes[f"{B}blocks.{i}.norm1.bias"] = shapes[f"{B}blocks.{i}.norm2.bias"] = (C,)
    head = {k: v for k, v in released_rein_shapes(**TINY_RELEASED).items() if k.startswith("decode_head.")}
    head.pop("decode_head.querys2feat.weight"), head.pop("decode_head.querys2feat.bias")
    head["decode_head.query_embed.weight"] = head["decode_head.query_feat.weight"] = (queries, 64)
    return {**shapes, **head}


def _cfg(pretrained=None, init="released"):
    cfg = tiny_model_cfg(base="soma_dinov2_l")
    cfg.backbone.soma.update(rank=RANK, alpha=RANK, start_block=START, init=init)
    cfg.backbone.pretrained = pretrained
    return cfg


def _pretrained_file(tmp_path):
    torch.manual_seed(1)
    ref = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=64, patch_size=16, num_classes=0,
                            embed_dim=C, depth=DEPTH, num_heads=4)  # fmt: skip
    torch.save(dinov2_state(ref), tmp_path / "dinov2.pth")
    return str(tmp_path / "dinov2.pth"), ref.state_dict()


def _released_file(tmp_path):
    source = distinct_tensors(released_soma_shapes(), seed=4)
    ema = {"module." + k: v + 1 for k, v in source.items()}
    torch.save({"state_dict": source, "ema_state_dict": ema, "meta": {"iter": 40000}}, tmp_path / "soma.pth")
    return source


def _convert(tmp_path):
    result = subprocess.run(
        [sys.executable, "tools/convert_soma_checkpoint.py", str(tmp_path / "soma.pth"), str(tmp_path / "out.pth")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_tensor_lands_where_the_layout_says(tmp_path):
    source = _released_file(tmp_path)
    converted, dropped = convert_soma_state_dict(read_soma_checkpoint(tmp_path / "soma.pth"))
    assert [d.split(":")[0] for d in dropped] == ["ema_state_dict", B + "mask_token", B + "norm.bias"]
    vit = "backbone.vit.blocks.3."
    for g, part in enumerate("qkv"):  # q, k, v are the row blocks of timm's fused qkv, in that order
        assert torch.equal(converted[vit + "attn.qkv.lora_A"][g], source[f"{B}blocks.3.attn.{part}.lora_A.weight"])
        assert torch.equal(converted[vit + "attn.qkv.lora_B"][g], source[f"{B}blocks.3.attn.{part}.lora_B.weight"])
    qkv_bias = torch.cat([source[f"{B}blocks.0.attn.{p}.bias"] for p in "qkv"])
    assert torch.equal(converted["backbone.vit.blocks.0.attn.qkv.bias"], qkv_bias)
    assert torch.equal(converted[vit + "mlp.fc2.lora_A"][0], source[B + "blocks.3.mlp.fc2.lora_A.weight"])
    assert torch.equal(converted["sem_seg_head.predictor.query_feat.weight"], source["decode_head.query_feat.weight"])
    for key, tensor in source.items():
        if key.startswith("decode_head."):
            assert torch.equal(converted[map_key(key)], tensor)
    # every source tensor but the dropped ones is somewhere in the output, and nothing else is there
    out_values = list(converted.values())
    kept = [k for k in source if k not in (B + "mask_token", B + "norm.bias")]
    flat = torch.cat([v.flatten() for v in out_values])
    assert flat.numel() == sum(source[k].numel() for k in kept)
    model = instantiate(_cfg())
    own = model.state_dict()
    assert set(converted) <= set(own) and all(converted[k].shape == own[k].shape for k in converted)


def test_the_released_model_is_the_pretrained_weight_plus_the_trained_product(tmp_path):
    path, pretrained = _pretrained_file(tmp_path)
    source = _released_file(tmp_path)
    out = _convert(tmp_path)
    assert "dropped 3" in out and "mask_token" in out and "ema_state_dict" in out
    torch.manual_seed(0)
    model = instantiate(_cfg(path)).eval()
    load_weights(model, str(tmp_path / "out.pth"))
    layer = model.backbone.vit.blocks[2].attn.qkv
    assert torch.equal(layer.weight, pretrained["blocks.2.attn.qkv.weight"])  # nothing subtracted
    scale = RANK / RANK
    lora = f"{B}blocks.2.attn.{{}}.lora_{{}}.weight"
    products = [source[lora.format(p, "B")] @ source[lora.format(p, "A")] for p in "qkv"]
    expected = pretrained["blocks.2.attn.qkv.weight"] + scale * torch.cat(products)
    fc1 = pretrained["blocks.3.mlp.fc1.weight"] + scale * (
        source[B + "blocks.3.mlp.fc1.lora_B.weight"] @ source[B + "blocks.3.mlp.fc1.lora_A.weight"]
    )
    frozen_bias = source[B + "blocks.0.mlp.fc1.bias"]
    model.backbone.merge_adapters()
    vit = model.backbone.vit
    torch.testing.assert_close(vit.blocks[2].attn.qkv.weight, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(vit.blocks[3].mlp.fc1.weight, fc1, rtol=1e-6, atol=1e-6)
    assert torch.equal(vit.blocks[0].mlp.fc1.bias, frozen_bias)  # the file's value, as SoMA's merge script


def test_a_paper_init_model_refuses_a_released_file(tmp_path):
    path, _ = _pretrained_file(tmp_path)
    _released_file(tmp_path)
    _convert(tmp_path)
    model = instantiate(_cfg(path, init="paper"))
    with pytest.raises(CheckpointMismatchError, match="add model.backbone.soma.init=released"):
        load_weights(model, str(tmp_path / "out.pth"))


def test_a_file_without_adapters_is_refused_by_name(tmp_path):
    torch.save({"state_dict": {"decode_head.cls_embed.bias": torch.zeros(3)}}, tmp_path / "soma.pth")
    result = subprocess.run(
        [sys.executable, "tools/convert_soma_checkpoint.py", str(tmp_path / "soma.pth"), str(tmp_path / "out.pth")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "holds no SoMA adapters" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.pth").exists()
