#!/usr/bin/env python
"""Run tqdm's original model (github.com/ByeongHyunPak/tqdm) and ours side by side at tiny widths,
with the same weights, and print the largest differences of each output (docs/fidelity.md, tqdm).

tqdm is mmseg 0.x code: it needs mmcv 1.x and mmdet 2.x, which are no dependency of this project.
Run it in a scratch environment that has both and this project's requirements, from a tqdm
checkout, on the CPU:

    pip install "mmcv==1.7.2" mmdet==2.25.3 einops ftfy   # MMCV_WITH_OPS=0: no compiled ops
    python tools/compare_tqdm_reference.py --tqdm-src /path/to/tqdm

What is stood in for, and why it does not change the computation:
- mmcv's compiled ops (``mmcv._ext``) are not built: every symbol exists and raises if called.
  On the CPU mmcv's deformable attention runs its pure-PyTorch path, never the extension.
- tqdm's segmentor puts its token tensors on ``cuda``; on a CPU machine ``.to('cuda')`` is
  answered with the CPU while it is built.
- tqdm's mmseg and mmdet 2.25 accept mmcv <= 1.5.3 / 1.7.0 by an assertion; lift it with
  ``--allow-newer-mmcv`` when running 1.7.2 (the transformer bricks used are unchanged).
- the training points of the mask losses are random in both codes, drawn in another order
  (mmdet walks the decoder layers first to last, detectron2 the last first), so for the loss
  comparison both sides get the same fixed points for every layer; the attention dropout of the
  context decoder (0.1) is set to 0 so that no other random draw differs.

The weights: tqdm's model is built with its own initialisation, then (after its image tower is
perturbed, so that the vision regulariser is not trivially 0) converted by our converter
(``vltseg_d2.checkpoint.tqdm_mmseg``) into ours: the comparison also checks the converter on
tqdm's real layout.
"""

import vltseg_d2  # noqa: F401  (first: it silences detectron2's import-time torch.jit warnings)

# isort: split

import contextlib
import json
import os
import sys
import tempfile
import types
from pathlib import Path

import torch

from vltseg_d2.config.cli import tool_parser
from vltseg_d2.data.datasets.classes import CLASS_NAMES

TINY_CLIP = {
    "embed_dim": 64,
    "vision_cfg": dict(image_size=224, layers=4, width=128, drop_path_rate=0, head_width=64, mlp_ratio=2.6667,
                       patch_size=14, eva_model_name="eva-clip-l-14-336", xattn=False, fusedLN=False, rope=True,
                       pt_hw_seq_len=16, intp_freq=True, naiveswiglu=True, subln=True),
    "text_cfg": dict(context_length=77, vocab_size=49408, width=64, heads=4, layers=2, xattn=False, fusedLN=False),
}  # fmt: skip
SIZE = 224


def _stub_mmcv_ext():
    class _Ext(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)

            def missing(*args, **kwargs):
                raise RuntimeError(f"mmcv._ext.{name} is not built (CPU run)")

            return missing

    sys.modules["mmcv._ext"] = _Ext("mmcv._ext")


@contextlib.contextmanager
def _cuda_is_cpu():
    original = torch.Tensor.to

    def to(self, *args, **kwargs):
        args = tuple("cpu" if a == "cuda" else a for a in args)
        if kwargs.get("device") == "cuda":
            kwargs["device"] = "cpu"
        return original(self, *args, **kwargs)

    torch.Tensor.to, real_arange = to, torch.arange
    torch.arange = lambda *a, **k: real_arange(*a, **{**k, "device": "cpu"} if k.get("device") == "cuda" else k)
    try:
        yield
    finally:
        torch.Tensor.to, torch.arange = original, real_arange


