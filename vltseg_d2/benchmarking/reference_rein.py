"""The seeds' own code for side-by-side runs, read at run time from checkouts the user names.

- Rein's backbone: ``ReinsDinoVisionTransformer`` with ``LoRAReins`` from a checkout of
  github.com/w1oves/Rein (``rein/models/backbones``), built with its GTA recipe's arguments
  (``configs/_base_/models/rein_dinov2_mask2former.py``). Its mmseg / mmengine imports are met by
  stand-ins: registries that build by type name, a ``BaseModule`` that is a plain ``nn.Module``
  and a logger. xformers is disabled (``XFORMERS_DISABLED``), so DINOv2's attention is its own
  explicit softmax(QK^T)V, as on any machine without xformers.
- The official Mask2Former head, matcher and criterion from a checkout of
  github.com/facebookresearch/Mask2Former (``MSDeformAttnPixelDecoder``,
  ``MultiScaleMaskedTransformerDecoder``, ``HungarianMatcher``, ``SetCriterion``). Its compiled
  deformable-attention op is replaced by an empty module, so ``MSDeformAttn`` takes the
  pure-PyTorch path it falls back to when the op is missing.

Nothing of either is copied into this project. Weights go through this project's converters:
the reference backbone's tensors (DINOv2 and Rein names) become ours with
``convert_rein_state_dict``; our head's tensors load into the official modules unchanged (the
names are the official ones), with Rein's linked queries as the official ``query_feat`` /
``query_embed`` (Rein's head replaces those by them).
"""

import importlib
import itertools
import logging
import os
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import convert_rein_state_dict

# Rein's GTA recipe (configs/_base_/models/rein_dinov2_mask2former.py) and Mask2Former's semantic
# segmentation head as that recipe configures it
REIN_L = dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16, mlp_ratio=4, img_size=512, ffn_layer="mlp",
              init_values=1e-05, block_chunks=0, qkv_bias=True, proj_bias=True, ffn_bias=True)  # fmt: skip
LORA_REINS = dict(type="LoRAReins", token_length=100, embed_dims=1024, num_layers=24, patch_size=16,
                  link_token_to_query=True, lora_dim=16)  # fmt: skip
LOSS_WEIGHTS = {"loss_ce": 2.0, "loss_mask": 5.0, "loss_dice": 5.0}


class ReferenceCodeError(RuntimeError):
    """A checkout that is not what it should be; the message names the path and the file missing."""


class _Registry:
    """Stands in for mmseg's ``BACKBONES`` / ``MODELS``: registers classes, builds by ``type``."""

    def __init__(self):
        self.classes = {}

    def register_module(self, name=None, force=False, module=None):
        def register(cls):
            self.classes[name or cls.__name__] = cls
            return cls

        return register(module) if module is not None else register

    def build(self, cfg):
        cfg = dict(cfg)
        return self.classes[cfg.pop("type")](**cfg)


class _BaseModule(nn.Module):
    """mmengine's ``BaseModule`` as far as Rein uses it: an ``nn.Module`` keeping ``init_cfg``."""

    def __init__(self, init_cfg=None):
        super().__init__()
        self.init_cfg = init_cfg


class _MMLogger:
    @staticmethod
    def get_current_instance():
        return logging.getLogger("reference.rein")


