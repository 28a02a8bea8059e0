"""SoMA (Yun et al., CVPR 2025): low-rank adapters initialised from the minor singular components.

Conventions, as the reference implementation (``rein/peft/sora.py`` and its configs) has them:

- Which layers: in every ViT block from ``start_block`` on (8 of 24 for ViT-L), the attention's
  q, k and v projections, its output projection, and the MLP's fc1 and fc2. The reference splits
  q/k/v into three Linear layers, so each gets its own decomposition; on timm's fused ``qkv`` the
  three row blocks are decomposed separately here (``groups=3``).
- Initialisation, two conventions (``SoMA(init=...)``):

  - ``"paper"``: ``W = U diag(S) V^T`` of the pretrained weight (full SVD, float32); the ``rank``
    smallest singular values give ``A = diag(sqrt(S_r / s)) V_r^T`` and
    ``B = U_r diag(sqrt(S_r / s))`` with ``s = alpha / rank`` (1 in the recipe: alpha = rank = 16),
    and the frozen weight becomes ``W - s B A``, so the initial layer computes exactly what the
    pretrained one did.
  - ``"released"``: what SoMA's released code does and what its published numbers and released
    checkpoints come from. Its segmentor wraps the backbone at construction, before mmengine loads
    the pretrained file, so the SVD runs on the randomly initialised weights (PyTorch's default
    ``nn.Linear`` init, ``kaiming_uniform_(a=sqrt(5))``, per q, k, v, proj, fc1 and fc2); loading
    the checkpoint then overwrites the residual with the full pretrained weight. The layer starts
    as ``W_pretrained + s B A`` with A, B the minor components of a random matrix of that shape.
- Forward: ``W x + b + s B (A x)``. Trained: A, B and the biases of the adapted layers (the
  reference's ``bias="all"`` default); every other ViT weight stays frozen.
- Merging for inference: ``W <- W + s B A``, after which the layer is a plain ``nn.Linear``.
"""

import math
import re
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class SoMALinear(nn.Module):
    """A Linear layer with SoMA adapters on ``groups`` equal row blocks of its weight. Keeps the
    wrapped layer's ``weight``/``bias`` names, so pretrained checkpoints load unchanged."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, groups: int = 1):
        super().__init__()
        if base.out_features % groups:
            raise ValueError(f"{base.out_features} outputs cannot be split into {groups} groups")
        self.weight, self.bias = base.weight, base.bias
        self.rank, self.groups, self.scaling = rank, groups, alpha / rank
        out = base.out_features // groups
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.zeros(groups, rank, base.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(groups, out, rank, **factory))

    @torch.no_grad()
    def initialize(self, init: str = "paper"):
        """Set A, B from the ``rank`` minor singular components of each row block: of W itself,
        moved out of W (``"paper"``), or of a freshly drawn ``nn.Linear`` weight, W kept (``"released"``)."""
        weight = self.weight.float()
        residual = []
        for g, block in enumerate(weight.chunk(self.groups, dim=0)):
            source = block if init == "paper" else nn.init.kaiming_uniform_(torch.empty_like(block), a=math.sqrt(5))
            u, s, vh = torch.linalg.svd(source, full_matrices=False)
            root = (s[-self.rank :] / self.scaling).sqrt()
            self.lora_A[g].copy_(root[:, None] * vh[-self.rank :])
            self.lora_B[g].copy_(u[:, -self.rank :] * root[None, :])
            if init == "paper":
                block = block - self.scaling * self.lora_B[g].float() @ self.lora_A[g].float()
            residual.append(block)
        self.weight.copy_(torch.cat(residual).to(self.weight.dtype))

    def delta(self) -> torch.Tensor:
        """The adapters' weight, ``s B A`` per row block, stacked like W."""
        return self.scaling * torch.cat(list(torch.bmm(self.lora_B, self.lora_A)), dim=0)

    def forward(self, x):
        out = F.linear(x, self.weight, self.bias)
        low = torch.einsum("...i,gri->...gr", x, self.lora_A.to(x.dtype))
        return out + self.scaling * torch.einsum("...gr,gor->...go", low, self.lora_B.to(x.dtype)).flatten(-2)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        layer = nn.Linear(self.weight.shape[1], self.weight.shape[0], bias=self.bias is not None)
        layer = layer.to(device=self.weight.device, dtype=self.weight.dtype)
        layer.weight.copy_(self.weight + self.delta().to(self.weight.dtype))
        if self.bias is not None:
            layer.bias.copy_(self.bias)
        return layer


