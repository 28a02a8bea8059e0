"""Rein on DINOv2 ViT-L/14 with 4 registers (patch 14 -> 16, bicubic), GTA5 -> C/B/M at 512;
otherwise the DINOv2 Rein recipe (Rein protocol).
Register tokens pass through Rein untouched, like the class token."""

from .rein_dinov2_l_gta2cbm_512_bs4_40k import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.backbone.update(
    model_name="vit_large_patch14_reg4_dinov2", pretrained="pretrained/dinov2_vitl14_reg4_pretrain.pth"
)
train.output_dir = "./output/rein_dinov2reg_l_gta2cbm_512_bs4_40k"
