"""tqdm's checkpoints: a file in its layout (tests/fixtures/tqdm_tiny_checkpoint_keys.txt, written
by tqdm's own model at the demo recipe's widths) converts tensor by tensor into the demo model, and
the recipe's optimizer groups follow mmcv 1.x's custom_keys rule on tqdm's names."""

import subprocess
import sys

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from key_fixtures import read_key_shapes
from rein_released import distinct_tensors

from vltseg_d2.checkpoint import load_weights
from vltseg_d2.checkpoint.tqdm_mmseg import RECIPE, convert_tqdm_state_dict, original_name
from vltseg_d2.engine.optimizer import recipe_param_table

DEMO = "configs/demo/tqdm_tiny_synthetic_cpu.py"


def _tqdm_file(tmp_path):
    source = distinct_tensors(read_key_shapes("tqdm_tiny_checkpoint_keys.txt"), seed=5)
    for key in source:
        if key.endswith("num_batches_tracked"):
            source[key] = torch.tensor(17)
    # an mmcv 1.x runner checkpoint: meta (with its config text) and optimizer beside the weights
    torch.save({"meta": {"iter": 20000, "config": "model = dict(...)"}, "state_dict": source, "optimizer": {}},
               tmp_path / "tqdm.pth")  # fmt: skip
    return source


def _demo_model():
    cfg = LazyConfig.load(DEMO)
    return instantiate(cfg.model)


def test_every_tensor_lands_where_the_layout_says(tmp_path):
    source = _tqdm_file(tmp_path)
    model = _demo_model()
    converted, dropped = convert_tqdm_state_dict(torch.load(tmp_path / "tqdm.pth"), model.backbone.vit)
    pinned = {  # read off tqdm's code: the layers' operation orders and attribute names
        "text_encoder.contexts": "contexts",
        "backbone.vit.blocks.1.attn.q_proj.bias": "backbone.blocks.1.attn.q_bias",
        "backbone.vit.blocks.1.mlp.fc1_g.weight": "backbone.blocks.1.mlp.w1.weight",
        "backbone.initial.blocks.2.attn.norm.weight": "reg_E0.blocks.2.attn.inner_attn_ln.weight",
        "text_encoder.tower.transformer.resblocks.1.attn.in_proj_weight":
            "text_encoder.transformer.resblocks.1.attn.in_proj_weight",
        "sem_seg_head.pixel_decoder.transformer.encoder.layers.1.text_attn.in_proj_weight":
            "decode_head.pixel_decoder.encoder.layers.1.attentions.1.attn.in_proj_weight",
        "sem_seg_head.pixel_decoder.transformer.encoder.layers.1.norm_text.bias":
            "decode_head.pixel_decoder.encoder.layers.1.norms.1.bias",
        "sem_seg_head.pixel_decoder.transformer.encoder.post_norm.weight":
            "decode_head.pixel_decoder.encoder.post_norm.weight",
        "sem_seg_head.predictor.transformer_cross_attention_layers.2.multihead_attn.in_proj_weight":
            "decode_head.transformer_decoder.layers.2.attentions.0.attn.in_proj_weight",
        "sem_seg_head.predictor.transformer_self_attention_layers.2.norm.weight":
            "decode_head.transformer_decoder.layers.2.norms.1.weight",
        "sem_seg_head.predictor.text_proj.2.weight": "decode_head.text_proj.2.weight",
    }  # fmt: skip
    for ours, theirs in pinned.items():
        assert original_name(ours) == theirs
        assert torch.equal(converted[ours], source[theirs]), ours
    for key, tensor in converted.items():  # every converted tensor is its original, unchanged
        assert torch.equal(tensor, source[original_name(key)]), key
    used = {original_name(k) for k in converted}
    left = sorted(set(source) - used)
    assert all(k.startswith("reg_E0.fpn") or "rope.freqs_" in k for k in left), left
    assert len(dropped) == 1 and "reg_E0.fpn1.0.weight" in dropped[0] and "frozen initial copy" in dropped[0]
    own = model.state_dict()
    assert set(converted) == set(own) - {"criterion.empty_weight"} - {k for k in own if "rope" in k}
    assert all(converted[k].shape == own[k].shape for k in converted)


