"""Every tensor of a pretrained file lands in the model or is named as dropped with its reason;
an unexplained non-zero one is an error. DINOv3's biases and bfloat16 rotary periods as Meta's
model uses them."""

import logging

import pytest
import timm
import torch
from pretrained_files import dinov2_state, dinov3_state

from vltseg_d2.modeling import SoMA
from vltseg_d2.modeling.backbone import ViTBackbone, WeightsMismatchError

TINY = dict(embed_dim=64, depth=4, num_heads=4)
DINOV3, DINOV3_QKVB = "vit_large_patch16_dinov3", "vit_large_patch16_dinov3_qkvb"


def _reference(name):
    torch.manual_seed(1)
    ref = timm.create_model(name, pretrained=False, img_size=64, num_classes=0, global_pool="", dynamic_img_size=True,
                            **TINY)  # fmt: skip
    with torch.no_grad():  # layer scale 1 (not timm's 1e-5 init) and sharp attention: the rotary phases matter
        for name, p in ref.named_parameters():
            if "gamma" in name:
                p.fill_(1.0)
            if name.endswith("attn.qkv.weight"):
                p.mul_(20)
    return ref.eval()


def _backbone(name, path, **kw):
    bb = ViTBackbone(name, model_kwargs=TINY, img_size=64, patch_size=16, out_indices=(3,), out_strides=(16,),
                     pretrained=str(path), **kw)  # fmt: skip
    bb.load_pretrained()
    return bb.eval()


def _features(model, x):
    return model.forward_intermediates(x, indices=[3], intermediates_only=True)[0]


def test_dinov3_uses_the_files_bfloat16_periods_as_metas_model_does(tmp_path):
    ref = _reference(DINOV3)
    state = dinov3_state(ref)
    assert state["rope_embed.periods"].dtype == torch.bfloat16
    torch.save(state, tmp_path / "dinov3.pth")
    bb = _backbone(DINOV3, tmp_path / "dinov3.pth")
    assert torch.equal(bb.vit.rope.periods, state["rope_embed.periods"].float())
    assert "rope.periods" in bb.vit.state_dict()  # kept in checkpoints too
    x = torch.randn(1, 3, 64, 96)
    timm_periods = _features(ref, x)
    with torch.no_grad():
        ref.rope.periods.copy_(state["rope_embed.periods"].float())  # Meta's model: the stored values
    torch.testing.assert_close(bb(x)["res4"], _features(ref, x))
    assert (_features(ref, x) - timm_periods).abs().max() > 1e-4  # timm's own float32 periods differ


def test_dinov3_non_zero_q_or_v_biases_are_refused_without_a_place_for_them(tmp_path):
    state = dinov3_state(_reference(DINOV3))
    state["blocks.2.attn.qkv.bias"][5] = 0.3  # a q bias
    torch.save(state, tmp_path / "dinov3.pth")
    with pytest.raises(WeightsMismatchError, match=r"blocks\.2\.attn\.qkv\.bias.*vit_large_patch16_dinov3_qkvb"):
        _backbone(DINOV3, tmp_path / "dinov3.pth")


def test_dinov3_zero_q_v_biases_are_dropped_by_name_whatever_the_masked_k_holds(tmp_path, caplog):
    state = dinov3_state(_reference(DINOV3))
    state["blocks.0.attn.qkv.bias"][64:128] = 0.7  # the k third: masked out by Meta's model
    torch.save(state, tmp_path / "dinov3.pth")
    with caplog.at_level(logging.INFO):
        _backbone(DINOV3, tmp_path / "dinov3.pth")
    assert "dropped 4 tensors (DINOv3's q/v biases, all zero): blocks.0.attn.qkv.bias" in caplog.text
    assert "(the masked-image-modelling token of the pre-training): mask_token" in caplog.text
    assert "(DINOv3's constant mask of the k bias)" in caplog.text


def test_dinov3_qkvb_loads_non_zero_biases_and_soma_refuses_it(tmp_path):
    ref = _reference(DINOV3_QKVB)
    with torch.no_grad():
        for block in ref.blocks:
            block.attn.q_bias.normal_(0, 0.2)
            block.attn.v_bias.normal_(0, 0.2)
    torch.save(dinov3_state(ref), tmp_path / "dinov3.pth")
    with torch.no_grad():
        ref.rope.periods.copy_(ref.rope.periods.to(torch.bfloat16).float())
    bb = _backbone(DINOV3_QKVB, tmp_path / "dinov3.pth")
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(bb(x)["res4"], _features(ref, x))
    with pytest.raises(ValueError, match="SoMA cannot adapt .*q_bias.*vit_large_patch16_dinov3"):
        ViTBackbone(DINOV3_QKVB, model_kwargs=TINY, img_size=64, patch_size=16, out_indices=(3,), out_strides=(16,),
                    freeze=True, soma=SoMA(rank=4, alpha=4, start_block=2))  # fmt: skip


def test_an_unexplained_non_zero_tensor_is_refused_and_a_zero_one_named(tmp_path, caplog):
    ref = _reference("vit_small_patch14_dinov2")
    state = dinov2_state(ref)
    state["blocks.1.attn.extra_scale"] = torch.ones(4)
    torch.save(state, tmp_path / "dinov2.pth")
    with pytest.raises(
        WeightsMismatchError, match=r"1 non-zero tensors the model has no place for \(blocks\.1\.attn\.extra_scale\)"
    ):
        _backbone("vit_small_patch14_dinov2", tmp_path / "dinov2.pth")
    state["blocks.1.attn.extra_scale"] = torch.zeros(4)
    torch.save(state, tmp_path / "dinov2.pth")
    with caplog.at_level(logging.INFO):
        _backbone("vit_small_patch14_dinov2", tmp_path / "dinov2.pth")
    assert "dropped 1 tensors (all zeros): blocks.1.attn.extra_scale" in caplog.text
    assert "(the final norm / head (levels come before)): norm.bias, norm.weight" in caplog.text