def _module(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def _package(name, path: Path):
    """A package whose ``__init__`` is not run (Rein's and Mask2Former's import far more than needed)."""
    module = _module(name)
    module.__path__ = [str(path)]
    return module


def _require(root: Path, relative: str, project: str) -> Path:
    if not (root / relative).is_file():
        raise ReferenceCodeError(f"{root} is not a checkout of {project}: {relative} is missing")
    return root


def load_rein(rein_src):
    """``(ReinsDinoVisionTransformer, registry)`` from a Rein checkout."""
    root = _require(Path(rein_src), "rein/models/backbones/reins_dinov2.py", "github.com/w1oves/Rein")
    if "reference_rein_backbones" not in sys.modules:
        os.environ.setdefault("XFORMERS_DISABLED", "1")
        registry = _Registry()
        for name in ("mmseg", "mmseg.models", "mmengine"):
            _module(name)
        _module("mmseg.models.builder", BACKBONES=registry, MODELS=registry)
        _module("mmengine.model", BaseModule=_BaseModule)
        _module("mmengine.logging", MMLogger=_MMLogger)
        _package("reference_rein_backbones", root / "rein" / "models" / "backbones").registry = registry
    package = sys.modules["reference_rein_backbones"]
    module = importlib.import_module("reference_rein_backbones.reins_dinov2")
    return module.ReinsDinoVisionTransformer, package.registry


def load_mask2former(m2f_src):
    """The modules of the official Mask2Former (pixel decoder, decoder, matcher, criterion)."""
    root = _require(
        Path(m2f_src), "mask2former/modeling/pixel_decoder/msdeformattn.py", "github.com/facebookresearch/Mask2Former"
    )
    if "mask2former" not in sys.modules:
        _module("MultiScaleDeformableAttention")  # no compiled op: MSDeformAttn runs its PyTorch fallback
        _package("mask2former", root / "mask2former")
        _package("mask2former.modeling", root / "mask2former" / "modeling")
    decoder = "transformer_decoder.mask2former_transformer_decoder"
    names = ("pixel_decoder.msdeformattn", decoder, "matcher", "criterion")
    return types.SimpleNamespace(
        **{name.split(".")[-1]: importlib.import_module(f"mask2former.modeling.{name}") for name in names}
    )


class ReferenceRein(nn.Module):
    """Rein's backbone and neck (x4, x2, x1, x0.5 of its four block outputs), the official
    Mask2Former head, matcher and criterion, as Rein's GTA recipe puts them together."""

    def __init__(self, rein_src, m2f_src, num_classes=19):
        super().__init__()
        from detectron2.layers import ShapeSpec

        backbone_cls, registry = load_rein(rein_src)
        m2f = load_mask2former(m2f_src)
        self.backbone = backbone_cls(reins_config=LORA_REINS, **REIN_L)
        shapes = {f"res{k}": ShapeSpec(channels=1024, stride=2**k) for k in (2, 3, 4, 5)}
        self.pixel_decoder = m2f.msdeformattn.MSDeformAttnPixelDecoder(
            input_shape=shapes, transformer_dropout=0.0, transformer_nheads=8, transformer_dim_feedforward=1024,
            transformer_enc_layers=6, conv_dim=256, mask_dim=256, norm="GN",
            transformer_in_features=["res3", "res4", "res5"], common_stride=4,
        )  # fmt: skip
        self.predictor = m2f.mask2former_transformer_decoder.MultiScaleMaskedTransformerDecoder(
            in_channels=256, mask_classification=True, num_classes=num_classes, hidden_dim=256, num_queries=100,
            nheads=8, dim_feedforward=2048, dec_layers=9, pre_norm=False, mask_dim=256, enforce_input_project=False,
        )  # fmt: skip
        matcher = m2f.matcher.HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=12544)
        weights = {f"{k}_{i}": v for i in range(9) for k, v in LOSS_WEIGHTS.items()}
        self.weight_dict = {**LOSS_WEIGHTS, **weights}
        self.criterion = m2f.criterion.SetCriterion(
            num_classes, matcher=matcher, weight_dict=self.weight_dict, eos_coef=0.1, losses=["labels", "masks"],
            num_points=12544, oversample_ratio=3.0, importance_sample_ratio=0.75,
        )  # fmt: skip

    def features(self, images):
        outs, _ = self.backbone.forward_features(images)  # the linked queries are the predictor's parameters here
        scales = (4, 2, 1, 0.5)
        return {
            f"res{k}": feat if s == 1 else F.interpolate(feat, scale_factor=s, mode="bilinear", align_corners=False)
            for k, s, feat in zip((2, 3, 4, 5), scales, outs)
        }

    def head(self, images):
        mask_features, _, multi_scale = self.pixel_decoder.forward_features(self.features(images))
        return self.predictor(multi_scale, mask_features, None)

    def loss(self, images, targets):
        losses = self.criterion(self.head(images), targets)
        return sum(losses[k] * self.weight_dict[k] for k in losses if k in self.weight_dict)

    def window_scores(self, images):
        """Class scores of windows (N, 3, h, w) as Mask2Former's semantic inference computes them."""
        out = self.head(images)
        masks = F.interpolate(out["pred_masks"], size=images.shape[-2:], mode="bilinear", align_corners=False)
        return torch.einsum("bqc,bqhw->bchw", out["pred_logits"].softmax(-1)[..., :-1], masks.sigmoid())

    def slide(self, image, crop, stride, num_classes=19):
        """mmseg's ``slide_inference``: one window per forward, scores summed and counted."""
        (h, w), (ch, cw), (sh, sw) = image.shape[-2:], crop, stride
        total = image.new_zeros((num_classes, h, w), dtype=torch.float32)
        count = image.new_zeros((1, h, w), dtype=torch.float32)
        for y in range(max(h - ch + sh - 1, 0) // sh + 1):
            for x in range(max(w - cw + sw - 1, 0) // sw + 1):
                y1, x1 = min(y * sh, max(h - ch, 0)), min(x * sw, max(w - cw, 0))
                y2, x2 = min(y1 + ch, h), min(x1 + cw, w)
                total[:, y1:y2, x1:x2] += self.window_scores(image[None, :, y1:y2, x1:x2])[0].float()
                count[:, y1:y2, x1:x2] += 1
        return total / count

    def set_trainable(self):
        """Rein's recipe: only Rein and the head learn (Rein's ``train()`` sets that on the backbone)."""
        self.train()
        return [p for p in self.parameters() if p.requires_grad]


def share_weights(reference: ReferenceRein, ours) -> dict:
    """Give ``ours`` the reference backbone's weights through our Rein converter, and the reference
    head ours (official names; Rein's linked queries as ``query_feat`` / ``query_embed``). Returns
    what did not transfer, by side, which must be nothing but the criterion's own buffers."""
    backbone = dict(itertools.chain(reference.backbone.named_parameters(), reference.backbone.named_buffers()))
    converted = convert_rein_state_dict({f"backbone.{k}": v for k, v in backbone.items()}, ours.backbone.vit, "Rein")
    ours_result = ours.load_state_dict(converted, strict=False)
    head = {k[len("sem_seg_head.") :]: v for k, v in ours.state_dict().items() if k.startswith("sem_seg_head.")}
    pixel = {k[len("pixel_decoder.") :]: v for k, v in head.items() if k.startswith("pixel_decoder.")}
    predictor = {k[len("predictor.") :]: v for k, v in head.items() if k.startswith("predictor.")}
    with torch.no_grad():
        queries = ours.backbone.rein.queries()
        predictor["query_embed.weight"] = queries
        predictor["query_feat.weight"] = ours.sem_seg_head.predictor.querys2feat(queries)
    predictor = {k: v for k, v in predictor.items() if not k.startswith("querys2feat.")}
    pixel_result = reference.pixel_decoder.load_state_dict(pixel, strict=True)
    predictor_result = reference.predictor.load_state_dict(predictor, strict=True)
    return {
        "ours missing": [k for k in ours_result.missing_keys if not k.startswith("sem_seg_head.")],
        "ours unexpected": list(ours_result.unexpected_keys),
        "reference head": list(pixel_result.missing_keys) + list(predictor_result.missing_keys),
    }
