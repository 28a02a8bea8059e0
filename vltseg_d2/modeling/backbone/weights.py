"""Load original released ViT files into a :class:`ViTBackbone`'s timm model.

Sources: a local file, or a Hugging Face hub model id (``timm/vit_large_patch14_dinov2.lvd142m``,
``hf-hub:timm/eva02_large_patch14_clip_224.merged2b``) fetched through ``huggingface_hub`` into its
cache (``HF_HUB_CACHE``; ``HF_HUB_OFFLINE=1`` uses only the cache). ``.safetensors`` files are read
with timm's ``load_state_dict``, ``.pth``/``.pt`` files as tensors only.

Handles EVA-CLIP's ``EVA02_CLIP_L_psz14_s4B.pt`` (vision tower under ``visual.``, separate q/k/v),
DINOv2's ``dinov2_vitl14_pretrain.pth`` (with or without registers), timm and open_clip state dicts.
Key conversion is timm's own ``checkpoint_filter_fn``; before it, the patch kernel and the
absolute position embedding are resized to the model:

- ``patch_resample="bicubic"`` (default): the Rein recipe, plain bicubic interpolation of the
  kernel (14 -> 16) and of the position grid (e.g. 37x37 -> 32x32, prefix tokens kept). Rein's
  released heads were trained on a backbone prepared this way.
- ``patch_resample="timm"``: timm's pseudo-inverse kernel resampling (a fine choice for new training).

A checkpoint that does not fit the model (a tensor of another shape, or model weights it lacks)
raises :class:`WeightsMismatchError` naming the keys, instead of loading partially.

Every tensor of the file lands in the model or is named in the log as dropped, with the reason
(:data:`UNUSED`: CLIP's text tower and projection, the final norm and heads, the pre-training
mask token, rotary tables timm recomputes). A dropped tensor no rule explains must be all zeros
(e.g. the zero q/v biases of DINOv3's distilled ViT-L, which timm's ``vit_large_patch16_dinov3``
has no parameter for); otherwise loading fails naming it, since the features would silently
differ from the original model's. DINOv3's ``rope_embed.periods`` (stored in bfloat16 and used as
stored by Meta's model; timm recomputes them in float32, 3e-4 away in the features) are loaded
into the model's ``rope.periods``, which the backbone keeps in its state.
"""

import hashlib
import logging
import math
import os
import re

import torch
import torch.nn.functional as F
from timm.models import load_state_dict as timm_load_state_dict
from timm.models.eva import checkpoint_filter_fn as eva_filter
from timm.models.vision_transformer import checkpoint_filter_fn as vit_filter

from ...utils.safe_load import CheckpointError, load_tensor_checkpoint
from ...utils.tensor_fit import misfits
from .soma import adapter_keys

logger = logging.getLogger(__name__)

_WRAPPERS = ("model_ema", "model", "module", "state_dict")


class WeightsMismatchError(CheckpointError):
    pass


