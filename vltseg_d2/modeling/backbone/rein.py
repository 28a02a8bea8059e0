"""Rein and LoRA-Rein (Wei et al., CVPR 2024), as the reference implementation computes it.

After every ViT block i the patch tokens x (B x n x c) are refined with learnable tokens T_i:

    S = softmax(x T_i^T / sqrt(c))           over the m tokens
    D = S[:, 1:] f_t2f(T_i[1:])               token 0 takes part in the softmax, not in the sum
    x <- x + s * f_delta(D + x)

LoRA-Rein factors T_i = A_i B_i. With ``link_token_to_query`` the tokens also produce the
Mask2Former object queries (``queries``). Parameter names follow the released checkpoints.
"""

import math
from typing import Optional

import torch
from torch import nn


class Reins(nn.Module):
    """Args:
    num_layers: ViT depth N (one token matrix per block).
    embed_dims: ViT width c.
    patch_size: p, only used by the initialisation bound.
    token_length: m, tokens per layer (also the number of linked queries).
    lora_dim: r for LoRA-Rein (T = A @ B); ``None`` for plain Rein.
    link_token_to_query: build ``transform``/``merge`` and provide ``queries()``.
    query_dims: width of the decoder queries (256).
    scale_init: initial value of the shared scale s.
    """

    def __init__(
        self,
        num_layers: int,
        embed_dims: int,
        patch_size: int,
        token_length: int = 100,
        lora_dim: Optional[int] = 16,
        link_token_to_query: bool = True,
        query_dims: int = 256,
        scale_init: float = 1e-3,
    ):
        super().__init__()
        self.num_layers, self.embed_dims, self.token_length = num_layers, embed_dims, token_length
        self.lora_dim, self.link_token_to_query = lora_dim, link_token_to_query
        if lora_dim:
            self.learnable_tokens_a = nn.Parameter(torch.empty(num_layers, token_length, lora_dim))
            self.learnable_tokens_b = nn.Parameter(torch.empty(num_layers, lora_dim, embed_dims))
            bound = math.sqrt(6.0 / (3 * patch_size * patch_size + math.sqrt(embed_dims * lora_dim)))
            nn.init.uniform_(self.learnable_tokens_a, -bound, bound)
            nn.init.uniform_(self.learnable_tokens_b, -bound, bound)
        else:
            self.learnable_tokens = nn.Parameter(torch.empty(num_layers, token_length, embed_dims))
            bound = math.sqrt(6.0 / (3 * patch_size * patch_size + embed_dims))
            nn.init.uniform_(self.learnable_tokens, -bound, bound)
        self.scale = nn.Parameter(torch.tensor(float(scale_init)))
        self.mlp_token2feat = nn.Linear(embed_dims, embed_dims)
        self.mlp_delta_f = nn.Linear(embed_dims, embed_dims)
        if link_token_to_query:
            self.transform = nn.Linear(embed_dims, query_dims)
            self.merge = nn.Linear(query_dims * 3, query_dims)

    def tokens(self, layer: Optional[int] = None) -> torch.Tensor:
        """T_layer (m x c), or all layers stacked (N x m x c) when ``layer`` is None."""
        if self.lora_dim:
            if layer is None:
                return self.learnable_tokens_a @ self.learnable_tokens_b
            return self.learnable_tokens_a[layer] @ self.learnable_tokens_b[layer]
        return self.learnable_tokens if layer is None else self.learnable_tokens[layer]

    def forward(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Refine patch tokens ``x`` (B x n x c) after block ``layer``."""
        tokens = self.tokens(layer).to(x.dtype)
        attn = torch.softmax((x @ tokens.transpose(0, 1)) * self.embed_dims**-0.5, dim=-1)
        delta = attn[..., 1:] @ self.mlp_token2feat(tokens[1:])
        return x + self.scale * self.mlp_delta_f(delta + x)

    def queries(self) -> torch.Tensor:
        """The m linked object queries (m x query_dims), shared by every image.

        ``merge`` reads the three pooled features interleaved per channel, as the reference stacks
        them on a trailing axis and flattens: input column 3j + k is channel j of the max over
        layers (k = 0), the mean over layers (k = 1), the last layer (k = 2). Released
        ``merge.weight`` tensors have their columns in this order.
        """
        z = self.transform(self.tokens())  # N x m x q
        pooled = torch.stack([z.max(dim=0).values, z.mean(dim=0), z[-1]], dim=-1)  # m x q x 3
        return self.merge(pooled.flatten(-2))
