"""tqdm's checkpoints (github.com/ByeongHyunPak/tqdm, mmseg 0.x / mmcv 1.x) <-> this project's names.

The released files (its README's EVA02-CLIP-L GTA5 and Cityscapes models) are mmcv 1.x runner
checkpoints: the weights under ``state_dict``, plus ``meta`` and ``optimizer``, ignored here.
Their parts, by the attribute names of ``tqdm_EVA_CLIP`` (``models/segmentors/tqdm_eva_clip.py``):

- ``backbone.*``: EVA-CLIP's visual tower (``eva_vit_model.py`` names: ``q_bias``, ``mlp.w1``,
  ``inner_attn_ln`` ...) plus ``fpn1``/``fpn2``; converted to timm's names by timm's own EVA filter
  (``fit_vit_state``), the FPN as it is;
- ``reg_E0.*``: the frozen copy of the initial tower (vision regulariser); its ViT part becomes
  ``backbone.initial``, its FPN is dropped (the regulariser reads only the global embedding);
- ``text_encoder.*``: EVA-CLIP's text tower (open_clip's names), frozen;
- ``contexts``, ``gamma``, ``context_decoder.*``: the learned context, DenseCLIP's decoder and its
  scale, under the same names here;
- ``decode_head.*``: mmcv 1.x layers. In the pixel decoder each encoder layer runs
  (deformable self-attention, norm, text cross-attention, norm, FFN, norm), so ``attentions.0`` /
  ``norms.0`` are the deformable attention and ``norm1``, ``attentions.1`` / ``norms.1`` the text
  attention and ``norm_text``, ``norms.2`` the FFN's ``norm2``. In the decoder each layer runs
  (cross-attention, norm, self-attention, norm, FFN, norm): ``attentions.0`` is the
  cross-attention, ``attentions.1`` the self-attention.

Every rule is a pair of templates, so a name maps both ways: :func:`original_name` gives a
parameter's name in tqdm's model, which its optimizer rule reads (``engine/optimizer.py``).
"""

import re
from typing import Dict, List, Optional, Tuple

import torch

from ..modeling.backbone.weights import fit_vit_state
from .rein_mmseg import UnmappedKeyError

PD, DEC = "decode_head.pixel_decoder.", "decode_head.transformer_decoder.layers.{i}."
HEAD = "sem_seg_head."
OURS_PD, OURS_DEC = HEAD + "pixel_decoder.", HEAD + "predictor."
ENC = PD + "encoder.layers.{i}."
OURS_ENC = OURS_PD + "transformer.encoder.layers.{i}."
WB = "{wb}"  # weight or bias
# the config whose image tower a file's EVA-CLIP towers are fitted to unless another is named
RECIPE = "configs/tqdm/tqdm_eva02_l_gta2cbm_512_bs8_20k.py"


def _norms_and_ffn(theirs: str, norms, ours_ffn: str) -> List[Tuple[str, str]]:
    """An mmcv 1.x ``BaseTransformerLayer``'s ``norms.k`` (in operation order) and its FFN's two
    linears (``ffns.0.layers.0.0``, ``ffns.0.layers.1``) -> ours (``norms[k]``, ``linear1``/``linear2``)."""
    rules = [(f"{theirs}norms.{k}.{WB}", ours + WB) for k, ours in enumerate(norms)]
    return rules + [(theirs + "ffns.0.layers.0.0." + WB, ours_ffn + "linear1." + WB),
                    (theirs + "ffns.0.layers.1." + WB, ours_ffn + "linear2." + WB)]  # fmt: skip


