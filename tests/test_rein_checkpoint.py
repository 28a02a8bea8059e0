"""Rein's released checkpoints give the reference model: values, not only names (issue: fidelity)."""

import importlib.util
import subprocess
import sys

import pytest
import timm
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import LazyConfig, instantiate
from key_fixtures import read_key_shapes
from planted import RunsCode
from pretrained_files import dinov2_state
from rein_released import distinct_tensors, released_rein_shapes
from tiny_models import tiny_model_cfg

from vltseg_d2.checkpoint import UnmappedKeyError, convert_rein_state_dict
from vltseg_d2.checkpoint.rein_mmseg import map_key
from vltseg_d2.modeling.backbone.rein import Reins

# the tiny model of tiny_models.tiny_model_cfg(), in the released layout's terms
TINY_RELEASED = dict(c=64, depth=4, tokens=20, lora=4, q=64, enc_layers=2, enc_ffn=128, dec_layers=3, dec_ffn=128)

# A few rules written out by hand, independently of the converter's table (the decoder layer of
# mmdetection runs cross-attention, self-attention, FFN with norms.0/1/2 after each).
DEC, PIX, PRED = "decode_head.transformer_decoder.layers.", "sem_seg_head.pixel_decoder.", "sem_seg_head.predictor."
HAND_MAPPED = {
    "backbone.reins.merge.weight": "backbone.rein.merge.weight",
    DEC + "1.norms.0.weight": PRED + "transformer_cross_attention_layers.1.norm.weight",
    DEC + "1.norms.1.bias": PRED + "transformer_self_attention_layers.1.norm.bias",
    DEC + "2.cross_attn.attn.in_proj_weight": PRED
    + "transformer_cross_attention_layers.2.multihead_attn.in_proj_weight",
    DEC + "0.ffn.layers.1.weight": PRED + "transformer_ffn_layers.0.linear2.weight",
    "decode_head.pixel_decoder.input_convs.2.gn.bias": PIX + "input_proj.2.1.bias",
    "decode_head.pixel_decoder.encoder.layers.1.ffn.layers.0.0.weight": PIX
    + "transformer.encoder.layers.1.linear1.weight",
    "decode_head.pixel_decoder.level_encoding.weight": PIX + "transformer.level_embed",
    "decode_head.mask_embed.4.bias": PRED + "mask_embed.layers.2.bias",
    "decode_head.cls_embed.weight": PRED + "class_embed.weight",
}


def _load_with_detectron2(model, path):
    """``DetectionCheckpointer.load``, returning the incompatible keys it found."""
    found = {}

    class Recording(DetectionCheckpointer):
        def _load_model(self, checkpoint):
            found["keys"] = super()._load_model(checkpoint)
            return found["keys"]

    Recording(model).load(str(path))
    return found["keys"]


