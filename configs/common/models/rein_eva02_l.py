"""Rein on EVA02-CLIP-L (patch 14 -> 16), frozen, LoRA-Reins with linked queries."""
from .mask2former_vit import CLIP_MEAN, CLIP_STD
from .rein_dinov2_l import model

model.backbone.model_name = "eva02_large_patch14_clip_224"
model.pixel_mean, model.pixel_std = CLIP_MEAN, CLIP_STD