def build_reference(tqdm_src: Path, allow_newer_mmcv: bool):
    _stub_mmcv_ext()
    sys.path.insert(0, str(tqdm_src))
    import mmcv

    if allow_newer_mmcv:  # both version checks read mmcv.__version__ when imported
        mmcv.__version__ = "1.5.3"
    import models  # noqa: F401  (registers tqdm_EVA_CLIP and its heads)
    from mmcv import Config
    from mmseg.models import builder
    from models.backbones.eva_clip import add_model_config

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "EVA02-CLIP-tiny.json").write_text(json.dumps(TINY_CLIP))
        add_model_config(tmp)
    cfg = Config.fromfile(str(tqdm_src / "configs/tqdm/tqdm_eva_vit-l_1e-5_20k-g2c-512.py"))
    m = cfg.model
    m.class_names = list(CLASS_NAMES)  # the order of tqdm's CityscapesDataset.CLASSES
    m.token_embed_dim = m.text_dim = 64
    m.eva_clip.update(model_name="EVA02-CLIP-tiny", pretrained=None, image_size=SIZE, out_indices=[0, 1, 2, 3],
                      xattn=False, device="cpu")  # fmt: skip
    m.context_decoder.update(transformer_width=32, transformer_heads=4, transformer_layers=1, visual_dim=64,
                             outdim=64, dropout=0.0)  # fmt: skip
    h = m.decode_head
    h.update(
        in_channels=[TINY_CLIP["vision_cfg"]["width"]] * 4,
        feat_channels=64,
        out_channels=64,
        text_proj=dict(text_in_dim=64, text_out_dim=64),
    )
    layer = h.pixel_decoder.encoder.transformerlayers
    h.pixel_decoder.encoder.num_layers = 2
    for attn in layer.attn_cfgs:
        attn.update(embed_dims=64, num_heads=4)
    layer.ffn_cfgs.update(embed_dims=64, feedforward_channels=128)
    layer.feedforward_channels = 128  # mmcv 1.x: this deprecated key overrides ffn_cfgs (2048 in tqdm's config)
    h.pixel_decoder.positional_encoding.num_feats = 32
    h.positional_encoding.num_feats = 32
    h.transformer_decoder.num_layers = 3
    h.transformer_decoder.transformerlayers.attn_cfgs.update(embed_dims=64, num_heads=4)
    h.transformer_decoder.transformerlayers.ffn_cfgs.update(embed_dims=64, feedforward_channels=128)
    h.transformer_decoder.transformerlayers.feedforward_channels = 128
    with _cuda_is_cpu():
        return builder.build_segmentor(m, train_cfg=cfg.get("train_cfg"), test_cfg=cfg.get("test_cfg"))


def build_ours():
    from detectron2.config import LazyConfig, instantiate

    cfg = LazyConfig.load("configs/demo/tqdm_tiny_synthetic_cpu.py")
    cfg.model.backbone.update(model_kwargs=dict(embed_dim=128, depth=4, num_heads=2), img_size=SIZE, clip_dim=64)
    cfg.model.sem_seg_head.pixel_decoder.in_channels = 128
    cfg.model.context_decoder.dropout = 0.0
    cfg.model.criterion.num_points = 12544
    return instantiate(cfg.model)


def _diff(a, b):
    a, b = a.detach().double(), b.detach().double()
    assert a.numel() == b.numel(), (a.shape, b.shape)
    a, b = a.reshape(b.shape), b  # a loss is a scalar here, a 1-element tensor in mmseg
    return float((a - b).abs().max()), float(b.abs().max())


def fixed_points(k, num_points):
    g = torch.Generator().manual_seed(0)
    return torch.rand(k, num_points, 2, generator=g)


