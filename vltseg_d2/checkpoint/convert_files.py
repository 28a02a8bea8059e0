"""File-to-file conversion of released Rein, SoMA and tqdm checkpoints (the converters' and the zoo's).

Each reads its input tensors-only, maps every key by the rules of ``rein_mmseg`` / ``soma_mmseg``
/ ``tqdm_mmseg``, writes the result atomically and returns a one-line summary of what landed where. Errors are
those of the readers and mappers (``CheckpointReadError``, ``UnmappedKeyError``, ...): callers
turn them into one line.
"""

from ..config.cli import meta_vit
from ..utils.safe_load import load_state_dict
from .io import save_atomic
from .rein_mmseg import convert_rein_state_dict, is_backbone_weight
from .soma_mmseg import convert_soma_state_dict, read_soma_checkpoint
from .tqdm_mmseg import RECIPE as TQDM_RECIPE
from .tqdm_mmseg import convert_tqdm_state_dict


def convert_rein_file(input_path, output_path, config_file) -> str:
    """A Rein file (released Rein + head, full segmentor or mmengine checkpoint) -> ``output_path``.
    ``config_file`` is read only when the file holds DINOv2 weights (fitted to its ViT)."""
    state = load_state_dict(input_path)
    vit = meta_vit(config_file) if any(map(is_backbone_weight, state)) else None
    converted = convert_rein_state_dict(state, vit, source=str(input_path))
    save_atomic({"model": converted, "__source__": f"converted from {input_path}"}, output_path)
    counts = {
        part: sum(k.startswith(prefix) for k in converted)
        for part, prefix in (("Rein", "backbone.rein."), ("ViT", "backbone.vit."), ("head", "sem_seg_head."))
    }
    return f"wrote {output_path}: {len(converted)} tensors (" + ", ".join(f"{n} {p}" for p, n in counts.items()) + ")"


def convert_soma_file(input_path, output_path, config_file) -> str:
    """A SoMA file (released adapter + head, or merged with DINOv2) -> ``output_path``; the EMA
    ``state_dict`` is used and every dropped entry is named in the summary."""
    state = read_soma_checkpoint(input_path)
    merged = any(k.endswith("patch_embed.proj.weight") for k in state.get("state_dict", state))
    vit = meta_vit(config_file) if merged else None
    converted, dropped = convert_soma_state_dict(state, vit, source=str(input_path))
    output = {"model": converted, "soma_init": "released", "__source__": f"converted from {input_path}"}
    save_atomic(output, output_path)
    adapter = sum(k.startswith("backbone.vit.") and "lora_" in k for k in converted)
    vit = sum(k.startswith("backbone.vit.") and "lora_" not in k for k in converted)
    head = sum(k.startswith("sem_seg_head.") for k in converted)
    return (
        f"wrote {output_path}: {len(converted)} tensors ({adapter} adapter, {vit} ViT, {head} head); "
        f"dropped {len(dropped)}: " + "; ".join(dropped)
    )


def convert_tqdm_file(input_path, output_path, config_file=None) -> str:
    """A tqdm file (released mmcv 1.x checkpoint) -> ``output_path``; its EVA-CLIP towers (always in
    the file) are fitted to ``config_file``'s image tower (default: the EVA02-L recipe's) and every
    dropped entry is named in the summary."""
    state = load_state_dict(input_path)
    vit = meta_vit(config_file or TQDM_RECIPE)
    converted, dropped = convert_tqdm_state_dict(state, vit, source=str(input_path))
    save_atomic({"model": converted, "__source__": f"converted from {input_path}"}, output_path)
    parts = (
        ("image tower", "backbone.vit."), ("FPN", "backbone.fpn"), ("initial copy", "backbone.initial."),
        ("text tower", "text_encoder.tower."), ("context decoder", "context_decoder."), ("head", "sem_seg_head."),
    )  # fmt: skip
    counts = ", ".join(f"{sum(k.startswith(p) for k in converted)} {name}" for name, p in parts)
    return f"wrote {output_path}: {len(converted)} tensors ({counts}); dropped {len(dropped)}" + "".join(
        f"; {d}" for d in dropped
    )
