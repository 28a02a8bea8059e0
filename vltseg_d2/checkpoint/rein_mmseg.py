"""Rein's mmsegmentation checkpoints -> this project's model (official detectron2 names).

Three forms exist, all with the weights under ``state_dict`` (``load_state_dict`` unwraps them):

- the released file (``*_rein_head.pth``, ``iter_40000_published.pth``): ``backbone.reins.*`` and
  the mmdetection Mask2Former head under ``decode_head.*``; the DINOv2 weights come from the
  original DINOv2 file (``model.backbone.pretrained``);
- the full segmentor written by Rein's ``generate_full_weights.py``: the same plus the DINOv2
  weights as ``backbone.<DINOv2 name>`` (kernel already resized to 16, grid to 32x32);
- an mmengine training checkpoint: either of the above plus ``meta``, ``message_hub``,
  ``optimizer`` and ``param_schedulers``, which are ignored.

The mapping is explicit: every key of the released layout (tests/fixtures/rein_mmseg_checkpoint_keys.txt)
has one rule here, and a key no rule matches is an error naming it. Tensors are used as they
are: the Rein module and the head follow the reference conventions (interleaved query pooling,
sine encoding without offset), so no tensor is reordered. The ``backbone.*`` DINOv2 part goes
through the same conversion as ``model.backbone.pretrained`` (``fit_vit_state``).
"""

import re
from typing import Dict, Optional

import torch

from ..modeling.backbone.weights import fit_vit_state

HEAD = "sem_seg_head."
# (pattern, replacement) pairs, tried in order; the first full match wins.
_RULES = [
    (r"backbone\.reins\.(.+)", r"backbone.rein.\1"),
    (
        r"decode_head\.pixel_decoder\.input_convs\.(\d+)\.conv\.(weight|bias)",
        HEAD + r"pixel_decoder.input_proj.\1.0.\2",
    ),
    (r"decode_head\.pixel_decoder\.input_convs\.(\d+)\.gn\.(weight|bias)", HEAD + r"pixel_decoder.input_proj.\1.1.\2"),
    (
        r"decode_head\.pixel_decoder\.encoder\.layers\.(\d+)\.self_attn\.(\w+)\.(weight|bias)",
        HEAD + r"pixel_decoder.transformer.encoder.layers.\1.self_attn.\2.\3",
    ),
    (
        r"decode_head\.pixel_decoder\.encoder\.layers\.(\d+)\.ffn\.layers\.0\.0\.(weight|bias)",
        HEAD + r"pixel_decoder.transformer.encoder.layers.\1.linear1.\2",
    ),
    (
        r"decode_head\.pixel_decoder\.encoder\.layers\.(\d+)\.ffn\.layers\.1\.(weight|bias)",
        HEAD + r"pixel_decoder.transformer.encoder.layers.\1.linear2.\2",
    ),
    (
        r"decode_head\.pixel_decoder\.encoder\.layers\.(\d+)\.norms\.0\.(weight|bias)",
        HEAD + r"pixel_decoder.transformer.encoder.layers.\1.norm1.\2",
    ),
    (
        r"decode_head\.pixel_decoder\.encoder\.layers\.(\d+)\.norms\.1\.(weight|bias)",
        HEAD + r"pixel_decoder.transformer.encoder.layers.\1.norm2.\2",
    ),
    (r"decode_head\.pixel_decoder\.level_encoding\.weight", HEAD + "pixel_decoder.transformer.level_embed"),
    (r"decode_head\.pixel_decoder\.lateral_convs\.0\.conv\.weight", HEAD + "pixel_decoder.adapter_1.weight"),
    (r"decode_head\.pixel_decoder\.lateral_convs\.0\.gn\.(weight|bias)", HEAD + r"pixel_decoder.adapter_1.norm.\1"),
    (r"decode_head\.pixel_decoder\.output_convs\.0\.conv\.weight", HEAD + "pixel_decoder.layer_1.weight"),
    (r"decode_head\.pixel_decoder\.output_convs\.0\.gn\.(weight|bias)", HEAD + r"pixel_decoder.layer_1.norm.\1"),
    (r"decode_head\.pixel_decoder\.mask_feature\.(weight|bias)", HEAD + r"pixel_decoder.mask_features.\1"),
    # mmdetection decoder layer: cross-attn, norms.0, self-attn, norms.1, FFN, norms.2
    (
        r"decode_head\.transformer_decoder\.layers\.(\d+)\.self_attn\.attn\.(.+)",
        HEAD + r"predictor.transformer_self_attention_layers.\1.self_attn.\2",
    ),
    (
        r"decode_head\.transformer_decoder\.layers\.(\d+)\.cross_attn\.attn\.(.+)",
        HEAD + r"predictor.transformer_cross_attention_layers.\1.multihead_attn.\2",
    ),
    (
        r"decode_head\.transformer_decoder\.layers\.(\d+)\.ffn\.layers\.0\.0\.(weight|bias)",
        HEAD + r"predictor.transformer_ffn_layers.\1.linear1.\2",
    ),
    (
        r"decode_head\.transformer_decoder\.layers\.(\d+)\.ffn\.layers\.1\.(weight|bias)",
        HEAD + r"predictor.transformer_ffn_layers.\1.linear2.\2",
    ),
    (
        r"decode_head\.transformer_decoder\.layers\.(\d+)\.norms\.0\.(weight|bias)",
        HEAD + r"predictor.transformer_cross_attention_layers.\1.norm.\2",
    ),
    (
        r"decode_head\.transformer_decoder\.layers\.(\d+)\.norms\.1\.(weight|bias)",
        HEAD + r"predictor.transformer_self_attention_layers.\1.norm.\2",
    ),
    (
        r"decode_head\.transformer_decoder\.layers\.(\d+)\.norms\.2\.(weight|bias)",
        HEAD + r"predictor.transformer_ffn_layers.\1.norm.\2",
    ),
    (r"decode_head\.transformer_decoder\.post_norm\.(weight|bias)", HEAD + r"predictor.decoder_norm.\1"),
    (r"decode_head\.level_embed\.weight", HEAD + "predictor.level_embed.weight"),
    (r"decode_head\.cls_embed\.(weight|bias)", HEAD + r"predictor.class_embed.\1"),
    (r"decode_head\.mask_embed\.0\.(weight|bias)", HEAD + r"predictor.mask_embed.layers.0.\1"),
    (r"decode_head\.mask_embed\.2\.(weight|bias)", HEAD + r"predictor.mask_embed.layers.1.\1"),
    (r"decode_head\.mask_embed\.4\.(weight|bias)", HEAD + r"predictor.mask_embed.layers.2.\1"),
    (r"decode_head\.querys2feat\.(weight|bias)", HEAD + r"predictor.querys2feat.\1"),
    # the plain mmdetection head (SoMA's) learns its queries instead of Rein's querys2feat
    (r"decode_head\.query_embed\.weight", HEAD + "predictor.query_embed.weight"),
    (r"decode_head\.query_feat\.weight", HEAD + "predictor.query_feat.weight"),
]
_COMPILED = [(re.compile(p), r) for p, r in _RULES]


