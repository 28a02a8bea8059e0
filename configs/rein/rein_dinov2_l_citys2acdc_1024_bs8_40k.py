"""Rein (DINOv2-L) trained on Cityscapes at 1024, tested on ACDC fog/night/rain/snow.

Recipe: AdamW lr 6e-5, linear warm-up over 10k iterations then poly to 40k, batch 8 (4 GPUs x 2),
position grid 64x64, slide 1024 / stride 683 at full resolution.
"""

from ..common.data.citys2acdc_1024 import dataloader  # noqa: F401
from ..common.models.rein_dinov2_l import model
from ..common.optim import AdamW as optimizer
from ..common.schedule import poly as lr_multiplier
from ..common.train import train

model.backbone.update(img_size=1024, pretrained="pretrained/dinov2_vitl14_pretrain.pth")
model.update(test_mode="slide", test_crop=(1024, 1024), test_stride=(683, 683))
optimizer.lr = 6e-5
lr_multiplier.warmup_length = 10000 / 40000
dataloader.train.total_batch_size = 8
train.update(max_iter=40000, output_dir="./output/rein_dinov2_l_citys2acdc_1024_bs8_40k")
