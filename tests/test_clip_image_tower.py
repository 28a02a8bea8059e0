"""tqdm's EVA02-CLIP image tower: geometry, CLIP embeddings, the frozen initial copy, weights."""

import torch
from pretrained_files import eva_clip_state

from vltseg_d2.modeling.backbone.clip_image import ClipImageTower

TINY = dict(embed_dim=64, depth=4, num_heads=4)


def _tower(seed=0):
    torch.manual_seed(seed)
    return ClipImageTower(model_kwargs=TINY, img_size=56, clip_dim=24, out_indices=(0, 1, 2, 3)).eval()


def test_levels_are_x4_x2_x1_x_half_of_the_grid_and_the_remainder_is_dropped():
    tower = _tower()
    image = torch.randn(1, 3, 60, 60)  # 4 x 4 patches of 14, 4 rows / columns left over
    with torch.no_grad():
        out = tower(image)
        changed = image.clone()
        changed[..., 56:, :], changed[..., :, 56:] = 9.0, 9.0
        again = tower(changed)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "res2": (1, 64, 16, 16), "res3": (1, 64, 8, 8), "res4": (1, 64, 4, 4), "res5": (1, 64, 2, 2),
        "clip_global": (1, 1, 24), "clip_dense": (1, 24, 4, 4),
    }  # fmt: skip
    for key in out:
        assert torch.equal(out[key], again[key]), key  # the dropped pixels play no part


def test_clip_embeddings_are_the_projected_normed_tokens_of_timms_own_forward():
    tower = _tower()
    image = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        out = tower(image)
        tokens = tower.vit.head(tower.vit.forward_features(image))  # timm: blocks, final norm; then CLIP's head
    torch.testing.assert_close(out["clip_global"], tokens[:, :1])
    torch.testing.assert_close(out["clip_dense"], tokens[:, 1:].transpose(1, 2).reshape(2, 24, 4, 4))
    with torch.no_grad():
        x, rope, _ = tower._tokens(tower.vit, image)
        for block in tower.vit.blocks[:3]:
            x = block(x, rope=rope)
    torch.testing.assert_close(out["res4"], x[:, 1:].transpose(1, 2).reshape(2, 64, 4, 4))  # fpn3: identity


def test_the_initial_copy_is_frozen_and_keeps_the_loaded_weights(tmp_path):
    import timm

    ref = timm.create_model("eva02_large_patch14_clip_336", pretrained=False, img_size=56, num_classes=24, **TINY)
    state = eva_clip_state(ref)
    state["visual.head.weight"], state["visual.head.bias"] = ref.head.weight, ref.head.bias  # CLIP's projection
    torch.save({"state_dict": state}, tmp_path / "clip.pt")
    tower = _tower(seed=1)
    tower.load_pretrained(str(tmp_path / "clip.pt"))
    assert torch.equal(tower.vit.head.weight, ref.head.weight)  # CLIP's projection head is loaded, not dropped
    image = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        before = tower(image)["clip_global"]
        tower.vit.blocks[0].mlp.fc2.weight.add_(torch.randn(64, 170))  # training moves the tower ...
        after = tower(image)["clip_global"]
    assert not torch.allclose(before, after)
    torch.testing.assert_close(tower.initial_global(image), before)  # ... the initial copy stays
    assert not any(p.requires_grad for p in tower.initial.parameters())
    assert any(k.startswith("initial.") for k in tower.state_dict())  # saved with the model, as tqdm's reg_E0