# (tqdm's name, this project's name); {i} a layer index, {wb} weight|bias, {rest} any tail
TEMPLATES: List[Tuple[str, str]] = [
    ("contexts", "text_encoder.contexts"),
    ("gamma", "gamma"),
    ("context_decoder.{rest}", "context_decoder.{rest}"),
    ("text_encoder.{rest}", "text_encoder.tower.{rest}"),
    ("backbone.fpn1.{rest}", "backbone.fpn1.{rest}"),
    ("backbone.fpn2.{rest}", "backbone.fpn2.{rest}"),
    # pixel decoder
    (PD + "input_convs.{i}.conv." + WB, OURS_PD + "input_proj.{i}.0." + WB),
    (PD + "input_convs.{i}.gn." + WB, OURS_PD + "input_proj.{i}.1." + WB),
    (ENC + "attentions.0.{rest}", OURS_ENC + "self_attn.{rest}"),
    (ENC + "attentions.1.attn.{rest}", OURS_ENC + "text_attn.{rest}"),
    *_norms_and_ffn(ENC, [OURS_ENC + n for n in ("norm1.", "norm_text.", "norm2.")], OURS_ENC),
    (PD + "encoder.post_norm." + WB, OURS_PD + "transformer.encoder.post_norm." + WB),
    (PD + "level_encoding.weight", OURS_PD + "transformer.level_embed"),
    (PD + "lateral_convs.0.conv.weight", OURS_PD + "adapter_1.weight"),
    (PD + "lateral_convs.0.gn." + WB, OURS_PD + "adapter_1.norm." + WB),
    (PD + "output_convs.0.conv.weight", OURS_PD + "layer_1.weight"),
    (PD + "output_convs.0.gn." + WB, OURS_PD + "layer_1.norm." + WB),
    (PD + "mask_feature." + WB, OURS_PD + "mask_features." + WB),
    (PD + "text_proj." + WB, OURS_PD + "text_proj." + WB),
    (PD + "text_pos_embed.weight", OURS_PD + "text_pos_embed.weight"),
    # transformer decoder
    (DEC + "attentions.0.attn.{rest}", OURS_DEC + "transformer_cross_attention_layers.{i}.multihead_attn.{rest}"),
    (DEC + "attentions.1.attn.{rest}", OURS_DEC + "transformer_self_attention_layers.{i}.self_attn.{rest}"),
    *_norms_and_ffn(
        DEC,
        [OURS_DEC + f"transformer_{kind}_layers.{{i}}.norm." for kind in ("cross_attention", "self_attention", "ffn")],
        OURS_DEC + "transformer_ffn_layers.{i}.",
    ),
    ("decode_head.transformer_decoder.post_norm." + WB, OURS_DEC + "decoder_norm." + WB),
    ("decode_head.query_embed.weight", OURS_DEC + "query_embed.weight"),
    ("decode_head.text_proj.{i}." + WB, OURS_DEC + "text_proj.{i}." + WB),
    ("decode_head.level_embed.weight", OURS_DEC + "level_embed.weight"),
    ("decode_head.cls_embed." + WB, OURS_DEC + "class_embed." + WB),
    ("decode_head.mask_embed.0." + WB, OURS_DEC + "mask_embed.layers.0." + WB),
    ("decode_head.mask_embed.2." + WB, OURS_DEC + "mask_embed.layers.1." + WB),
    ("decode_head.mask_embed.4." + WB, OURS_DEC + "mask_embed.layers.2." + WB),
]
# EVA-CLIP's visual names -> timm's (timm.models.eva.checkpoint_filter_fn's renames), for the way back
_EVA_TO_TIMM = (
    ("mlp.ffn_ln", "mlp.norm"),
    ("attn.inner_attn_ln", "attn.norm"),
    ("mlp.w1", "mlp.fc1_g"),
    ("mlp.w2", "mlp.fc1_x"),
    ("mlp.w3", "mlp.fc2"),
    ("q_bias", "q_proj.bias"),
    ("v_bias", "v_proj.bias"),
)
_FIELDS = {"i": r"(?P<i>\d+)", "wb": r"(?P<wb>weight|bias)", "rest": r"(?P<rest>.+)"}
# (why, pattern) of the file's tensors that have no place in the model
DROPPED = (
    ("the frozen initial copy's FPN (the vision regulariser reads only the global embedding)", r"reg_E0\.fpn\d\..+"),
)


def _compile(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", template)  # literal, field, literal, field, ...
    return re.compile("".join(re.escape(p) if k % 2 == 0 else _FIELDS[p] for k, p in enumerate(parts)))


_FORWARD = [(_compile(theirs), ours) for theirs, ours in TEMPLATES]
_BACKWARD = [(_compile(ours), theirs) for theirs, ours in TEMPLATES]


def _apply(rules, key: str) -> Optional[str]:
    for pattern, template in rules:
        found = pattern.fullmatch(key)
        if found:
            return template.format(**found.groupdict())
    return None


def original_name(name: str) -> str:
    """A parameter's name in tqdm's model (the inverse of the conversion)."""
    for ours, theirs in (("backbone.vit.", "backbone."), ("backbone.initial.", "reg_E0.")):
        if name.startswith(ours):
            tail = name[len(ours) :]
            for eva, timm_name in _EVA_TO_TIMM:
                tail = tail.replace(timm_name, eva)
            return theirs + tail
    mapped = _apply(_BACKWARD, name)
    if mapped is None:
        raise UnmappedKeyError(f"parameter '{name}' has no counterpart in tqdm's model")
    return mapped


def _is_tower(key: str, prefix: str) -> bool:
    return key.startswith(prefix) and not re.match(re.escape(prefix) + r"fpn\d\.", key)


def convert_tqdm_state_dict(
    state: Dict[str, torch.Tensor], vit: torch.nn.Module, source: str = "the tqdm checkpoint"
) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """tqdm's state dict (``state_dict`` wrapper removed or not) -> (this model's keys, one line per
    reason naming the dropped entries). ``vit`` is the model's timm tower (meta device is enough);
    EVA's fixed rotary tables are dropped by ``fit_vit_state``, which logs them."""
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    converted, dropped = {}, {}
    for prefix, ours in (("backbone.", "backbone.vit."), ("reg_E0.", "backbone.initial.")):
        tower = {k[len(prefix) :]: v for k, v in state.items() if _is_tower(k, prefix)}
        if tower:
            converted.update({ours + k: v for k, v in fit_vit_state(tower, vit, f"{source} ({prefix}*)").items()})
    for key, value in state.items():
        if _is_tower(key, "backbone.") or _is_tower(key, "reg_E0."):
            continue
        why = next((why for why, pattern in DROPPED if re.fullmatch(pattern, key)), None)
        if why is not None:
            dropped.setdefault(why, []).append(key)
            continue
        mapped = _apply(_FORWARD, key)
        if mapped is None:
            raise UnmappedKeyError(
                f"no conversion rule for key '{key}' of {source}; is it a tqdm checkpoint (EVA-CLIP + tqdmHead)?"
            )
        converted[mapped] = value
    return converted, [f"{len(keys)} tensors, {why}: {', '.join(keys)}" for why, keys in dropped.items()]
