"""The timm ViT backbone, Rein, and loading of original pretrained files."""

import math
import re

import pytest
import timm
import torch
import torch.nn.functional as F
from key_fixtures import read_key_shapes
from pretrained_files import dinov2_state, dinov3_state, eva_clip_state

from vltseg_d2.modeling.backbone import Reins, ViTBackbone, WeightsMismatchError, build_rein, count_parameters

TINY = dict(embed_dim=64, depth=4, num_heads=4)
DINO, EVA = "vit_small_patch14_dinov2", "eva02_large_patch14_clip_224"


def tiny_backbone(name=DINO, patch=16, rein=True, **kw):
    return ViTBackbone(
        name,
        model_kwargs=TINY,
        img_size=64,
        patch_size=patch,
        out_indices=(0, 1, 2, 3),
        rein=build_rein(4, 64, patch, token_length=10, lora_dim=4, query_dims=32) if rein else None,
        **kw,
    )


def test_rein_matches_a_hand_evaluation_of_the_formulas():
    torch.manual_seed(0)
    rein = Reins(num_layers=2, embed_dims=8, patch_size=16, token_length=5, lora_dim=3, query_dims=4)
    with torch.no_grad():
        rein.scale.fill_(0.7)
    x = torch.randn(2, 6, 8)
    layer = 1
    a, b = rein.learnable_tokens_a[layer], rein.learnable_tokens_b[layer]
    t = a @ b
    expected = torch.empty_like(x)
    for n in range(2):
        for i in range(6):
            logits = torch.stack([x[n, i] @ t[j] / math.sqrt(8) for j in range(5)])
            s = torch.exp(logits) / torch.exp(logits).sum()
            d = sum(s[j] * (rein.mlp_token2feat.weight @ t[j] + rein.mlp_token2feat.bias) for j in range(1, 5))
            delta = rein.mlp_delta_f.weight @ (d + x[n, i]) + rein.mlp_delta_f.bias
            expected[n, i] = x[n, i] + 0.7 * delta
    torch.testing.assert_close(rein(x, layer), expected, rtol=1e-5, atol=1e-6)


def test_rein_initialisation_bounds_and_scale():
    plain = Reins(3, 32, patch_size=16, token_length=7, lora_dim=None, link_token_to_query=False)
    assert plain.learnable_tokens.abs().max() <= math.sqrt(6 / (3 * 256 + 32))
    lora = Reins(3, 32, patch_size=16, token_length=7, lora_dim=4)
    bound = math.sqrt(6 / (3 * 256 + math.sqrt(32 * 4)))
    assert lora.learnable_tokens_a.abs().max() <= bound and lora.learnable_tokens_b.abs().max() <= bound
    assert lora.learnable_tokens_a.abs().max() > 0.5 * bound and lora.scale.item() == pytest.approx(1e-3)


def test_scale_zero_leaves_the_backbone_output_unchanged():
    torch.manual_seed(0)
    with_rein = tiny_backbone()
    without = tiny_backbone(rein=False)
    without.load_state_dict({k: v for k, v in with_rein.state_dict().items() if not k.startswith("rein.")})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        with_rein.rein.scale.zero_()
        a, b = with_rein(x), without(x)
        with_rein.rein.scale.fill_(1.0)
        c = with_rein(x)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    assert not torch.allclose(c["res5"], b["res5"])


def test_frozen_backbone_gradients_reach_only_rein():
    torch.manual_seed(0)
    bb = tiny_backbone(freeze=True).train()
    assert not bb.vit.training  # frozen ViT stays in eval mode
    out = bb(torch.randn(2, 3, 64, 64))
    sum(v.square().mean() for v in out.values()).backward()
    for name, p in bb.named_parameters():
        if name.startswith("rein.") and name.split(".")[1] not in ("transform", "merge"):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        elif not name.startswith("rein."):
            assert p.grad is None and not p.requires_grad, name


