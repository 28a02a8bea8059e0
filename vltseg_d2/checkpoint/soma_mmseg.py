"""SoMA's released checkpoints (github.com/ysj9909/SoMA, v1.0 ``soma_dinov2-L_*_best.pth``) -> this
project's model.

Layout, as SoMA's ``tools/extract_soma_weights.py`` writes it (mmengine, under ``state_dict``):

- ``backbone.model.blocks.<i>.attn.{q,k,v,proj}.lora_{A,B}.weight`` and ``mlp.{fc1,fc2}.lora_*``:
  ``lora_A`` is ``nn.Linear(in, r)`` ([r, in]), ``lora_B`` ``nn.Linear(r, out)`` ([out, r]). Here
  q, k, v become the three row blocks of timm's fused ``attn.qkv`` (``lora_A [3, r, in]``).
- every ``*.bias`` of the backbone (its key filter matches the target names as substrings, so
  frozen blocks' biases, norms and the patch embedding come along): q/k/v biases are concatenated
  into ``qkv.bias``; all land in the model (for frozen ones, the values it was trained with).
- ``backbone.model.mask_token``: DINOv2's masked-image-modelling token, and ``norm.*``, the
  final norm (the head takes blocks 7/11/15/23 before it): unused by segmentation, dropped,
  named in the log.
- the mmdetection Mask2Former head under ``decode_head.*`` (with ``query_embed``/``query_feat``),
  mapped by the Rein converter's rules.
- ``ema_state_dict``: dropped. mmengine's ``EMAHook`` swaps the two when saving, so
  ``state_dict`` holds the EMA weights (what SoMA evaluated, and so the published numbers) and
  ``ema_state_dict`` the raw ones.

SoMA's ``tools/merge_soma_weights.py`` output (the same plus the converted DINOv2 weights,
q/k/v split) is accepted too: its backbone goes through ``fit_vit_state`` like a pretrained file.

The effective weight of a released model is ``W_pretrained + s B A``: its adapters were trained
on the whole pretrained weight (SoMA's code decomposes the random init, see
``modeling/backbone/soma.py``), so the converted file is marked ``soma_init="released"`` and a
model built with ``init="paper"`` (which subtracts an initial product) refuses it.
"""

import logging
import re
from typing import Dict, List, Optional, Tuple

import torch

from ..modeling.backbone.weights import fit_vit_state, unused_reason
from ..utils.safe_load import load_restricted, tensors_of
from .rein_mmseg import map_key

logger = logging.getLogger(__name__)

PREFIX = "backbone.model."
VIT = "backbone.vit."
_LORA = re.compile(r"blocks\.(\d+)\.(attn\.(?:q|k|v|proj)|mlp\.fc1|mlp\.fc2)\.lora_(A|B)\.weight")
_QKV_PART = re.compile(r"(blocks\.\d+\.attn\.)(q|k|v)\.(weight|bias)")


def _fuse_qkv(state: Dict[str, torch.Tensor], source: str) -> Dict[str, torch.Tensor]:
    """SoMA's separate q, k, v (weights or biases) -> timm's ``qkv`` rows, in that order."""
    fused, parts = {}, {}
    for key, value in state.items():
        found = _QKV_PART.fullmatch(key)
        if found:
            parts.setdefault(found.group(1) + "qkv." + found.group(3), {})[found.group(2)] = value
        else:
            fused[key] = value
    for key, got in parts.items():
        if set(got) != {"q", "k", "v"}:
            raise KeyError(f"{source}: {key.replace('qkv', '{q,k,v}')} has only {sorted(got)}; q, k and v are needed")
        fused[key] = torch.cat([got["q"], got["k"], got["v"]])
    return fused


def _lora(state: Dict[str, torch.Tensor], source: str) -> Dict[str, torch.Tensor]:
    """``lora_A``/``lora_B`` Linear weights -> the stacked ``[groups, ...]`` tensors of SoMALinear."""
    stacks: Dict[Tuple[str, str], Dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        block, layer, which = _LORA.fullmatch(key).groups()
        layer, part = ("attn.qkv", layer[-1]) if layer in ("attn.q", "attn.k", "attn.v") else (layer, "")
        stacks.setdefault((f"blocks.{block}.{layer}", which), {})[part] = value
    out = {}
    for (layer, which), got in stacks.items():
        order = ["q", "k", "v"] if layer.endswith("qkv") else [""]
        if set(got) != set(order):
            raise KeyError(f"{source}: {layer} lora_{which} has parts {sorted(got)}, expected {order}")
        out[f"{VIT}{layer}.lora_{which}"] = torch.stack([got[p] for p in order])
    return out


def read_soma_checkpoint(path) -> dict:
    """A SoMA ``.pth`` read tensors-only, as ``{"state_dict": ..., "ema_state_dict": ...}`` (the
    latter only when the file has it), or the flat tensors of a file without those wrappers."""
    flat = tensors_of(load_restricted(path))
    nested = {}
    for wrapper in ("state_dict", "ema_state_dict"):
        inner = {k[len(wrapper) + 1 :]: v for k, v in flat.items() if k.startswith(wrapper + ".")}
        if inner:
            nested[wrapper] = inner
    return nested or flat


def convert_soma_state_dict(
    state: Dict[str, torch.Tensor], vit: Optional[torch.nn.Module] = None, source: str = "the SoMA checkpoint"
) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """A SoMA checkpoint's ``state_dict`` -> (this model's tensors, the dropped keys with reasons).

    ``vit`` (the model's timm ViT; meta device is enough) is needed only when the file holds the
    DINOv2 weights too (the merged form)."""
    dropped = []
    if isinstance(state.get("ema_state_dict"), dict):
        dropped.append("ema_state_dict: the raw (non-averaged) weights; state_dict holds the EMA ones SoMA evaluated")
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    converted, backbone, lora = {}, {}, {}
    for key, value in state.items():
        if key.startswith("decode_head."):
            converted[map_key(key)] = value
        elif not key.startswith(PREFIX):
            raise KeyError(f"{source}: unexpected key '{key}'; is it a SoMA mmsegmentation checkpoint?")
        elif unused_reason(key[len(PREFIX) :]):  # the mask token and final norm, as for pretrained files
            dropped.append(f"{key}: {unused_reason(key[len(PREFIX) :])}")
        elif _LORA.fullmatch(key[len(PREFIX) :]):
            lora[key[len(PREFIX) :]] = value
        else:
            backbone[key[len(PREFIX) :]] = value
    if not lora:
        raise KeyError(f"{source} holds no SoMA adapters (backbone.model.blocks.*.lora_A.weight)")
    converted.update(_lora(lora, source))
    backbone = _fuse_qkv(backbone, source)
    if "patch_embed.proj.weight" in backbone:  # the merged form: the whole converted DINOv2 backbone
        if vit is None:
            raise ValueError(f"{source} holds the DINOv2 backbone too: the model's ViT is needed to convert it")
        backbone = fit_vit_state(backbone, vit, source)
    else:
        weights = [k for k in backbone if not k.endswith(".bias")]
        if weights:
            raise KeyError(f"{source}: backbone weights without the rest of the backbone ({', '.join(weights[:3])})")
    converted.update({VIT + k: v for k, v in backbone.items()})
    for line in dropped:
        logger.info(f"{source}: dropped {line}")
    return converted, dropped