class SoMA:
    """The adapter recipe, applied to a timm ``VisionTransformer`` (DINOv2, with or without
    registers) by :class:`ViTBackbone` (``soma=``).

    Args:
        rank: adapter rank r (16 in the recipe).
        alpha: scale numerator, s = alpha / r (16).
        start_block: first adapted block (8 for ViT-L).
        targets: module names inside a block (timm names).
        train_bias: the adapted layers' biases are trained too (the reference's default).
        init: ``"paper"`` or ``"released"`` (see the module docstring; the released code's
            convention produced SoMA's published numbers and released checkpoints).
    """

    INITS = ("paper", "released")

    def __init__(self, rank: int = 16, alpha: float = 16.0, start_block: int = 8,
                 targets: Sequence[str] = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"),
                 train_bias: bool = True, init: str = "paper"):  # fmt: skip
        if init not in self.INITS:
            raise ValueError(f"model.backbone.soma.init={init!r}: choose 'paper' or 'released'")
        self.rank, self.alpha, self.start_block = rank, alpha, start_block
        self.targets, self.train_bias, self.init = tuple(targets), train_bias, init

    def attach(self, vit: nn.Module) -> int:
        """Wrap the target layers (frozen weights, zero adapters until :meth:`initialize`); freezes
        everything else of ``vit``. Returns the number of wrapped layers."""
        vit.requires_grad_(False)
        separate = sorted(n for n, _ in vit.named_parameters() if n.endswith((".q_bias", ".v_bias")))
        if separate:  # timm's *_qkvb Eva: F.linear(x, qkv.weight, bias) bypasses the wrapped qkv layer
            raise ValueError(
                f"SoMA cannot adapt a ViT with separate q/v biases ({separate[0]}, ...): its attention computes "
                "qkv from the fused weight, past the adapters; use vit_large_patch16_dinov3 (timm's DINOv3 "
                "without q/v biases; the released ViT-L biases are zero)"
            )
        wrapped = 0
        for name, module in list(vit.named_modules()):
            found = re.fullmatch(r"blocks\.(\d+)\.(.+)", name)
            if not found or int(found.group(1)) < self.start_block or found.group(2) not in self.targets:
                continue
            if not isinstance(module, nn.Linear):
                raise TypeError(f"SoMA target {name} is a {type(module).__name__}, not a Linear layer")
            groups = 3 if name.endswith("qkv") else 1
            adapted = SoMALinear(module, self.rank, self.alpha, groups)
            if adapted.bias is not None:
                adapted.bias.requires_grad_(self.train_bias)
            parent = vit.get_submodule(name.rsplit(".", 1)[0])
            setattr(parent, name.rsplit(".", 1)[1], adapted)
            wrapped += 1
        if not wrapped:
            raise ValueError(f"no SoMA target ({', '.join(self.targets)}) in blocks >= {self.start_block}")
        return wrapped

    def initialize(self, vit: nn.Module):
        for module in vit.modules():
            if isinstance(module, SoMALinear):
                module.initialize(self.init)

    @staticmethod
    def merge(vit: nn.Module) -> int:
        """Fold every adapter into its weight (inference); returns how many were merged."""
        names = [n for n, m in vit.named_modules() if isinstance(m, SoMALinear)]
        for name in names:
            parent, child = name.rsplit(".", 1)
            holder = vit.get_submodule(parent)
            setattr(holder, child, getattr(holder, child).merged())
        return len(names)


def adapter_keys(state_keys) -> set:
    """The SoMA adapter entries of a ViT state dict (absent from pretrained files)."""
    return {k for k in state_keys if k.endswith((".lora_A", ".lora_B"))}