class UnmappedKeyError(KeyError):
    pass


def map_key(key: str) -> str:
    for pattern, replacement in _COMPILED:
        if pattern.fullmatch(key):
            return pattern.sub(replacement, key)
    raise UnmappedKeyError(
        f"no conversion rule for key '{key}' of the Rein checkpoint; "
        "is it a Rein mmsegmentation checkpoint (ViT + LoRA-Reins + Mask2Former head)?"
    )


def is_backbone_weight(key: str) -> bool:
    """A DINOv2 weight of a full segmentor file (``backbone.*`` but not ``backbone.reins.*``)."""
    return key.startswith("backbone.") and not key.startswith("backbone.reins.")


def convert_rein_state_dict(
    state: Dict[str, torch.Tensor], vit: Optional[torch.nn.Module] = None, source: str = "the Rein checkpoint"
) -> Dict[str, torch.Tensor]:
    """A Rein state dict (``state_dict`` wrapper removed or not) -> this model's keys.

    ``vit`` (the model's timm ViT, meta device is enough) is needed only when the file holds the
    DINOv2 weights too (full segmentor form); they become ``backbone.vit.*``.
    """
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    converted = {map_key(k): v for k, v in state.items() if not is_backbone_weight(k)}
    dinov2 = {k[len("backbone.") :]: v for k, v in state.items() if is_backbone_weight(k)}
    if dinov2:
        if vit is None:
            raise ValueError(
                f"{source} holds the DINOv2 backbone too ({len(dinov2)} tensors, e.g. "
                f"backbone.{next(iter(dinov2))}): the model's ViT is needed to convert them"
            )
        converted.update({"backbone.vit." + k: v for k, v in fit_vit_state(dinov2, vit, source).items()})
    return converted
