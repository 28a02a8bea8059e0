"""Rein (DINOv2-L, LoRA-Reins) trained on GTA5 at 512, tested on Cityscapes / BDD100K / Mapillary.

Recipe (the reference code): AdamW lr 1e-4, wd 0.05, poly 0.9 over 40k iterations, batch 4 on one
GPU, slide 512 / stride 341. Put dinov2_vitl14_pretrain.pth under pretrained/ (or override
model.backbone.pretrained=...).
"""

from ..common.data.gta2cbm_512 import dataloader  # noqa: F401
from ..common.models.rein_dinov2_l import model
from ..common.optim import AdamW as optimizer
from ..common.schedule import poly as lr_multiplier  # noqa: F401
from ..common.train import train

model.backbone.update(img_size=512, pretrained="pretrained/dinov2_vitl14_pretrain.pth")
model.update(test_mode="slide", test_crop=(512, 512), test_stride=(341, 341))
optimizer.lr = 1e-4
dataloader.train.total_batch_size = 4
train.update(max_iter=40000, output_dir="./output/rein_dinov2_l_gta2cbm_512_bs4_40k")
