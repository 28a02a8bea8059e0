"""Sine position encoding of a feature map (DETR / Mask2Former), normalised to (0, 2*pi]."""

import math

import torch
from torch import nn


class PositionEmbeddingSine(nn.Module):
    """The encoding of official Mask2Former's ``PositionEmbeddingSine(normalize=True)`` and of
    mmdetection's ``SinePositionalEncoding`` (Rein's head), which both released families of heads
    were trained with. For row i and column j (1-based):

        y = i / (H + 1e-6) * 2*pi,   x = j / (W + 1e-6) * 2*pi        (no -0.5 offset)
        dim_t[d] = temperature ** (2 * (d // 2) / num_pos_feats)
        channel d of the y half: sin(y / dim_t[d]) for even d, cos(y / dim_t[d]) for odd d

    and the x half likewise; the y half comes first. The -0.5 offset is Deformable-DETR's own
    variant and matches neither checkpoint family.
    """

    def __init__(self, num_pos_feats: int = 128, temperature: int = 10000, scale: float = 2 * math.pi):
        super().__init__()
        self.num_pos_feats, self.temperature, self.scale = num_pos_feats, temperature, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 2 * num_pos_feats, H, W); depends only on the shape of ``x``.

        Computed in float32 whatever the dtype of ``x`` (the angles need the precision), then cast.
        """
        b, _, h, w = x.shape
        eps = 1e-6
        y_embed = torch.arange(1, h + 1, device=x.device, dtype=torch.float32)[:, None].expand(h, w)
        x_embed = torch.arange(1, w + 1, device=x.device, dtype=torch.float32)[None, :].expand(h, w)
        y_embed = y_embed / (h + eps) * self.scale
        x_embed = x_embed / (w + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, device=x.device, dtype=torch.float32)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos_x, pos_y = x_embed[..., None] / dim_t, y_embed[..., None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=3).flatten(2)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=3).flatten(2)
        pos = torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1)
        return pos[None].expand(b, -1, -1, -1).to(x.dtype)
