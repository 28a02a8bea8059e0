"""Rein on EVA02-CLIP-L (patch 14 -> 16), frozen, LoRA-Reins with linked queries.

Input normalisation stays ImageNet's (inherited from the DINOv2 model), not CLIP's: Rein's own
EVA02 config (``rein_eva02-L_mask2former.py``) normalises with mean (123.675, 116.28, 103.53) and
std (58.395, 57.12, 57.375).
"""

from .rein_dinov2_l import model

model.backbone.model_name = "eva02_large_patch14_clip_224"
