"""SoMA (Yun et al., CVPR 2025): low-rank adapters initialised from the minor singular components.

Conventions, as the reference implementation (``rein/peft/sora.py`` and its configs) has them:

- Which layers: in every ViT block from ``start_block`` on (8 of 24 for ViT-L), the attention's
  q, k and v projections, its output projection, and the MLP's fc1 and fc2. The reference splits
  q/k/v into three Linear layers, so each gets its own decomposition; on timm's fused ``qkv`` the
  three row blocks are decomposed separately here (``groups=3``).
- Initialisation: ``W = U diag(S) V^T`` (full SVD, float32); the ``rank`` smallest singular
  values give ``A = diag(sqrt(S_r / s)) V_r^T`` and ``B = U_r diag(sqrt(S_r / s))`` with
  ``s = alpha / rank`` (1 in the recipe: alpha = rank = 16), and the frozen weight becomes
  ``W - s B A``, so the initial layer computes exactly what the pretrained one did.
- Forward: ``W x + b + s B (A x)``. Trained: A, B and the biases of the adapted layers (the
  reference's ``bias="all"`` default); every other ViT weight stays frozen.
- Merging for inference: ``W <- W + s B A``, after which the layer is a plain ``nn.Linear``.
"""

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
    def initialize(self):
        """Move the ``rank`` minor singular components of each row block from W into A, B."""
        weight = self.weight.float()
        residual = []
        for g, block in enumerate(weight.chunk(self.groups, dim=0)):
            u, s, vh = torch.linalg.svd(block, full_matrices=False)
            root = (s[-self.rank :] / self.scaling).sqrt()
            self.lora_A[g].copy_(root[:, None] * vh[-self.rank :])
            self.lora_B[g].copy_(u[:, -self.rank :] * root[None, :])
            residual.append(block - self.scaling * self.lora_B[g].float() @ self.lora_A[g].float())
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
    """

    def __init__(self, rank: int = 16, alpha: float = 16.0, start_block: int = 8,
                 targets: Sequence[str] = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"),
                 train_bias: bool = True):  # fmt: skip
        self.rank, self.alpha, self.start_block = rank, alpha, start_block
        self.targets, self.train_bias = tuple(targets), train_bias

    def attach(self, vit: nn.Module) -> int:
        """Wrap the target layers (frozen weights, zero adapters until :meth:`initialize`); freezes
        everything else of ``vit``. Returns the number of wrapped layers."""
        vit.requires_grad_(False)
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

    @staticmethod
    def initialize(vit: nn.Module):
        for module in vit.modules():
            if isinstance(module, SoMALinear):
                module.initialize()

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
