"""A detectron2 Backbone hosting a timm ViT (EVA02-CLIP or DINOv2), optionally with Rein.

Patch-size rule (patch 14 does not divide 512 or 1024): the input is padded bottom/right to a
multiple of the patch (timm's ``dynamic_img_pad``), so every pixel is seen. Each output level of
stride s is the patch grid resized bilinearly (align_corners=False) by the factor patch / s and
cropped to ceil(H / s) x ceil(W / s); the resize keeps the geometry exact (a feature at stride s
is centred where it should be), and for patch 16 it is exactly Rein's x4, x2, x1, x0.5 neck. The
meta-architecture pads batches to ``size_divisibility`` (32), so crops never cut real pixels.
"""

import math
from typing import Optional, Sequence

import timm
import torch
from detectron2.modeling import Backbone, ShapeSpec
from torch import nn
from torch.utils.checkpoint import checkpoint

from .low_precision import cache_low_precision_casts
from .rein import Reins
from .soma import SoMA, adapter_keys
from .weights import load_vit_weights, state_sha256


class ViTBackbone(Backbone):
    """Args:
    model_name: a timm ViT, e.g. ``"vit_large_patch14_dinov2"``, ``"vit_large_patch14_reg4_dinov2"``,
        ``"eva02_large_patch14_clip_224"``; any timm ``VisionTransformer`` or ``Eva`` works.
    model_kwargs: extra timm keyword arguments (``embed_dim``, ``depth``, ``num_heads``,
        ``drop_path_rate`` ...), e.g. to build a tiny model for tests.
    img_size: the size the absolute position embedding is stored at (interpolated to other
        inputs on the fly).
    patch_size: 14 or 16 (pretrained kernels are resized when loading).
    out_indices: blocks (0-based) whose outputs form the levels, e.g. Rein (7, 11, 15, 23),
        VLTSeg (9, 14, 19, 23); a single index for a single-level output (``SimpleFeaturePyramid``).
    out_strides: stride of each level; the names are ``res{log2(stride)}``.
    freeze: freeze every ViT weight (kept in eval mode); Rein parameters stay trainable.
    rein: a :class:`Reins` module inserted after every block, or ``None``.
    grad_checkpointing: recompute each block (with its Rein layer) in the backward pass: about half
        the activation memory of a Rein-L step (2.1 -> 0.95 GiB per 512 crop, bf16) for ~27% more time.
    pretrained: the original weights, a local file or a hub id (see ``weights.py``). Building
        the model never reads it: the trainer loads it when training starts from scratch, and
        loading a checkpoint that does not hold the ViT (a Rein checkpoint) loads it first.
    patch_resample: "bicubic" (Rein recipe) or "timm" (pseudo-inverse) for kernel resizing.
    size_divisibility: padding the meta-architecture applies to batches.
    cache_casts: with a frozen ViT (Rein, SoMA), cast its linear weights to the autocast precision
        once instead of per forward: ``"always"`` (a bf16 ViT-L forward 7% faster; in inference
        0.6 GB more memory), ``"training"`` (only in training steps, where it costs no peak memory)
        or ``"never"``; see ``low_precision.py``.
    """

    def __init__(
        self,
        model_name: str,
        *,
        model_kwargs: Optional[dict] = None,
        img_size=512,
        patch_size: int = 16,
        out_indices: Sequence[int] = (7, 11, 15, 23),
        out_strides: Sequence[int] = (4, 8, 16, 32),
        freeze: bool = False,
        rein: Optional[Reins] = None,
        soma: Optional[SoMA] = None,
        grad_checkpointing: bool = False,
        pretrained: Optional[str] = None,
        patch_resample: str = "bicubic",
        size_divisibility: int = 32,
        cache_casts: str = "always",
    ):
        super().__init__()
        if len(out_indices) != len(out_strides):
            raise ValueError(f"out_indices {tuple(out_indices)} and out_strides {tuple(out_strides)} differ in length")
        # store the position grid for the padded input (ceil(img_size / patch) cells per side)
        sizes = (img_size, img_size) if isinstance(img_size, int) else img_size
        img_size = [math.ceil(s / patch_size) * patch_size for s in sizes]
        kwargs = dict(
            img_size=img_size,
            patch_size=patch_size,
            num_classes=0,
            global_pool="",
            dynamic_img_size=True,
            dynamic_img_pad=True,
        )
        kwargs.update(model_kwargs or {})
        self.vit = timm.create_model(model_name, pretrained=False, **kwargs)
        # The final norm and head are never used: drop them so checkpoints need not fill them.
        for name in ("norm", "fc_norm", "head", "head_drop"):
            if hasattr(self.vit, name):
                setattr(self.vit, name, nn.Identity())
        self.is_eva = hasattr(self.vit, "rope")
        rope = getattr(self.vit, "rope", None)
        if "periods" in getattr(rope, "_non_persistent_buffers_set", ()):
            # DINOv3: keep the rotary periods in the state, so the file's (Meta's, bf16) outlive checkpoints
            rope.register_buffer("periods", rope.periods, persistent=True)
        depth = len(self.vit.blocks)
        if max(out_indices) >= depth:
            raise ValueError(f"out_indices {tuple(out_indices)} exceed the depth {depth} of {model_name}")
        self.patch_size = patch_size
        self.out_indices = tuple(out_indices)
        self.embed_dim = self.vit.embed_dim
        self.rein = rein
        if rein is not None and (rein.num_layers != depth or rein.embed_dims != self.embed_dim):
            raise ValueError(
                f"Rein built for {rein.num_layers} layers x {rein.embed_dims} channels, "
                f"but {model_name} has {depth} x {self.embed_dim}"
            )
        self.grad_checkpointing = grad_checkpointing
        self.freeze = freeze
        self._size_divisibility = size_divisibility
        self._out_features = [f"res{int(math.log2(s))}" for s in out_strides]
        self._out_feature_strides = dict(zip(self._out_features, out_strides))
        self._out_feature_channels = {f: self.embed_dim for f in self._out_features}
        self.pretrained, self.patch_resample = pretrained, patch_resample
        self.loaded_from = None  # the source whose weights the ViT holds, once loaded
        self._identity = None
        if freeze:
            self.vit.requires_grad_(False)
            self.vit.eval()
        self.soma = soma
        if soma is not None:  # after freezing: the adapters (and adapted biases) stay trainable
            soma.attach(self.vit)
        self.cache_casts = cache_casts if (freeze or soma is not None) else "never"
        # frozen weights: cast to bf16 once, not per forward (see low_precision.py)
        cache_low_precision_casts(self.vit, self.cache_casts)

    def load_pretrained(self, source: Optional[str] = None):
        """Load the original weights (``source``, default ``self.pretrained``) into the ViT."""
        source = source or self.pretrained
        if not source:
            raise FileNotFoundError(
                "no pretrained weights to load: set model.backbone.pretrained to the original file or a hub id"
            )
        load_vit_weights(self, source, patch_resample=self.patch_resample)
        self.loaded_from, self._identity = source, None
        if self.soma is not None:  # identify the pretrained weights, then split off the minor components
            self.frozen_identity()
            self.soma.initialize(self.vit)

    def frozen_identity(self) -> dict:
        """Which pretrained weights this ViT was loaded from: the source and a content hash of
        the loaded tensors (adapters left out; computed once, before SoMA changes them)."""
        if self._identity is None:
            self._identity = {"source": self.loaded_from, "sha256": state_sha256(self.vit, skip=adapter_keys)}
        return self._identity

    def merge_adapters(self) -> int:
        """Fold SoMA adapters into the weights for inference (no-op without SoMA)."""
        merged = SoMA.merge(self.vit) if self.soma is not None else 0
        if merged:  # the merged layers are new plain Linear layers
            cache_low_precision_casts(self.vit, self.cache_casts)
        return merged

    @property
    def size_divisibility(self):
        return self._size_divisibility

    @property
    def padding_constraints(self):
        return {"size_divisibility": self._size_divisibility}

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.vit.eval()  # a frozen ViT keeps drop-path and dropout off
        return self

    def _embed(self, x):
        x = self.vit.patch_embed(x)  # B x gh x gw x C (dynamic_img_size)
        grid = x.shape[1:3]
        if self.is_eva:
            x, rope = self.vit._pos_embed(x)
        else:
            x, rope = self.vit._pos_embed(x), None
        return self.vit.norm_pre(x), rope, grid

    def _block(self, i, x, rope):
        """Block ``i`` and its Rein layer (one unit for activation checkpointing: Rein's own
        activations are about as large as the block's)."""
        blk = self.vit.blocks[i]
        x = blk(x, rope=rope) if self.is_eva else blk(x)
        if self.rein is not None:  # class/register tokens pass through untouched
            n_prefix = self.vit.num_prefix_tokens
            x = torch.cat([x[:, :n_prefix], self.rein(x[:, n_prefix:], i)], dim=1)
        return x

    def forward(self, images: torch.Tensor):
        h, w = images.shape[-2:]
        x, rope, (gh, gw) = self._embed(images)
        n_prefix = self.vit.num_prefix_tokens
        grids = []
        for i in range(max(self.out_indices) + 1):
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(self._block, i, x, rope, use_reentrant=False)
            else:
                x = self._block(i, x, rope)
            if i in self.out_indices:  # tokens are channels-last already: keep them so (no transpose copy)
                grids.append(x[:, n_prefix:].reshape(x.shape[0], gh, gw, -1).permute(0, 3, 1, 2))
        return {
            name: self._level(grid, self._out_feature_strides[name], h, w)
            for name, grid in zip(self._out_features, grids)
        }

    def _level(self, grid: torch.Tensor, stride: int, h: int, w: int) -> torch.Tensor:
        """The patch grid resized by patch / stride and cropped to ceil(h / stride) x ceil(w / stride),
        channels-last. The resize is computed at the cropped size directly: bilinear upsampling with
        an explicit scale maps output pixel i to input (i + 0.5) / scale - 0.5 whatever the output
        size, so this equals resizing the whole grid and cropping, without the extra rows and the
        crop's copy (the 1x1 convolutions that read these maps are also ~5x faster channels-last
        on the CPU)."""
        grid = grid.contiguous(memory_format=torch.channels_last)
        size = [math.ceil(h / stride), math.ceil(w / stride)]
        scale = self.patch_size / stride
        if scale == 1.0:
            return grid[..., : size[0], : size[1]]
        return torch.ops.aten.upsample_bilinear2d(grid, size, False, scale, scale)

    def output_shape(self):
        return {
            n: ShapeSpec(channels=self._out_feature_channels[n], stride=self._out_feature_strides[n])
            for n in self._out_features
        }


def build_rein(num_layers=24, embed_dims=1024, patch_size=16, **kwargs) -> Reins:
    """A LoRA-Rein with the released settings (m = 100, r = 16, linked queries) unless overridden."""
    return Reins(num_layers, embed_dims, patch_size, **kwargs)


def count_parameters(module: nn.Module):
    """(total, trainable) parameter counts; works on the meta device."""
    params = list(module.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)