def _converter_main():
    spec = importlib.util.spec_from_file_location("convert_rein_checkpoint", "tools/convert_rein_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _tiny_model():
    torch.manual_seed(0)
    cfg = tiny_model_cfg()
    return instantiate(cfg).eval(), cfg


def _full_segmentor_backbone(model) -> dict:
    """The tiny model's ViT as Rein's generate_full_weights.py stores it: DINOv2's original names
    under ``backbone.``, kernel and grid already at the model's patch 16 / 4 x 4."""
    ref = timm.create_model(
        "vit_small_patch14_dinov2",
        pretrained=False,
        img_size=64,
        patch_size=16,
        num_classes=0,
        embed_dim=64,
        depth=4,
        num_heads=4,
    )
    return {"backbone." + k: v for k, v in dinov2_state(ref).items()}


def test_released_layout_generator_is_the_fixture():
    assert released_rein_shapes() == read_key_shapes("rein_mmseg_checkpoint_keys.txt")


def test_rein_converter_maps_every_released_key_onto_the_full_size_model():
    released = read_key_shapes("rein_mmseg_checkpoint_keys.txt")
    converted = convert_rein_state_dict({"meta": {}, "state_dict": {k: torch.zeros(s) for k, s in released.items()}})
    cfg = LazyConfig.load("configs/common/models/rein_dinov2_l.py").model
    with torch.device("meta"):
        model_shapes = {k: tuple(v.shape) for k, v in instantiate(cfg).state_dict().items()}
    assert len(converted) == 303
    for k, v in converted.items():
        assert model_shapes.get(k) == tuple(v.shape), k
    not_in_file = {k for k in model_shapes if k not in converted}
    assert not_in_file and all(k.startswith("backbone.vit.") for k in not_in_file)  # from the DINOv2 file


def test_rein_converter_rejects_unknown_keys():
    with pytest.raises(UnmappedKeyError, match="decode_head.query_pos.weight"):
        convert_rein_state_dict({"decode_head.query_pos.weight": torch.zeros(100, 256)})


def test_converter_cli_names_an_unmapped_key_and_writes_nothing(tmp_path):
    torch.save({"state_dict": {"decode_head.foo.weight": torch.zeros(1)}}, tmp_path / "bad.pth")
    bad = subprocess.run(
        [sys.executable, "tools/convert_rein_checkpoint.py", str(tmp_path / "bad.pth"), str(tmp_path / "bad_out.pth")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "decode_head.foo.weight" in bad.stderr
    assert not (tmp_path / "bad_out.pth").exists()


def test_hand_written_rules_agree_with_the_converter():
    for source, target in HAND_MAPPED.items():
        assert map_key(source) == target


@pytest.mark.parametrize("form", ["released", "full_segmentor", "mmengine_training"])
def test_converted_model_holds_each_source_tensor_where_the_mapping_names_it(tmp_path, form):
    model, _ = _tiny_model()
    source = distinct_tensors(released_rein_shapes(**TINY_RELEASED))
    if form != "released":
        source.update(_full_segmentor_backbone(model))
    ckpt = {"meta": {"iter": 40000}, "state_dict": source}
    marker = tmp_path / "code_ran"
    if form == "mmengine_training":
        ckpt.update(
            message_hub={"log_scalars": RunsCode(marker), "runtime_info": {"iter": 40000}},
            optimizer={"state": {0: {"exp_avg": torch.ones(3)}}, "param_groups": [{"lr": 1e-4}]},
            param_schedulers=[{"last_step": 40000, "hook": RunsCode(marker)}],
        )
    torch.save(ckpt, tmp_path / "rein.pth")
    _converter_main()(
        [str(tmp_path / "rein.pth"), str(tmp_path / "converted.pth"), "--config-file", "tests/configs/rein_tiny.py"]
    )
    assert not marker.exists()

    incompatible = _load_with_detectron2(model, tmp_path / "converted.pth")
    assert not incompatible.unexpected_keys and not incompatible.incorrect_shapes
    if form == "released":  # the DINOv2 weights come from the original file
        assert incompatible.missing_keys and all(k.startswith("backbone.vit.") for k in incompatible.missing_keys)
    else:
        assert not incompatible.missing_keys

    state = model.state_dict()
    for src, target in HAND_MAPPED.items():
        torch.testing.assert_close(state[target], source[src], rtol=0, atol=0)
    for src, tensor in source.items():
        target = map_key(src) if not src.startswith("backbone.") or src.startswith("backbone.reins.") else None
        if target is not None:
            torch.testing.assert_close(state[target], tensor, rtol=0, atol=0)
    if form != "released":
        for name in (
            "blocks.2.attn.qkv.weight",
            "blocks.3.ls2.gamma",
            "patch_embed.proj.weight",
            "pos_embed",
            "cls_token",
        ):
            torch.testing.assert_close(state["backbone.vit." + name], source["backbone." + name], rtol=0, atol=0)
    # every model tensor came from exactly one source tensor
    for k, v in state.items():
        if k.startswith(("backbone.rein.", "sem_seg_head.")):
            assert sum(t.shape == v.shape and torch.equal(t, v) for t in source.values()) == 1, k


def test_sliding_window_of_the_converted_model_averages_its_window_scores(tmp_path):
    """Whole-image and sliding-window inference with released-layout weights: the slide result is
    the per-pixel average of the scores of each window run on its own."""
    model, _ = _tiny_model()
    converted = convert_rein_state_dict(distinct_tensors(released_rein_shapes(**TINY_RELEASED), seed=3))
    model.load_state_dict(converted, strict=False)
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, 64, 150), generator=g, dtype=torch.uint8)
    model.test_mode, model.test_crop, model.test_stride = "slide", (64, 64), (43, 43)
    slide = model([{"image": image}])[0]["sem_seg"]
    model.test_mode = "whole"
    total, count = torch.zeros(19, 64, 150), torch.zeros(1, 64, 150)
    for x0 in (0, 43, 86):  # windows every 43 px, the last shifted back to end at the border
        total[:, :, x0 : x0 + 64] += model([{"image": image[:, :, x0 : x0 + 64]}])[0]["sem_seg"]
        count[:, :, x0 : x0 + 64] += 1
    torch.testing.assert_close(slide, total / count, rtol=1e-5, atol=1e-6)
    whole = model([{"image": image}])[0]["sem_seg"]
    assert whole.shape == slide.shape == (19, 64, 150) and not torch.allclose(whole, slide)


def test_linked_queries_interleave_max_mean_last_per_channel():
    """Column 3j + k of ``merge`` reads channel j of (k=0) the max over layers, (k=1) the mean,
    (k=2) the last layer; evaluated with explicit loops, not the module's tensor code."""
    torch.manual_seed(0)
    n_layers, m, c, q = 3, 4, 8, 5
    rein = Reins(n_layers, c, patch_size=16, token_length=m, lora_dim=2, query_dims=q)
    with torch.no_grad():
        z = rein.transform(rein.tokens())  # N x m x q
        expected = torch.zeros(m, q)
        for t in range(m):
            for o in range(q):
                acc = rein.merge.bias[o].item()
                for j in range(q):
                    layer_values = [z[i, t, j].item() for i in range(n_layers)]
                    pooled = (max(layer_values), sum(layer_values) / n_layers, layer_values[-1])
                    for k in range(3):
                        acc += rein.merge.weight[o, 3 * j + k].item() * pooled[k]
                expected[t, o] = acc
        torch.testing.assert_close(rein.queries(), expected, rtol=1e-5, atol=1e-5)
        blocks = rein.merge(torch.cat([z.max(0).values, z.mean(0), z[-1]], dim=-1))  # [max | mean | last]
        assert not torch.allclose(blocks, expected, atol=1e-3)