def compare(tqdm_src: Path, allow_newer_mmcv: bool) -> dict:
    from vltseg_d2.checkpoint.tqdm_mmseg import convert_tqdm_state_dict
    from vltseg_d2.data.mapper import per_class_instances

    torch.manual_seed(0)
    ref = build_reference(tqdm_src, allow_newer_mmcv)
    with torch.no_grad():  # move the image tower away from its frozen copy (the vision regulariser)
        for p in ref.backbone.parameters():
            p.add_(0.02 * torch.randn_like(p))
    ours = build_ours()
    state, dropped = convert_tqdm_state_dict(ref.state_dict(), ours.backbone.vit, "tqdm's tiny model")
    missing, unexpected = ours.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]  # mmcv 1.x keeps it too
    assert not missing and not unexpected, (missing, unexpected)
    ref.eval(), ours.eval()

    g = torch.Generator().manual_seed(1)
    image = torch.randint(0, 256, (3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    labels = (
        torch.randint(0, 19, (SIZE // 16, SIZE // 16), generator=g).repeat_interleave(16, 0).repeat_interleave(16, 1)
    )
    labels[:20, :20] = 255
    normed = ours._normalize(image)[None]
    meta = [dict(img_shape=(SIZE, SIZE, 3), ori_shape=(SIZE, SIZE, 3), pad_shape=(SIZE, SIZE, 3), flip=False)]
    out = {"dropped": dropped}
    with torch.no_grad():
        x = ref.extract_feat(normed)
        x_orig, score_ref, text_ref, global_ref = ref.after_extract_feat(x)
        feats, text, score = ours._text_and_features(normed)
        for i, name in enumerate(("res2", "res3", "res4", "res5")):
            out[f"feature {name}"] = _diff(feats[name], x_orig[i])
        out["global embedding"] = _diff(feats["clip_global"], global_ref)
        out["dense embedding"] = _diff(feats["clip_dense"], x[-1][1])
        out["text embeddings (with context decoder)"] = _diff(text, text_ref)
        out["score map"] = _diff(score, score_ref)
        cls_ref, masks_ref = ref.decode_head(x_orig, text_ref, meta)
        head = ours.sem_seg_head(feats, queries=text, texts=text)
        out["class logits (last layer)"] = _diff(head["pred_logits"], cls_ref[-1])
        out["mask logits (last layer)"] = _diff(head["pred_masks"], masks_ref[-1])
        out["segmentation scores"] = _diff(ours.predict_scores(normed), ref.encode_decode(normed, meta))

    ref.train(), ours.train()
    import mmseg.models.decode_heads.tqdm_head as ref_head

    import vltseg_d2.modeling.criterion as our_criterion

    ref_head.get_uncertain_point_coords_with_randomness = lambda m, lab, n, o, i: fixed_points(m.shape[0], n)
    our_criterion.uncertain_point_coords = lambda m, n, o, i: fixed_points(m.shape[0], n)
    inst = per_class_instances(labels)
    ref_losses = ref.forward_train(normed, meta, labels[None, None], gt_labels=[inst.gt_classes],
                                   gt_masks=[inst.gt_masks.long()])  # fmt: skip
    record = {"image": image, "instances": inst, "sem_seg": labels, "height": SIZE, "width": SIZE}
    our_losses = ours([record])
    pairs = {
        "loss class (last layer)": ("loss_ce", "decode.loss_cls"),
        "loss mask (last layer)": ("loss_mask", "decode.loss_mask"),
        "loss dice (last layer)": ("loss_dice", "decode.loss_dice"),
        "loss class (first prediction)": ("loss_ce_0", "decode.d0.loss_cls"),
        "loss mask (layer 1)": ("loss_mask_1", "decode.d1.loss_mask"),
        "regulariser language": ("loss_reg_language", "reg.textual.loss"),
        "regulariser vision": ("loss_reg_vision", "reg.visual.loss"),
        "regulariser vision-language": ("loss_score_map", "scr_map.loss_seg"),
    }
    for name, (mine, theirs) in pairs.items():
        out[name] = _diff(our_losses[mine], ref_losses[theirs])
    return out


def main(argv=None):
    parser = tool_parser(__doc__)
    parser.add_argument("--tqdm-src", type=Path, required=True, help="a checkout of github.com/ByeongHyunPak/tqdm")
    parser.add_argument("--allow-newer-mmcv", action="store_true", help="lift tqdm's mmcv <= 1.5.3 assertion")
    parser.add_argument("--json", type=Path, default=None, help="also write the differences here")
    args = parser.parse_args(argv)
    os.environ.setdefault("RoPE", "1")
    result = compare(args.tqdm_src.resolve(), args.allow_newer_mmcv)
    for name, value in result.items():
        if name != "dropped":
            print(f"{name:45s} max |ours - tqdm| {value[0]:.3g}   (max |tqdm| {value[1]:.3g})")
    print("dropped by the converter:", "; ".join(result["dropped"]) or "nothing")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
