"""Mask2Former's MSDeformAttn pixel decoder, with the official detectron2 module names.

Levels res3..res5 (strides 8/16/32) go through a deformable-attention encoder; res2 (stride 4)
joins through a lateral 1x1 conv (``adapter_1``) and a 3x3 output conv (``layer_1``) to make the
per-pixel mask features.

With ``text_dim`` set, every encoder layer also attends from the pixels to the class text
embeddings (tqdm's text-to-pixel attention, ``tqdmMSDeformAttnPixelDecoder``): its layers run
deformable self-attention, norm, cross-attention (queries: pixels + their positional encoding;
keys: text projected to ``conv_dim`` + a learned per-class embedding; values: the projected
text), norm, FFN, norm, as mmcv's ``('self_attn', 'norm', 'cross_attn', 'norm', 'ffn', 'norm')``,
and the encoder's output goes through one more LayerNorm (``post_norm``): tqdm's encoder is mmcv's
``DetrTransformerDecoder`` (``post_norm_cfg=dict(type='LN')`` by default, ``return_intermediate``),
whose last intermediate output, the one the pixel decoder reads, is ``post_norm(query)``.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from detectron2.layers import Conv2d
from torch import nn

from ..position_encoding import PositionEmbeddingSine
from .ms_deform_attn import MSDeformAttn


class MSDeformAttnEncoderLayer(nn.Module):
    def __init__(self, d_model=256, d_ffn=1024, dropout=0.0, n_levels=3, n_heads=8, n_points=4, text_attention=False):
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.norm1 = nn.LayerNorm(d_model)
        self.text_attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True) if text_attention else None
        self.norm_text = nn.LayerNorm(d_model) if text_attention else None
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src, pos, reference_points, spatial_shapes, text=None, text_pos=None):
        src = self.norm1(src + self.dropout(self.self_attn(src + pos, reference_points, src, spatial_shapes)))
        if self.text_attn is not None:
            attended = self.text_attn(src + pos, text + text_pos, text, need_weights=False)[0]
            src = self.norm_text(src + self.dropout(attended))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout(ffn))


class MSDeformAttnEncoder(nn.Module):
    def __init__(self, num_layers: int, **layer_kwargs):
        super().__init__()
        self.layers = nn.ModuleList(MSDeformAttnEncoderLayer(**layer_kwargs) for _ in range(num_layers))
        text_attention = layer_kwargs.get("text_attention", False)
        self.post_norm = nn.LayerNorm(layer_kwargs.get("d_model", 256)) if text_attention else None

    @staticmethod
    def reference_points(spatial_shapes, device):
        """Normalised pixel centres of every level, (1, S, L, 2); inputs are unpadded, so valid ratios are 1.
        (``arange + 0.5`` equals the reference's ``linspace(0.5, h - 0.5, h)`` exactly and keeps h
        symbolic in an exported graph.)"""
        refs = []
        for h, w in spatial_shapes:
            ys, xs = torch.meshgrid(
                (torch.arange(h, device=device) + 0.5) / h, (torch.arange(w, device=device) + 0.5) / w, indexing="ij"
            )
            refs.append(torch.stack((xs.reshape(-1), ys.reshape(-1)), -1))
        return torch.cat(refs, 0)[None, :, None].expand(-1, -1, len(spatial_shapes), -1)

    def forward(self, src, pos, spatial_shapes, text=None, text_pos=None):
        ref = self.reference_points(spatial_shapes, src.device).to(src.dtype)
        for layer in self.layers:
            src = layer(src, pos, ref, spatial_shapes, text, text_pos)
        return src if self.post_norm is None else self.post_norm(src)


class MSDeformAttnTransformerEncoderOnly(nn.Module):
    def __init__(
        self,
        d_model=256,
        nhead=8,
        num_encoder_layers=6,
        dim_feedforward=1024,
        dropout=0.0,
        num_feature_levels=3,
        enc_n_points=4,
        text_attention=False,
    ):
        super().__init__()
        self.encoder = MSDeformAttnEncoder(
            num_encoder_layers,
            text_attention=text_attention,
            d_model=d_model,
            d_ffn=dim_feedforward,
            dropout=dropout,
            n_levels=num_feature_levels,
            n_heads=nhead,
            n_points=enc_n_points,
        )
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        nn.init.normal_(self.level_embed)

    def forward(self, srcs: List[torch.Tensor], pos_embeds: List[torch.Tensor], text=None, text_pos=None):
        spatial_shapes = [tuple(s.shape[-2:]) for s in srcs]
        src_flat = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        pos_flat = torch.cat(
            [p.flatten(2).transpose(1, 2) + self.level_embed[lvl][None, None] for lvl, p in enumerate(pos_embeds)], 1
        )
        return self.encoder(src_flat, pos_flat, spatial_shapes, text, text_pos), spatial_shapes


class MSDeformAttnPixelDecoder(nn.Module):
    """Args:
    in_features: backbone levels, finest first (``("res2", "res3", "res4", "res5")``).
    in_channels: channels of each level (an int when all are equal, e.g. 1024 for ViT-L).
    conv_dim, mask_dim: 256 in the recipes.
    transformer_in_features: the levels the encoder attends over (res3..res5).
    transformer_enc_layers, transformer_nheads, transformer_dim_feedforward, enc_n_points: 6, 8, 1024, 4.
    norm: "GN" (GroupNorm with 32 groups).
    text_dim: width of class text embeddings to attend to (tqdm: 768), or None (Mask2Former).
    num_texts: how many text embeddings (one per class, 19), for their learned positional embedding.
    """

    def __init__(
        self,
        *,
        in_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
        in_channels=1024,
        conv_dim: int = 256,
        mask_dim: int = 256,
        transformer_in_features=("res3", "res4", "res5"),
        transformer_enc_layers: int = 6,
        transformer_nheads: int = 8,
        transformer_dim_feedforward: int = 1024,
        transformer_dropout: float = 0.0,
        enc_n_points: int = 4,
        norm: str = "GN",
        text_dim: Optional[int] = None,
        num_texts: int = 19,
    ):
        super().__init__()
        channels = dict(
            zip(in_features, [in_channels] * len(in_features) if isinstance(in_channels, int) else in_channels)
        )
        self.in_features = list(in_features)
        self.transformer_in_features = list(transformer_in_features)
        self.num_levels = len(self.transformer_in_features)
        # official order: coarsest level first
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels[f], conv_dim, kernel_size=1), nn.GroupNorm(32, conv_dim))
            for f in self.transformer_in_features[::-1]
        )
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.constant_(proj[0].bias, 0)
        self.transformer = MSDeformAttnTransformerEncoderOnly(
            d_model=conv_dim,
            nhead=transformer_nheads,
            num_encoder_layers=transformer_enc_layers,
            dim_feedforward=transformer_dim_feedforward,
            dropout=transformer_dropout,
            num_feature_levels=self.num_levels,
            enc_n_points=enc_n_points,
            text_attention=text_dim is not None,
        )
        self.pe_layer = PositionEmbeddingSine(conv_dim // 2)
        self.text_proj = nn.Linear(text_dim, conv_dim) if text_dim is not None else None
        self.text_pos_embed = nn.Embedding(num_texts, conv_dim) if text_dim is not None else None
        self.mask_dim = mask_dim
        self.mask_features = Conv2d(conv_dim, mask_dim, kernel_size=1)
        weight_init.c2_xavier_fill(self.mask_features)
        self.fpn_features = [f for f in self.in_features if f not in self.transformer_in_features]
        self.lateral_convs, self.output_convs = [], []
        for idx, f in enumerate(self.fpn_features[::-1]):
            lateral = Conv2d(channels[f], conv_dim, kernel_size=1, bias=False, norm=_norm(norm, conv_dim))
            output = Conv2d(
                conv_dim, conv_dim, kernel_size=3, padding=1, bias=False, norm=_norm(norm, conv_dim), activation=F.relu
            )
            weight_init.c2_xavier_fill(lateral)
            weight_init.c2_xavier_fill(output)
            self.add_module(f"adapter_{idx + 1}", lateral)
            self.add_module(f"layer_{idx + 1}", output)
            self.lateral_convs.append(lateral)
            self.output_convs.append(output)

    def forward(
        self, features: Dict[str, torch.Tensor], texts: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Returns the mask features (stride 4) and the multi-scale features (coarsest first).
        ``texts`` (B, num_texts, text_dim): the class text embeddings, with ``text_dim`` set."""
        srcs, pos = [], []
        for proj, f in zip(self.input_proj, self.transformer_in_features[::-1]):
            x = proj(features[f])
            srcs.append(x)
            pos.append(self.pe_layer(x))
        text = text_pos = None
        if self.text_proj is not None:
            if texts is None:
                raise ValueError("this pixel decoder attends to class texts (text_dim is set): pass texts")
            text = self.text_proj(texts)
            text_pos = self.text_pos_embed.weight[None].expand(text.shape[0], -1, -1).to(text.dtype)
        memory, shapes = self.transformer(srcs, pos, text, text_pos)
        sizes = [h * w for h, w in shapes]
        outs = [
            m.transpose(1, 2).reshape(memory.shape[0], -1, h, w)
            for m, (h, w) in zip(memory.split(sizes, dim=1), shapes)
        ]
        for f, lateral, output in zip(self.fpn_features[::-1], self.lateral_convs, self.output_convs):
            cur = lateral(features[f])
            outs.append(
                output(cur + F.interpolate(outs[-1], size=cur.shape[-2:], mode="bilinear", align_corners=False))
            )
        # contiguous once here: the decoder's mask einsum would copy a channels-last map at every layer
        return self.mask_features(outs[-1]).contiguous(), outs[: self.num_levels]


def _norm(norm: str, channels: int):
    if norm != "GN":
        raise ValueError(f"only GroupNorm ('GN') is supported, got {norm!r}")
    return nn.GroupNorm(32, channels)
