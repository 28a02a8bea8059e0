"""VLTSeg (EVA02-CLIP-L/14) trained on Cityscapes at 2048x1024 with 1024 crops, tested on ACDC.

Recipe: 20k iterations at batch 8, backbone lr x0.1, clipping 0.01, base lr for 500 iterations then
poly (the re-implementation's ``schedule_20k.py``: ``PolyLR(begin=500, end=20000)``); slide 1024 /
stride 768. The other values and their sources: vltseg_eva02_l_gta2cbm_512_bs16_5k.py.
"""

from ..common.data.citys2acdc_1024 import dataloader
from .vltseg_eva02_l_gta2cbm_512_bs16_5k import lr_multiplier, model, optimizer, train  # noqa: F401

model.backbone.img_size = 1024
model.update(test_crop=(1024, 1024), test_stride=(768, 768))
dataloader.train.mapper.augmentations.update(short_edges=[1024], max_size=2048)
dataloader.train.total_batch_size = 8
lr_multiplier.warmup_length = 500 / 20000
train.update(
    max_iter=20000,
    checkpointer=dict(period=4000, max_to_keep=3),
    eval_period=4000,
    output_dir="./output/vltseg_eva02_l_citys2acdc_1024_bs8_20k",
)
