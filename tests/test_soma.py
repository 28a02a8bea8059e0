"""SoMA adapters: minor-component initialisation, equivalence at start, merging, gradients, counts."""

import pytest
import timm
import torch
from pretrained_files import dinov2_state

from vltseg_d2.checkpoint import SafeCheckpointer, load_weights
from vltseg_d2.modeling import SoMA, ViTBackbone, count_parameters
from vltseg_d2.modeling.backbone.soma import SoMALinear

TINY = dict(embed_dim=64, depth=4, num_heads=4)


def _pretrained_file(tmp_path):
    torch.manual_seed(0)
    ref = timm.create_model(
        "vit_small_patch14_dinov2", pretrained=False, img_size=64, patch_size=16, num_classes=0, **TINY
    )
    torch.save(dinov2_state(ref), tmp_path / "dinov2.pth")
    return str(tmp_path / "dinov2.pth")


def _backbone(path, soma=True, init="paper"):
    bb = ViTBackbone("vit_small_patch14_dinov2", model_kwargs=TINY, img_size=64, patch_size=16, out_indices=(1, 3),
                     out_strides=(8, 16), freeze=True, pretrained=path,
                     soma=SoMA(rank=4, alpha=4, start_block=2, init=init) if soma else None)  # fmt: skip
    bb.load_pretrained()
    return bb.eval()


def test_the_initial_model_is_the_pretrained_one(tmp_path):
    path = _pretrained_file(tmp_path)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        plain, adapted = _backbone(path, soma=False)(x), _backbone(path)(x)
    for name in plain:
        torch.testing.assert_close(adapted[name], plain[name], rtol=1e-4, atol=1e-4)


def test_the_adapters_hold_the_minor_singular_components_of_each_block(tmp_path):
    path = _pretrained_file(tmp_path)
    original = _backbone(path, soma=False).vit.blocks[2].attn.qkv.weight.detach()
    layer = _backbone(path).vit.blocks[2].attn.qkv
    assert isinstance(layer, SoMALinear) and layer.groups == 3 and layer.lora_A.shape == (3, 4, 64)
    for g, block in enumerate(original.chunk(3)):  # q, k and v decomposed separately
        minor = torch.linalg.svdvals(block)[-4:]
        adapter = torch.linalg.svdvals(layer.lora_B[g] @ layer.lora_A[g])  # rank 4: the rest is ~0
        torch.testing.assert_close(adapter[:4], minor, rtol=1e-4, atol=1e-5)
        assert adapter[4:].abs().max() < 1e-5
        residual = torch.linalg.svdvals(layer.weight.detach().chunk(3)[g])
        torch.testing.assert_close(residual[:-4], torch.linalg.svdvals(block)[:-4], rtol=1e-4, atol=1e-5)
        assert residual[-4:].abs().max() < 1e-4
    assert not isinstance(_backbone(path).vit.blocks[1].attn.qkv, SoMALinear)  # before start_block


def test_released_init_keeps_the_pretrained_weight_and_adapts_a_random_matrix(tmp_path):
    """SoMA's released code: SVD of PyTorch's default Linear init (uniform in +-1/sqrt(fan_in)),
    drawn per q, k, v / proj / fc1 / fc2; the pretrained weight stays whole."""
    path = _pretrained_file(tmp_path)
    pretrained = _backbone(path, soma=False).vit
    bb = _backbone(path, init="released")
    torch.manual_seed(5)
    bb.soma.initialize(bb.vit)  # again, from a known seed (the weight is kept, so nothing accumulates)
    torch.manual_seed(5)  # the same draws, in the same order: layers as vit.modules() lists them, q before k before v
    for name, layer in bb.vit.named_modules():
        if not isinstance(layer, SoMALinear):
            continue
        original = pretrained.get_submodule(name).weight.detach()
        torch.testing.assert_close(layer.weight.detach(), original, rtol=0, atol=0)  # nothing subtracted
        for g, block in enumerate(original.chunk(layer.groups)):
            bound = 1 / block.shape[1] ** 0.5
            random = torch.empty_like(block).uniform_(-bound, bound)
            u, s, vh = torch.linalg.svd(random, full_matrices=False)
            minor = u[:, -4:] @ torch.diag(s[-4:]) @ vh[-4:]  # s B A = U_r S_r V_r^T
            torch.testing.assert_close(layer.scaling * layer.lora_B[g] @ layer.lora_A[g], minor, rtol=1e-4, atol=1e-6)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        plain, adapted = pretrained.eval()(x), bb.vit(x)
        # not the pretrained model, but close: a random square matrix's smallest singular values are small
        assert 0 < (plain - adapted).abs().max() < 1e-3
        qkv = bb.vit.blocks[2].attn.qkv
        expected = qkv.weight + qkv.delta()
        bb.merge_adapters()
    torch.testing.assert_close(bb.vit.blocks[2].attn.qkv.weight, expected)  # merged: W_pretrained + s B A
    with pytest.raises(ValueError, match="choose 'paper' or 'released'"):
        SoMA(init="svd")


