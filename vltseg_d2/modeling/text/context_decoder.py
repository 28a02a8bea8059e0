"""DenseCLIP's context decoder as tqdm uses it: class text embeddings refined by attending to the
image's visual context (the global embedding and the dense embeddings), then added back scaled
by a learned per-channel ``gamma``.

Module and parameter names are those of tqdm's ``ContextDecoder`` (``models/backbones/clip/
models.py``), so its checkpoints map by name: ``memory_proj`` (LayerNorm, Linear, LayerNorm),
``text_proj`` (LayerNorm, Linear), ``decoder.<i>`` layers with ``self_attn`` / ``cross_attn``
(``q_proj``, ``k_proj``, ``v_proj`` without bias, ``proj``), ``norm1-3``, ``mlp`` (Linear, GELU,
Dropout, Linear), and ``out_proj`` (LayerNorm, Linear). Each layer is pre-norm: self-attention,
cross-attention to the visual context, then the MLP (dropout on the attention projections, inside
and after the MLP). Initialisation as there: Linear weights ``trunc_normal_(std=0.02)``, zero bias.
Attention is PyTorch's ``scaled_dot_product_attention`` (scale head_dim^-0.5, as the original's
explicit einsum; equal within float error, ``tests/test_tqdm_text.py``).
"""

import torch
import torch.nn.functional as F
from torch import nn


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.proj, self.proj_drop = nn.Linear(dim, dim), nn.Dropout(dropout)

    def forward(self, q, kv):
        b, n, c = q.shape
        split = lambda x: x.reshape(b, x.shape[1], self.heads, c // self.heads).transpose(1, 2)  # noqa: E731
        x = F.scaled_dot_product_attention(split(self.q_proj(q)), split(self.k_proj(kv)), split(self.v_proj(kv)))
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, c)))


class _DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.self_attn, self.cross_attn = _Attention(dim, heads, dropout), _Attention(dim, heads, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim))

    def forward(self, x, memory):
        x = x + self.self_attn(self.norm1(x), self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), memory)
        return x + self.dropout(self.mlp(self.norm3(x)))


class ContextDecoder(nn.Module):
    """Args (tqdm's EVA02-L recipe): transformer_width 256, transformer_heads 4,
    transformer_layers 3, visual_dim 768 (the text and visual embedding width), dropout 0.1."""

    def __init__(self, transformer_width=256, transformer_heads=4, transformer_layers=3, visual_dim=768, dropout=0.1):
        super().__init__()
        self.memory_proj = nn.Sequential(
            nn.LayerNorm(visual_dim), nn.Linear(visual_dim, transformer_width), nn.LayerNorm(transformer_width)
        )
        self.text_proj = nn.Sequential(nn.LayerNorm(visual_dim), nn.Linear(visual_dim, transformer_width))
        self.decoder = nn.ModuleList(
            _DecoderLayer(transformer_width, transformer_heads, dropout) for _ in range(transformer_layers)
        )
        self.out_proj = nn.Sequential(nn.LayerNorm(transformer_width), nn.Linear(transformer_width, visual_dim))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """text (B, K, visual_dim), visual (B, N, visual_dim) -> the text update (B, K, visual_dim)."""
        memory, x = self.memory_proj(visual), self.text_proj(text)
        for layer in self.decoder:
            x = layer(x, memory)
        return self.out_proj(x)


def context_gamma(dim: int) -> nn.Parameter:
    """tqdm's learned per-channel scale of the update. Its code creates it as ``ones * 1e-4`` and
    then re-initialises it with ``trunc_normal_`` (std 1, cut at +-2), so the 1e-4 never takes
    effect; this follows the code, not the apparent intent."""
    gamma = nn.Parameter(torch.ones(dim) * 1e-4)
    nn.init.trunc_normal_(gamma)
    return gamma
