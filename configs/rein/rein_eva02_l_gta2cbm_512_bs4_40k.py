"""Rein on EVA02-CLIP-L (patch 14 -> 16), GTA5 -> C/B/M at 512; otherwise the DINOv2 recipe."""

from ..common.models.rein_eva02_l import model as _eva_model
from .rein_dinov2_l_gta2cbm_512_bs4_40k import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.backbone.model_name = _eva_model.backbone.model_name
model.backbone.pretrained = "pretrained/EVA02_CLIP_L_psz14_s4B.pt"
train.output_dir = "./output/rein_eva02_l_gta2cbm_512_bs4_40k"