@pytest.mark.parametrize("name", ["vit_small_patch14_dinov2", "vit_large_patch16_dinov3"])
def test_merged_equals_unmerged_after_training(tmp_path, name):
    if name.endswith("dinov3"):  # timm's Eva host: the adapters must be used there too
        torch.manual_seed(0)
        bb = ViTBackbone(name, model_kwargs=TINY, img_size=64, patch_size=16, out_indices=(1, 3), out_strides=(8, 16),
                         freeze=True, soma=SoMA(rank=4, alpha=4, start_block=2)).eval()  # fmt: skip
        bb.soma.initialize(bb.vit)
    else:
        bb = _backbone(_pretrained_file(tmp_path))
    with torch.no_grad():
        for name, p in bb.named_parameters():
            if "lora_" in name:
                p.add_(torch.randn_like(p) * 0.05)  # "trained" adapters
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = bb(x)
        assert bb.merge_adapters() == 8  # 4 layers in each of blocks 2 and 3
        after = bb(x)
    assert not any(isinstance(m, SoMALinear) for m in bb.modules())
    for name in before:
        torch.testing.assert_close(after[name], before[name], rtol=1e-4, atol=1e-5)


def test_only_the_adapters_and_adapted_biases_receive_gradients(tmp_path):
    bb = _backbone(_pretrained_file(tmp_path)).train()
    sum(v.square().mean() for v in bb(torch.randn(1, 3, 64, 64)).values()).backward()
    with_grad = {n for n, p in bb.named_parameters() if p.grad is not None}
    trainable = {n for n, p in bb.named_parameters() if p.requires_grad}
    assert with_grad == trainable
    for name in trainable:
        block = int(name.split(".")[2])
        assert block >= 2 and (".lora_" in name or name.endswith(".bias")), name
        assert any(t in name for t in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")), name


def test_vit_large_trainable_count_on_meta():
    with torch.device("meta"):
        bb = ViTBackbone("vit_large_patch14_dinov2", img_size=512, patch_size=16, freeze=True, soma=SoMA())
    total, trainable = count_parameters(bb)
    # per block 8..23: q, k, v 3 x 16 x (1024 + 1024), proj 16 x 2048, fc1 and fc2 16 x (1024 + 4096)
    # each, plus the biases 3072 + 1024 + 4096 + 1024
    per_block = 3 * 16 * 2048 + 16 * 2048 + 2 * 16 * 5120 + 9216
    print(f"SoMA ViT-L trainable parameters: {trainable:,} of {total:,}")
    assert trainable == 16 * per_block == 4_866_048


def test_compact_checkpoints_keep_the_adapters_and_rebuild_the_frozen_part(tmp_path):
    path = _pretrained_file(tmp_path)
    bb = _backbone(path)
    with torch.no_grad():
        for p in bb.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    model = torch.nn.Module()
    model.backbone = bb
    SafeCheckpointer(model, str(tmp_path)).save("model_final")
    saved = torch.load(tmp_path / "model_final.pth", weights_only=True)["model"]
    assert set(saved) == {"backbone." + n for n, p in bb.named_parameters() if p.requires_grad}
    fresh = torch.nn.Module()
    fresh.backbone = ViTBackbone("vit_small_patch14_dinov2", model_kwargs=TINY, img_size=64, patch_size=16,
                                 out_indices=(1, 3), out_strides=(8, 16), freeze=True, pretrained=path,
                                 soma=SoMA(rank=4, alpha=4, start_block=2)).eval()  # fmt: skip
    load_weights(fresh, str(tmp_path / "model_final.pth"))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected, got = bb(x), fresh.backbone(x)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-5)


def test_a_recipe_that_adapts_no_layer_is_refused():
    with pytest.raises(ValueError, match="no SoMA target"):
        ViTBackbone("vit_small_patch14_dinov2", model_kwargs=TINY, img_size=64, patch_size=16, out_indices=(3,),
                    out_strides=(16,), freeze=True, soma=SoMA(rank=4, start_block=9))  # fmt: skip
