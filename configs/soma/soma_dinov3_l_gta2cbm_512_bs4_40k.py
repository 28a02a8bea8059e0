"""SoMA on DINOv3 ViT-L/16 (patch 16 native, RoPE, 4 register tokens; Meta's original file or
timm's), GTA5 -> C/B/M at 512; otherwise the DINOv2 SoMA recipe (full-resolution protocol)."""

from .soma_dinov2_l_gta2cbm_512_bs4_40k import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.backbone.update(
    model_name="vit_large_patch16_dinov3", pretrained="pretrained/dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth"
)
train.output_dir = "./output/soma_dinov3_l_gta2cbm_512_bs4_40k"