HUB_FILES = ("model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def resolve_source(source: str) -> str:
    """A local path, or the cached download of a hub model id; raises naming what was tried."""
    if os.path.exists(source):
        return source
    repo = source[len("hf-hub:") :] if source.startswith("hf-hub:") else source
    if (
        repo.count("/") != 1
        or repo.startswith((".", "/"))
        or os.path.splitext(repo)[1] in (".pth", ".pt", ".bin", ".safetensors")
    ):
        raise FileNotFoundError(
            f"pretrained file {source} does not exist (set the path in the config, "
            "e.g. model.backbone.pretrained=/path/to/file, or a hub id like timm/vit_large_patch14_dinov2.lvd142m)"
        )
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    errors = []
    for filename in HUB_FILES:
        try:
            return hf_hub_download(repo, filename)
        except (LocalEntryNotFoundError, OSError) as e:  # offline and not cached, or no network
            errors.append(f"{filename}: {type(e).__name__}")
        except EntryNotFoundError:  # the repo has no such file: try the next name
            continue
    raise FileNotFoundError(
        f"cannot get {source} from the Hugging Face hub or its cache ({'; '.join(errors) or 'no weights file'}); "
        "download it once with network access, or give a local file"
    )


def _read_safetensors(path) -> dict:
    try:
        return timm_load_state_dict(path)
    except Exception as e:  # safetensors' header and bounds checks: a broken or flattened header, short data
        raise WeightsMismatchError(
            f"{path} is not a readable safetensors file ({type(e).__name__}: {str(e).splitlines()[0][:160]})"
        ) from None


def read_checkpoint(path) -> dict:
    """The tensors of a local file or hub id, with the usual wrapper keys removed."""
    try:
        path = resolve_source(str(path))
        state = _read_safetensors(path) if path.endswith(".safetensors") else load_tensor_checkpoint(path)
    except CheckpointError as e:
        raise WeightsMismatchError(str(e)) from None
    for key in _WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def _find(state: dict, suffix: str):
    keys = [k for k in state if k == suffix or k.endswith("." + suffix)]
    return keys[0] if keys else None


def _bicubic_resize(state: dict, vit):
    """The Rein recipe's preparation: plain bicubic resizing of kernel and position grid."""
    state = dict(state)
    k = _find(state, "patch_embed.proj.weight")
    target = tuple(vit.patch_embed.proj.weight.shape[-2:])
    if k is not None and state[k].ndim == 4 and tuple(state[k].shape[-2:]) != target:
        state[k] = F.interpolate(state[k].float(), size=target, mode="bicubic", align_corners=False).to(state[k].dtype)
    k = _find(state, "pos_embed")
    if k is not None and getattr(vit, "pos_embed", None) is not None:
        pos = state[k]
        n = pos.shape[1]
        prefix = next((p for p in (0, 1) if math.isqrt(n - p) ** 2 == n - p), None)
        grid = tuple(vit.patch_embed.grid_size)
        side = math.isqrt(n - prefix) if prefix is not None else None
        if side is not None and (side, side) != grid:
            tokens = pos[:, prefix:].reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
            tokens = F.interpolate(tokens, size=grid, mode="bicubic", align_corners=False)
            tokens = tokens.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1).to(pos.dtype)
            state[k] = torch.cat([pos[:, :prefix], tokens], dim=1)
    return state


def convert_to_timm(state: dict, vit, patch_resample: str = "bicubic") -> dict:
    """An original or timm/open_clip state dict -> keys and shapes of the timm model ``vit``."""
    if patch_resample not in ("bicubic", "timm"):
        raise ValueError(f"patch_resample must be 'bicubic' or 'timm', not {patch_resample!r}")
    if patch_resample == "bicubic":
        state = _bicubic_resize(state, vit)
    is_eva = hasattr(vit, "rope")
    return eva_filter(state, vit) if is_eva else vit_filter(state, vit)


# (pattern on the file's key, why the backbone does not use it)
UNUSED = (
    (r"(^|\.)mask_token$", "the masked-image-modelling token of the pre-training"),
    (r"^(visual\.)?(trunk\.)?(norm|fc_norm|head|lm_head|head_drop)\.", "the final norm / head (levels come before)"),
    (r"^(visual\.)?(proj|logit_scale)$", "CLIP's image-text projection"),
    (r"rope\.freqs_(cos|sin)$", "EVA's fixed rotary tables, recomputed by timm for the model's grid"),
    (r"\.bias_mask$", "DINOv3's constant mask of the k bias"),
    (r"^(local_cls_norm|projectors)\.", "DINOv3-7B / EUPE pre-training heads"),
)
PERIODS = "rope_embed.periods"


def unused_reason(key: str):
    """Why a pretrained file's tensor ``key`` has no place in the backbone (:data:`UNUSED`), or None."""
    return next((why for pattern, why in UNUSED if re.search(pattern, key)), None)


def _landed(original: dict, fitted: dict) -> set:
    """Keys of ``original`` whose tensor reached ``fitted``: the same storage (timm's renames and
    splits are views), or the same name (tensors resized or recombined on the way)."""
    storages = {t.untyped_storage().data_ptr() for t in fitted.values() if t.device.type != "meta"}
    names = set(fitted)
    return {
        k
        for k, t in original.items()
        if t.untyped_storage().data_ptr() in storages or k in names or k.split(".", 1)[-1] in names
    }


