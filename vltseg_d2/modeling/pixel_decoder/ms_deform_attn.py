"""Multi-scale deformable attention (Deformable DETR), in pure PyTorch.

``ms_deform_attn`` samples each level with ``F.grid_sample`` (bilinear, zero padding,
align_corners=False); it runs on CPU and GPU with no compiled extension. A faster kernel can
replace it behind the same signature. ``sampling="gather"`` computes the same bilinear sampling
with index arithmetic and ``gather`` (:func:`bilinear_sample_gather`), for ONNX consumers that
lack or miscompile ``GridSample`` (opset < 16, some TensorRT versions).
"""

import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def bilinear_sample_gather(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)``
    written with ``gather``: image (B, C, H, W), grid (B, Hg, Wg, 2) of (x, y) in [-1, 1] ->
    (B, C, Hg, Wg). Pixel (i, j) is centred at ((2j + 1) / W - 1, (2i + 1) / H - 1); each of the four
    neighbours outside the image contributes zero."""
    b, c, h, w = image.shape
    grid = grid.float()  # pixel indices in bf16 would round (63 * 64 + 63 -> 4096) and index out of bounds
    x = ((grid[..., 0] + 1) * w - 1) / 2
    y = ((grid[..., 1] + 1) * h - 1) / 2
    x0, y0 = x.floor(), y.floor()
    flat = image.flatten(2)
    out = image.new_zeros((b, c) + tuple(grid.shape[1:3]))
    for xi, wx in ((x0, x0 + 1 - x), (x0 + 1, x - x0)):
        for yi, wy in ((y0, y0 + 1 - y), (y0 + 1, y - y0)):
            inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
            index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long().flatten(1)
            picked = flat.gather(2, index[:, None].expand(-1, c, -1)).view(out.shape)
            out = out + picked * (wx * wy * inside).to(image.dtype)[:, None]
    return out


def softmax_last_dim(x: torch.Tensor) -> torch.Tensor:
    """``x.softmax(-1)`` for short rows (here the L*P = 12 sampling weights of a head). On the CPU,
    PyTorch's kernel vectorises along the row and runs ~6x slower on rows this short than
    exp(x - max) / sum written as whole-tensor ops (forward and backward together ~2.7x faster);
    elsewhere the native kernel, one fused launch, is kept. Equal up to float rounding (~1e-7).
    Computed in float32 and returned in the input's dtype, as the native kernel does for bf16."""
    if x.device.type != "cpu":
        return x.softmax(-1)
    x32 = x.float()
    e = (x32 - x32.detach().amax(-1, keepdim=True)).exp()  # the max only stabilises: no gradient through it
    return (e / e.sum(-1, keepdim=True)).to(x.dtype)


def ms_deform_attn(
    value: torch.Tensor,
    spatial_shapes: List[Tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    sampling: str = "grid_sample",
) -> torch.Tensor:
    """Args:
        value: (N, S, M, D) flattened values of all levels, M heads of D channels.
        spatial_shapes: (H, W) of each level, in the order they are concatenated in ``value``.
        sampling_locations: (N, Lq, M, L, P, 2) in [0, 1] (x, y), per query, head, level and point.
        attention_weights: (N, Lq, M, L, P), softmax-normalised over L * P.
        sampling: "grid_sample" or "gather" (the same numbers, see :func:`bilinear_sample_gather`).
    Returns:
        (N, Lq, M * D)
    """
    n, _, m, d = value.shape
    _, lq, _, _, p, _ = sampling_locations.shape
    values = value.split([h * w for h, w in spatial_shapes], dim=1)
    grids = 2 * sampling_locations - 1
    out = None
    # Points are laid out before queries, so each point's samples (N*M, D, Lq) are a plain slice and the
    # weighted sum is one fused multiply-add per point and level. The reference stacks all levels'
    # samples and multiplies and sums over a last dimension of L*P, which costs a copy of every
    # sample and an unfused product: this runs the sampling core 1.3-2x faster (CPU, forward).
    # unbind rather than index the levels: each index's backward zero-fills a gradient of the full size
    for (h, w), level_value, level_grid, level_weights in zip(
        spatial_shapes, values, grids.unbind(3), attention_weights.unbind(3)
    ):
        v = level_value.flatten(2).transpose(1, 2).reshape(n * m, d, h, w)
        g = level_grid.permute(0, 2, 3, 1, 4).flatten(0, 1).to(v.dtype)  # N*M, P, Lq, 2
        if sampling == "gather":
            sampled = bilinear_sample_gather(v, g)
        else:
            sampled = F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False)
        weights = level_weights.permute(0, 2, 3, 1).reshape(n * m, 1, p, lq).to(v.dtype)
        # sampled (N*M, D, P, Lq) x weights (N*M, 1, P, Lq), summed over P (unbind again: not an index)
        for s, wt in zip(sampled.unbind(2), weights.unbind(2)):
            out = s * wt if out is None else torch.addcmul(out, s, wt)
    return out.view(n, m * d, lq).transpose(1, 2).contiguous()