@pytest.mark.parametrize("name,patch", [(DINO, 16), (DINO, 14), (EVA, 14), (EVA, 16)])
@pytest.mark.parametrize("hw", [(64, 64), (64, 96), (96, 32)])
def test_output_levels_for_both_patch_sizes_and_non_square_inputs(name, patch, hw):
    bb = tiny_backbone(name, patch)
    out = bb(torch.randn(1, 3, *hw))
    for level, stride in (("res2", 4), ("res3", 8), ("res4", 16), ("res5", 32)):
        assert out[level].shape == (1, 64, hw[0] // stride, hw[1] // stride)
        assert bb.output_shape()[level].stride == stride and bb.output_shape()[level].channels == 64
    assert bb.size_divisibility == 32


def test_patch16_levels_are_reins_bilinear_neck():
    bb = tiny_backbone(rein=False)
    grid = bb.vit.forward_intermediates(torch.zeros(1, 3, 64, 64), indices=[0], intermediates_only=True)
    x = torch.randn(1, 3, 64, 64)
    raw = bb.vit.forward_intermediates(x, indices=[0, 1, 2, 3], intermediates_only=True)
    out = bb(x)
    torch.testing.assert_close(out["res2"], F.interpolate(raw[0], scale_factor=4, mode="bilinear", align_corners=False))
    torch.testing.assert_close(out["res4"], raw[2])
    torch.testing.assert_close(
        out["res5"], F.interpolate(raw[3], scale_factor=0.5, mode="bilinear", align_corners=False)
    )
    assert grid[0].shape[-1] == 4


@pytest.mark.parametrize("dtype,tolerance", [(torch.bfloat16, 5e-2), (torch.float16, 5e-3)])
def test_autocast_and_checkpointing(dtype, tolerance):
    bb = tiny_backbone(grad_checkpointing=True).train()
    x = torch.randn(1, 3, 64, 64)
    with torch.autocast("cpu", dtype=dtype):
        low = bb(x)
    out = bb(x)
    for k in out:  # reduced-precision matmuls: close to fp32, not equal
        err = (low[k].float() - out[k]).norm() / out[k].norm()
        assert 0 < err < tolerance, (k, err)
    out["res5"].sum().backward()  # through the recomputed (checkpointed) blocks
    plain = tiny_backbone(grad_checkpointing=False).train()
    plain.load_state_dict(bb.state_dict())
    plain(x)["res5"].sum().backward()
    torch.testing.assert_close(bb.rein.learnable_tokens_a.grad, plain.rein.learnable_tokens_a.grad)


def test_vit_large_builds_on_meta_with_the_released_trainable_count():
    with torch.device("meta"):
        bb = ViTBackbone("vit_large_patch14_dinov2", img_size=512, patch_size=16, freeze=True, rein=build_rein())
    total, trainable = count_parameters(bb)
    assert trainable == 2_990_081
    assert 300e6 < total < 310e6 and bb.vit.pos_embed.shape == (1, 1 + 32 * 32, 1024)
    assert bb.vit.pos_embed.device.type == "meta"


def loaded_backbone(*args, **kwargs):
    """A backbone with its ``pretrained`` weights loaded, as the trainer does when training starts."""
    bb = ViTBackbone(*args, **kwargs)
    bb.load_pretrained()
    return bb


def _reference(name, img_size, **kw):
    torch.manual_seed(1)
    return timm.create_model(
        name, pretrained=False, img_size=img_size, num_classes=0, global_pool="", dynamic_img_size=True, **TINY, **kw
    ).eval()


def _last_block(bb, x):
    bb.eval()
    return bb(x)["res" + str(int(math.log2(bb.patch_size)))]


def test_eva_clip_original_layout_loads_and_reproduces_timm(tmp_path):
    ref = _reference(EVA, 224)
    state = eva_clip_state(ref)
    names = set(read_key_shapes("eva02_clip_l14_visual_keys.txt"))
    tiny_names = {k for k in names if not re.match(r"visual\.blocks\.(\d+)\.", k) or int(k.split(".")[2]) < 4}
    assert {k for k in state if k.startswith("visual.")} == tiny_names  # really the original layout
    torch.save(state, tmp_path / "EVA02_CLIP_tiny.pt")
    bb = loaded_backbone(
        EVA,
        model_kwargs=TINY,
        img_size=224,
        patch_size=14,
        out_indices=(3,),
        out_strides=(14,),
        pretrained=str(tmp_path / "EVA02_CLIP_tiny.pt"),
    )
    x = torch.randn(1, 3, 224, 224)
    expected = ref.forward_intermediates(x, indices=[3], intermediates_only=True)[0]
    torch.testing.assert_close(_last_block(bb, x), expected)


@pytest.mark.parametrize("registers", [False, True])
def test_dinov2_original_layout_loads_and_reproduces_timm(tmp_path, registers):
    name = "vit_small_patch14_reg4_dinov2" if registers else DINO
    ref = _reference(name, 518)
    torch.save({"model": dinov2_state(ref)} if registers else dinov2_state(ref), tmp_path / "dinov2.pth")
    bb = loaded_backbone(
        name,
        model_kwargs=TINY,
        img_size=518,
        patch_size=14,
        out_indices=(3,),
        out_strides=(14,),
        pretrained=str(tmp_path / "dinov2.pth"),
    )
    x = torch.randn(1, 3, 518, 518)
    expected = ref.forward_intermediates(x, indices=[3], intermediates_only=True)[0]
    torch.testing.assert_close(_last_block(bb, x), expected)


def test_patch_14_to_16_is_the_rein_bicubic_recipe(tmp_path):
    ref = _reference(DINO, 518)
    state = dinov2_state(ref)
    torch.save(state, tmp_path / "dinov2.pth")
    bb = loaded_backbone(
        DINO,
        model_kwargs=TINY,
        img_size=512,
        patch_size=16,
        out_indices=(3,),
        out_strides=(16,),
        pretrained=str(tmp_path / "dinov2.pth"),
    )
    kernel = F.interpolate(state["patch_embed.proj.weight"], size=(16, 16), mode="bicubic", align_corners=False)
    torch.testing.assert_close(bb.vit.patch_embed.proj.weight, kernel)
    grid = state["pos_embed"][:, 1:].reshape(1, 37, 37, 64).permute(0, 3, 1, 2)
    grid = (
        F.interpolate(grid, size=(32, 32), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).reshape(1, -1, 64)
    )
    torch.testing.assert_close(bb.vit.pos_embed, torch.cat([state["pos_embed"][:, :1], grid], 1))
    timm_bb = loaded_backbone(
        DINO,
        model_kwargs=TINY,
        img_size=512,
        patch_size=16,
        out_indices=(3,),
        out_strides=(16,),
        pretrained=str(tmp_path / "dinov2.pth"),
        patch_resample="timm",
    )
    assert not torch.allclose(timm_bb.vit.patch_embed.proj.weight, kernel)


def test_a_checkpoint_of_another_model_is_rejected_by_name(tmp_path):
    torch.save(dinov2_state(_reference(DINO, 518)), tmp_path / "dinov2.pth")
    with pytest.raises(WeightsMismatchError, match=r"another shape.*blocks\.0"):
        loaded_backbone(
            DINO,
            model_kwargs=dict(embed_dim=32, depth=4, num_heads=4),
            img_size=518,
            patch_size=14,
            out_indices=(3,),
            out_strides=(16,),
            pretrained=str(tmp_path / "dinov2.pth"),
        )
    with pytest.raises(WeightsMismatchError, match=r"absent from the file \(blocks\.4"):
        loaded_backbone(
            DINO,
            model_kwargs=dict(embed_dim=64, depth=6, num_heads=4),
            img_size=518,
            patch_size=14,
            out_indices=(5,),
            out_strides=(16,),
            pretrained=str(tmp_path / "dinov2.pth"),
        )
    with pytest.raises(FileNotFoundError, match="model.backbone.pretrained"):
        loaded_backbone(
            DINO, model_kwargs=TINY, out_indices=(3,), out_strides=(16,), pretrained=str(tmp_path / "nope.pth")
        )


@pytest.mark.parametrize("layout", ["timm", "open_clip"])
def test_timm_and_open_clip_state_dicts_load(tmp_path, layout):
    ref = _reference(EVA, 224)
    state = ref.state_dict()
    if layout == "open_clip":  # open_clip towers built on timm keep its names under visual.trunk.
        state = {"visual.trunk." + k: v for k, v in state.items()}
        state["visual.head.proj.weight"] = torch.randn(8, 64)
    torch.save(state, tmp_path / "w.pth")
    bb = loaded_backbone(
        EVA,
        model_kwargs=TINY,
        img_size=224,
        patch_size=14,
        out_indices=(3,),
        out_strides=(14,),
        pretrained=str(tmp_path / "w.pth"),
    )
    x = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(
        _last_block(bb, x), ref.forward_intermediates(x, indices=[3], intermediates_only=True)[0]
    )


def _hub_cache(root, repo, files):
    """A Hugging Face hub cache in its on-disk layout: models--org--name/{refs/main,snapshots/<rev>/...}."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    folder = root / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for name, write in files.items():
        write(snapshot / name)
    return root


@pytest.mark.parametrize("prefix", ["", "hf-hub:"])
def test_weights_by_hub_id_come_from_the_cache_offline(tmp_path, monkeypatch, prefix):
    import huggingface_hub.constants as hub
    from safetensors.torch import save_file

    ref = _reference(DINO, 518)
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    cache = _hub_cache(
        tmp_path, "timm/vit_small_patch14_dinov2.tiny", {"model.safetensors": lambda p: save_file(state, str(p))}
    )
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    bb = loaded_backbone(
        DINO,
        model_kwargs=TINY,
        img_size=518,
        patch_size=14,
        out_indices=(3,),
        out_strides=(14,),
        pretrained=prefix + "timm/vit_small_patch14_dinov2.tiny",
    )
    x = torch.randn(1, 3, 518, 518)
    torch.testing.assert_close(
        _last_block(bb, x), ref.forward_intermediates(x, indices=[3], intermediates_only=True)[0]
    )
    with pytest.raises(
        FileNotFoundError, match="cannot get timm/not_cached_model from the Hugging Face hub or its cache"
    ):
        loaded_backbone(
            DINO, model_kwargs=TINY, out_indices=(3,), out_strides=(16,), pretrained="timm/not_cached_model"
        )


def test_dinov3_original_layout_loads_and_reproduces_timm(tmp_path):
    ref = _reference("vit_large_patch16_dinov3", 64)
    state = dinov3_state(ref)
    assert "storage_tokens" in state and "blocks.0.ls1.gamma" in state and "reg_token" not in state
    torch.save(state, tmp_path / "dinov3_vitl16_pretrain.pth")
    bb = loaded_backbone("vit_large_patch16_dinov3", model_kwargs=TINY, img_size=64, patch_size=16, out_indices=(3,),
                         out_strides=(16,), pretrained=str(tmp_path / "dinov3_vitl16_pretrain.pth"))  # fmt: skip
    x = torch.randn(1, 3, 64, 96)
    expected = ref.forward_intermediates(x, indices=[3], intermediates_only=True)[0]
    torch.testing.assert_close(_last_block(bb, x), expected)


@pytest.mark.parametrize("hw", [(64, 64), (96, 64)])
def test_patch14_levels_are_the_resized_grid_cropped(hw):
    """Each level equals resizing the whole patch grid by 14 / stride and cropping to
    ceil(H / stride) x ceil(W / stride) (computed at the cropped size directly, channels-last)."""
    bb = tiny_backbone(DINO, 14, rein=False)
    x = torch.randn(2, 3, *hw)
    raw = bb.vit.forward_intermediates(x, indices=[0, 1, 2, 3], intermediates_only=True)
    out = bb(x)
    for level, stride, grid in zip(("res2", "res3", "res4", "res5"), (4, 8, 16, 32), raw):
        whole = F.interpolate(grid, scale_factor=14 / stride, mode="bilinear", align_corners=False)
        expected = whole[..., : -(-hw[0] // stride), : -(-hw[1] // stride)]
        torch.testing.assert_close(out[level], expected, rtol=1e-5, atol=1e-5)
        assert out[level].is_contiguous(memory_format=torch.channels_last)