def _account_for_dropped(original: dict, fitted: dict, source, clip_text: bool):
    """Name every tensor of the file that did not land, with its reason; refuse unexplained ones
    that are not all zeros."""
    reasons, refused = {}, []
    for key in sorted(original.keys() - _landed(original, fitted) - {PERIODS}):
        reason = unused_reason(key)
        if reason is None and clip_text and not key.startswith("visual."):
            reason = "CLIP's text tower, not part of the image backbone"
        tensor = original[key]
        if reason is None and key.endswith("attn.qkv.bias"):  # Meta masks the k part: q and v must be 0
            q, _, v = tensor.float().chunk(3)
            reason = "DINOv3's q/v biases, all zero" if not (q.any() or v.any()) else None
        elif reason is None and not tensor.float().any():
            reason = "all zeros"
        if reason is None:
            refused.append(key)
        else:
            reasons.setdefault(reason, []).append(key)
    if refused:
        hint = (
            " (DINOv3 with q/v biases: use model.backbone.model_name=vit_large_patch16_dinov3_qkvb)"
            if any(k.endswith("qkv.bias") for k in refused)
            else ""
        )
        raise WeightsMismatchError(
            f"{source}: {len(refused)} non-zero tensors the model has no place for ({', '.join(refused[:5])})"
            f"{hint}: the features would differ from the original model's"
        )
    for reason, keys in reasons.items():
        shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
        logger.info(f"{source}: dropped {len(keys)} tensors ({reason}): {shown}")


def fit_vit_state(state: dict, vit, source, patch_resample: str = "bicubic") -> dict:
    """Convert an original/timm/open_clip state dict to exactly the tensors of the timm model
    ``vit``; raise :class:`WeightsMismatchError` naming ``source`` if it is a file of another model.
    ``vit`` may live on the meta device: only its key names and shapes are read."""
    original = dict(state)
    state = convert_to_timm(state, vit, patch_resample)
    own = vit.state_dict()
    if "rope.periods" in own:  # DINOv3: timm's filter drops the file's periods and recomputes them in float32
        periods = original.get(PERIODS)
        if periods is None:  # timm-format files have none: timm's own values (computed on the CPU)
            periods = vit.rope._compute_periods()
        state["rope.periods"] = periods.to(own["rope.periods"].dtype)
    own = {k: v for k, v in own.items() if k not in adapter_keys(own)}  # SoMA adapters are not in the file
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    wrong_shape = misfits(own, state, "file")
    if missing or wrong_shape:
        raise WeightsMismatchError(
            f"{source} does not fit {type(vit).__name__} (width {vit.embed_dim}, depth {len(vit.blocks)}): "
            + (
                f"{len(wrong_shape)} tensors of another shape or kind of number ({'; '.join(wrong_shape[:5])}) "
                if wrong_shape
                else ""
            )
            + (f"{len(missing)} model weights absent from the file ({', '.join(missing[:5])}) " if missing else "")
            + "- check model_name, model_kwargs and patch_size against the file."
        )
    fitted = {k: state[k] for k in own}
    if unexpected:  # converted names the model lacks: they did not land, so they are accounted for below
        logger.debug(f"{source}: {len(unexpected)} converted keys the backbone does not use: {', '.join(unexpected)}")
    _account_for_dropped(original, fitted, source, clip_text=any(k.startswith("visual.") for k in original))
    return fitted


def load_vit_weights(backbone, path, patch_resample: str = "bicubic") -> int:
    """Load ``path`` (a file or hub id) into ``backbone.vit``; raise if it is a checkpoint of
    another model. Returns the number of tensors loaded."""
    fitted = fit_vit_state(read_checkpoint(path), backbone.vit, path, patch_resample)
    missing, unexpected = backbone.vit.load_state_dict(fitted, strict=False)
    assert not unexpected and set(missing) == adapter_keys(missing), (missing, unexpected)
    logger.info(f"loaded {len(fitted)} tensors into the ViT from {path}")
    return len(fitted)


def state_sha256(module, skip=lambda keys: set()) -> str:
    """A content hash of a module's tensors (names, dtypes, shapes, bytes), in key order;
    ``skip(keys)`` names entries to leave out."""
    digest = hashlib.sha256()
    state = module.state_dict()
    left_out = skip(state.keys())
    for name, tensor in state.items():
        if name in left_out:
            continue
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()
