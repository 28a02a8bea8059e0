"""VLTSeg (EVA02-CLIP-L/14, fully fine-tuned) trained on GTA5, tested on Cityscapes / BDD / Mapillary.

Recipe (the reference code): frames resized to 1280x720, 512 crops; AdamW lr 1e-4, wd 0.05, backbone
lr x0.1, gradient clipping at max-norm 0.01, poly 0.9 over 5k iterations at batch 16; slide 512 /
stride 426. Put EVA02_CLIP_L_psz14_s4B.pt under pretrained/.
"""

from ..common.data.gta2cbm_512 import dataloader
from ..common.models.vltseg_eva02_l import model
from ..common.optim import AdamW as optimizer
from ..common.schedule import poly as lr_multiplier  # noqa: F401
from ..common.train import train

model.backbone.update(img_size=512, pretrained="pretrained/EVA02_CLIP_L_psz14_s4B.pt")
model.update(test_mode="slide", test_crop=(512, 512), test_stride=(426, 426))
dataloader.train.mapper.augmentations.update(short_edges=[720], max_size=1280)
dataloader.train.total_batch_size = 16
optimizer.lr = 1e-4
optimizer.params.backbone_lr_mult = 0.1
train.clip_grad.update(enabled=True, max_norm=0.01)
train.update(
    max_iter=5000,
    checkpointer=dict(period=1000, max_to_keep=3),
    eval_period=1000,
    output_dir="./output/vltseg_eva02_l_gta2cbm_512_bs16_5k",
)
