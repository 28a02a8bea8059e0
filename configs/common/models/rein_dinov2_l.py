"""Rein: frozen DINOv2 ViT-L (patch 14 -> 16, bicubic) + LoRA-Reins (m=100, r=16) with linked queries."""

from detectron2.config import LazyCall as L

from vltseg_d2.modeling import Reins

from .mask2former_vit import model

model.backbone.update(
    model_name="vit_large_patch14_dinov2",
    patch_size=16,
    out_indices=(7, 11, 15, 23),
    freeze=True,
    rein=L(Reins)(
        num_layers=24,
        embed_dims=1024,
        patch_size="${..patch_size}",
        token_length="${...sem_seg_head.predictor.num_queries}",
        lora_dim=16,
        link_token_to_query=True,
        query_dims="${...sem_seg_head.predictor.hidden_dim}",
    ),
)
model.sem_seg_head.predictor.rein_linked = True
