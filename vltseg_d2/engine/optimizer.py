"""AdamW parameter groups of the recipes.

- frozen parameters are left out;
- no weight decay on normalisation layers, position embeddings, the decoder's level and query
  embeddings, class/register tokens, Rein tokens and Rein's scale. The pixel decoder's level
  embedding decays: the reference configs' custom key ``level_embed`` names mmdetection's decoder
  tensor (``decode_head.level_embed``), while its pixel decoder calls its own ``level_encoding``
  (checked tensor by tensor against Rein's optimizer constructor, tools/compare_with_mmseg.py);
- the ViT's own weights get ``lr * backbone_lr_mult`` (VLTSeg: 0.1); Rein is not a backbone
  weight for this purpose;
- optional layer-wise lr decay over the ViT blocks (detectron2's ViTDet rule).
"""

from typing import Dict, Optional, Sequence

from detectron2.modeling.backbone.vit import get_vit_lr_decay_rate
from detectron2.solver.build import reduce_param_groups
from detectron2.utils.registry import locate
from torch import nn

NO_DECAY_KEYWORDS = (
    "pos_embed",
    "cls_token",
    "reg_token",
    "predictor.level_embed",
    "query_embed",
    "query_feat",
    "learnable_tokens",
    "rein.scale",
    "relative_position_bias_table",
)
_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d, nn.SyncBatchNorm)


def param_groups(
    model: nn.Module,
    base_lr: float,
    weight_decay: float,
    backbone_lr_mult: float = 1.0,
    layer_decay: Optional[float] = None,
    num_layers: Optional[int] = None,
    no_decay_keywords: Sequence[str] = NO_DECAY_KEYWORDS,
    backbone_prefix: str = "backbone.vit.",
):
    norm_params = {id(p) for m in model.modules() if isinstance(m, _NORMS) for p in m.parameters(recurse=False)}
    if layer_decay is not None and num_layers is None:
        num_layers = len(model.backbone.vit.blocks)
    groups = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = base_lr
        if name.startswith(backbone_prefix):
            lr *= backbone_lr_mult
            if layer_decay is not None:
                lr *= get_vit_lr_decay_rate(name, layer_decay, num_layers)
        no_decay = id(p) in norm_params or any(k in name for k in no_decay_keywords)
        groups.append({"params": [p], "lr": lr, "weight_decay": 0.0 if no_decay else weight_decay})
    return reduce_param_groups(groups)


def custom_key_groups(
    model: nn.Module,
    base_lr: float,
    weight_decay: float,
    custom_keys: Dict[str, dict],
    original_names: Optional[str] = None,
):
    """Parameter groups by mmcv 1.x's ``paramwise_cfg.custom_keys`` (tqdm's optimizer), read from
    ``DefaultOptimizerConstructor.add_params``: the keys are tried longest first (ties
    alphabetically), the first that is a substring of the parameter's full name sets
    ``lr = base_lr * lr_mult`` and ``weight_decay * decay_mult``, and no other rule applies. So with
    tqdm's keys (``backbone``, ``text_encoder``, ``norm``) the image tower's norms decay, and only
    norms with ``norm`` in their name elsewhere do not (not the pixel decoder's ``gn``).

    The names matched are the original model's: ``original_names`` is the dotted path of a function
    from this model's parameter names to the original's (``vltseg_d2.checkpoint.tqdm_mmseg.original_name``).
    Frozen parameters are left out (mmcv adds them to a group, where they are never updated).
    """
    keys = sorted(sorted(custom_keys), key=len, reverse=True)
    rename = locate(original_names) if original_names else (lambda name: name)
    groups = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        full = rename(name)
        rule = next((custom_keys[k] for k in keys if k in full), {})
        lr, wd = base_lr * rule.get("lr_mult", 1.0), weight_decay * rule.get("decay_mult", 1.0)
        groups.append({"params": [p], "lr": lr, "weight_decay": wd})
    return reduce_param_groups(groups)


def recipe_param_table(config_file: str) -> dict:
    """{parameter name: (lr, weight decay)} of a recipe's optimizer groups, its model built on the
    meta device (names and shapes only, no memory, no weights read)."""
    import torch
    from detectron2.config import LazyConfig, instantiate

    cfg = LazyConfig.load(config_file)
    cfg.model.backbone.pretrained = None
    with torch.device("meta"):
        model = instantiate(cfg.model)
    cfg.optimizer.params.model = model
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: (g["lr"], g["weight_decay"]) for g in instantiate(cfg.optimizer.params) for p in g["params"]}
