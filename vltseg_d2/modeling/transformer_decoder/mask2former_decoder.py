"""Mask2Former's multi-scale masked-attention transformer decoder (official detectron2 names).

Each layer runs masked cross-attention to one feature level (round robin, coarsest first), then
self-attention among the queries, then an FFN, each post-normed. Predictions (class logits and
mask logits) are made before the first layer and after every layer, for deep supervision.
With ``rein_linked=True`` the queries come from Rein: the linked queries Q replace
the learned positional ``query_embed`` and ``querys2feat(Q)`` replaces ``query_feat``.
With ``text_dim`` set (tqdm) the queries are the class text embeddings of each image, one per
class: ``text_proj(T)`` replaces ``query_feat`` (per image), ``query_embed`` stays learned;
``text_proj`` is tqdm's two-layer MLP (Linear, ReLU, Linear: ``tqdm_head.py``), the pixel
decoder's own ``text_proj`` a single Linear.
"""

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..position_encoding import PositionEmbeddingSine


def _xavier(module):
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


class SelfAttentionLayer(nn.Module):
    def __init__(self, d_model, nhead, dropout=0.0):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        _xavier(self)

    def forward(self, tgt, query_pos):
        q = k = tgt + query_pos
        return self.norm(tgt + self.self_attn(q, k, value=tgt, need_weights=False)[0])


class CrossAttentionLayer(nn.Module):
    def __init__(self, d_model, nhead, dropout=0.0):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        _xavier(self)

    def forward(self, tgt, memory, attn_mask, pos, query_pos):
        out = self.multihead_attn(tgt + query_pos, memory + pos, value=memory, attn_mask=attn_mask, need_weights=False)[
            0
        ]
        return self.norm(tgt + out)