def test_the_converter_tool_writes_a_file_the_model_loads(tmp_path):
    source = _tqdm_file(tmp_path)
    result = subprocess.run(
        [sys.executable, "tools/convert_tqdm_checkpoint.py", str(tmp_path / "tqdm.pth"), str(tmp_path / "out.pth"),
         "--config-file", DEMO],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "dropped 1; 11 tensors, the frozen initial copy's FPN" in result.stdout
    model = _demo_model()
    load_weights(model, str(tmp_path / "out.pth"))
    assert torch.equal(model.gamma.detach(), source["gamma"])
    assert torch.equal(model.sem_seg_head.predictor.class_embed.bias.detach(), source["decode_head.cls_embed.bias"])


def test_a_file_of_another_model_is_refused_by_name(tmp_path):
    torch.save({"state_dict": {"decode_head.conv_seg.weight": torch.zeros(19, 256, 1, 1)}}, tmp_path / "x.pth")
    result = subprocess.run(
        [sys.executable, "tools/convert_tqdm_checkpoint.py", str(tmp_path / "x.pth"), str(tmp_path / "out.pth"),
         "--config-file", DEMO],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "decode_head.conv_seg.weight" in result.stderr and "tqdm checkpoint" in result.stderr
    assert not (tmp_path / "out.pth").exists()


@pytest.fixture(scope="module")
def recipe_groups():
    return recipe_param_table(RECIPE)


@pytest.mark.parametrize(
    "name, lr, decay",
    [
        # 'backbone' (8 letters) is tried before 'norm' (4): the image tower's norms decay, at lr x 0.1
        ("backbone.vit.blocks.3.norm1.weight", 1e-6, 1e-4),
        ("backbone.vit.blocks.3.attn.q_proj.bias", 1e-6, 1e-4),
        ("backbone.vit.pos_embed", 1e-6, 1e-4),
        ("backbone.fpn1.1.weight", 1e-6, 1e-4),
        # tqdm's contexts and gamma sit on the segmentor itself, not under text_encoder
        ("text_encoder.contexts", 1e-5, 1e-4),
        ("gamma", 1e-5, 1e-4),
        # 'norm' in tqdm's name: no decay; its GroupNorms are 'gn' and the context decoder's
        # projection LayerNorms are Sequential indices, so they decay
        ("context_decoder.decoder.0.norm2.weight", 1e-5, 0.0),
        ("context_decoder.memory_proj.0.weight", 1e-5, 1e-4),
        ("sem_seg_head.pixel_decoder.adapter_1.norm.weight", 1e-5, 1e-4),
        ("sem_seg_head.pixel_decoder.transformer.encoder.layers.5.norm_text.bias", 1e-5, 0.0),
        ("sem_seg_head.pixel_decoder.transformer.encoder.post_norm.weight", 1e-5, 0.0),
        ("sem_seg_head.predictor.decoder_norm.weight", 1e-5, 0.0),
        ("sem_seg_head.predictor.query_embed.weight", 1e-5, 1e-4),
        ("sem_seg_head.pixel_decoder.transformer.level_embed", 1e-5, 1e-4),
    ],
)
def test_recipe_groups_follow_mmcv_custom_keys_on_tqdm_names(recipe_groups, name, lr, decay):
    got_lr, got_decay = recipe_groups[name]
    assert got_lr == pytest.approx(lr) and got_decay == pytest.approx(decay)


def test_recipe_trains_neither_text_tower_nor_frozen_copy(recipe_groups):
    assert not [k for k in recipe_groups if k.startswith(("text_encoder.tower.", "backbone.initial."))]
    assert {round(lr, 12) for lr, _ in recipe_groups.values()} == {1e-6, 1e-5}