class MSDeformAttn(nn.Module):
    """Parameter names follow the official implementation (``sampling_offsets``,
    ``attention_weights``, ``value_proj``, ``output_proj``)."""

    def __init__(self, d_model: int = 256, n_levels: int = 3, n_heads: int = 8, n_points: int = 4):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} must be divisible by n_heads {n_heads}")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.sampling = "grid_sample"  # "gather" for ONNX consumers without a reliable GridSample
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self):
        # offsets start on rings around the reference point, one direction per head
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.n_heads, 1, 1, 2)
        grid = grid.repeat(1, self.n_levels, self.n_points, 1)
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        for layer in (self.attention_weights,):
            nn.init.constant_(layer.weight, 0.0)
            nn.init.constant_(layer.bias, 0.0)
        for layer in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.constant_(layer.bias, 0.0)

    def forward(self, query, reference_points, input_flatten, spatial_shapes: List[Tuple[int, int]]):
        """query (N, Lq, C); reference_points (N, Lq, L, 2) in [0, 1]; input_flatten (N, S, C)."""
        n, lq, _ = query.shape
        value = self.value_proj(input_flatten).view(n, input_flatten.shape[1], self.n_heads, -1)
        levels_points = self.n_levels * self.n_points
        offsets = self.sampling_offsets(query).view(n, lq, self.n_heads, levels_points * 2)
        weights = self.attention_weights(query).view(n, lq, self.n_heads, levels_points)
        weights = softmax_last_dim(weights).view(n, lq, self.n_heads, self.n_levels, self.n_points)
        # scalar_tensor keeps the sizes symbolic in an exported graph (torch.tensor would bake them in)
        normalizer = torch.stack(
            [
                torch.stack(
                    [
                        torch.scalar_tensor(w, dtype=offsets.dtype, device=query.device),
                        torch.scalar_tensor(h, dtype=offsets.dtype, device=query.device),
                    ]
                )
                for h, w in spatial_shapes
            ]
        )
        # reference + offset / (W, H), with the per-level terms repeated over the points so both operands
        # run along a contiguous last dim of L*P*2: broadcasting over (L, 1, 2) instead runs ~20x slower
        # on the CPU (inner loops of 2 elements). The same numbers as the reference's broadcast.
        normalizer = normalizer[:, None].expand(-1, self.n_points, -1).reshape(-1)
        refs = reference_points[:, :, None, :, None].expand(-1, -1, -1, -1, self.n_points, -1)
        locations = refs.flatten(3) + offsets / normalizer
        locations = locations.view(n, lq, self.n_heads, self.n_levels, self.n_points, 2)
        return self.output_proj(ms_deform_attn(value, spatial_shapes, locations, weights, self.sampling))