class FFNLayer(nn.Module):
    def __init__(self, d_model, dim_feedforward=2048, dropout=0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        _xavier(self)

    def forward(self, tgt):
        return self.norm(tgt + self.linear2(self.dropout(F.relu(self.linear1(tgt)))))


class MLP(nn.Module):
    def __init__(self, input_dim, hidden_dim, output_dim, num_layers):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims, dims[1:] + [output_dim]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < len(self.layers) - 1 else layer(x)
        return x


class MultiScaleMaskedTransformerDecoder(nn.Module):
    """Args:
    in_channels: channels of the pixel decoder's outputs (its ``conv_dim``).
    num_classes: K (the class head predicts K + 1 with "no object").
    hidden_dim, num_queries, nheads, dim_feedforward, dec_layers: 256, 100, 8, 2048, 9 in the recipes.
    mask_dim: channels of the mask features.
    num_feature_levels: 3.
    rein_linked: take queries from Rein instead of learning ``query_feat``/``query_embed``.
    text_dim: width of the class text embeddings that become the queries (tqdm: 768), or None.
    """

    def __init__(
        self,
        *,
        in_channels: int = 256,
        num_classes: int = 19,
        hidden_dim: int = 256,
        num_queries: int = 100,
        nheads: int = 8,
        dim_feedforward: int = 2048,
        dec_layers: int = 9,
        mask_dim: int = 256,
        num_feature_levels: int = 3,
        rein_linked: bool = False,
        text_dim: Optional[int] = None,
    ):
        super().__init__()
        self.pe_layer = PositionEmbeddingSine(hidden_dim // 2)
        self.num_heads, self.num_layers, self.num_queries = nheads, dec_layers, num_queries
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(hidden_dim, nheads) for _ in range(dec_layers)
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(hidden_dim, nheads) for _ in range(dec_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(hidden_dim, dim_feedforward) for _ in range(dec_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.rein_linked = rein_linked
        self.text_queries = text_dim is not None
        if rein_linked:
            self.querys2feat = nn.Linear(hidden_dim, hidden_dim)
        elif self.text_queries:
            self.text_proj = nn.Sequential(
                nn.Linear(text_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, hidden_dim)
            )
            self.query_embed = nn.Embedding(num_queries, hidden_dim)
        else:
            self.query_feat = nn.Embedding(num_queries, hidden_dim)
            self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.num_feature_levels = num_feature_levels
        self.level_embed = nn.Embedding(num_feature_levels, hidden_dim)
        self.input_proj = nn.ModuleList()
        for _ in range(num_feature_levels):
            if in_channels != hidden_dim:
                conv = nn.Conv2d(in_channels, hidden_dim, kernel_size=1)
                nn.init.kaiming_uniform_(conv.weight, a=1)
                nn.init.constant_(conv.bias, 0)
                self.input_proj.append(conv)
            else:
                self.input_proj.append(nn.Sequential())
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)

    def forward(self, x: List[torch.Tensor], mask_features: torch.Tensor, queries: Optional[torch.Tensor] = None):
        """x: the multi-scale features (coarsest first); queries: Rein's linked queries (Q x C), or
        with ``text_dim`` the class text embeddings (B x Q x text_dim)."""
        src, pos, sizes = [], [], []
        for i in range(self.num_feature_levels):
            sizes.append(x[i].shape[-2:])
            pos.append(self.pe_layer(x[i]).flatten(2).permute(2, 0, 1))
            src.append(
                (self.input_proj[i](x[i]).flatten(2) + self.level_embed.weight[i][None, :, None]).permute(2, 0, 1)
            )
        bs = src[0].shape[1]
        if self.rein_linked:
            if queries is None:
                raise ValueError("this decoder is Rein-linked: pass the backbone's rein.queries()")
            query_embed = queries[:, None].expand(-1, bs, -1)
            output = self.querys2feat(queries)[:, None].expand(-1, bs, -1)
        elif self.text_queries:
            if queries is None or queries.dim() != 3 or queries.shape[1] != self.num_queries:
                raise ValueError(f"this decoder takes {self.num_queries} text queries per image (B x Q x text_dim)")
            query_embed = self.query_embed.weight[:, None].expand(-1, bs, -1)
            output = self.text_proj(queries).transpose(0, 1)
        else:
            query_embed = self.query_embed.weight[:, None].expand(-1, bs, -1)
            output = self.query_feat.weight[:, None].expand(-1, bs, -1)

        classes, masks = [], []
        cls, mask, attn_mask = self._predict(output, mask_features, sizes[0])
        classes.append(cls)
        masks.append(mask)
        for i in range(self.num_layers):
            level = i % self.num_feature_levels
            # a query that masks every position attends everywhere (as the reference does, without its
            # data-dependent indexing, so the decoder compiles as one graph)
            attn_mask = attn_mask & ~attn_mask.all(-1, keepdim=True)
            output = self.transformer_cross_attention_layers[i](output, src[level], attn_mask, pos[level], query_embed)
            output = self.transformer_self_attention_layers[i](output, query_embed)
            output = self.transformer_ffn_layers[i](output)
            cls, mask, attn_mask = self._predict(output, mask_features, sizes[(i + 1) % self.num_feature_levels])
            classes.append(cls)
            masks.append(mask)
        return {
            "pred_logits": classes[-1],
            "pred_masks": masks[-1],
            "aux_outputs": [{"pred_logits": c, "pred_masks": m} for c, m in zip(classes[:-1], masks[:-1])],
        }

    def _predict(self, output, mask_features, attn_size):
        decoded = self.decoder_norm(output).transpose(0, 1)
        outputs_class = self.class_embed(decoded)
        outputs_mask = torch.einsum("bqc,bchw->bqhw", self.mask_embed(decoded), mask_features)
        attn_mask = F.interpolate(outputs_mask, size=attn_size, mode="bilinear", align_corners=False)
        # True = not allowed to attend (masked attention keeps the predicted foreground)
        attn_mask = (attn_mask.sigmoid().flatten(2) < 0.5).unsqueeze(1).repeat(1, self.num_heads, 1, 1).flatten(0, 1)
        return outputs_class, outputs_mask, attn_mask.detach()
