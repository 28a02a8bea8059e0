"""tqdm (EVA02-CLIP-L/14-336, text queries) trained on GTA5 at 512, tested on Cityscapes / BDD / Mapillary.

Every value is from tqdm's ``configs/tqdm/tqdm_eva_vit-l_1e-5_20k-g2c-512.py`` and its bases
(github.com/ByeongHyunPak/tqdm):

- AdamW lr 1e-5, weight decay 1e-4; mmcv 1.x ``custom_keys`` {backbone: lr x0.1, text_encoder:
  lr x0, norm: decay x0}, read longest key first on tqdm's own parameter names (so the image
  tower's norms decay; ``engine/optimizer.custom_key_groups``);
- ``lr_config``: poly 0.9 to an absolute ``min_lr`` 1e-6, linear warm-up over 1500 iterations
  from ratio 1e-6 (``PolyToAbsoluteMinLR``); 20k iterations; checkpoint and evaluation every 2000;
- float32 (``optimizer_config = dict()``: no fp16 hook), no gradient clipping;
- 8 images per GPU (``samples_per_gpu=8``; the GPU count is not in the config or the paper's text
  read here: set ``dataloader.train.total_batch_size`` to 8 x your GPUs);
- ``Resize(ratio_range=(0.5, 2.0))`` of the image's own size, ``RandomCrop(512, cat_max_ratio=0.75)``,
  flip 0.5, ``PhotoMetricDistortion``, CLIP's mean / std, pad to 512 (label 255);
- test: Cityscapes at 2048x1024 (``img_scale=(2048, 1024)``, the full-resolution protocol),
  slide 512 / stride 341.

Not reproduced: its source dataset wraps GTA5 in DAFormer's rare-class sampling
(``UGDataset(rare_class_sampling=dict(min_pixels=3000, class_temp=100, min_crop_ratio=0.5))``);
here images are drawn uniformly (docs/fidelity.md, tqdm).

Put EVA02_CLIP_L_336_psz14_s6B.pt under pretrained/ (``tools/zoo.py get eva02_clip_l14_336``): it
holds both towers.
"""

from detectron2.config import LazyCall as L

from vltseg_d2.engine.optimizer import custom_key_groups
from vltseg_d2.engine.schedule import PolyToAbsoluteMinLR

from ..common.data.gta2cbm_512 import dataloader
from ..common.data.protocols import FULL_RESOLUTION
from ..common.models.tqdm_eva02_l import model
from ..common.optim import AdamW as optimizer
from ..common.train import train

model.backbone.pretrained = "pretrained/EVA02_CLIP_L_336_psz14_s6B.pt"
model.update(test_mode="slide", test_crop=(512, 512), test_stride=(341, 341))
dataloader.train.mapper.augmentations.update(ratio_range=(0.5, 2.0))
dataloader.train.total_batch_size = 8
dataloader.update(test_protocol_name=FULL_RESOLUTION["name"], test_protocols=FULL_RESOLUTION["resize"])
optimizer.update(lr=1e-5, weight_decay=1e-4)
optimizer.params = L(custom_key_groups)(
    model=None,
    base_lr="${..lr}",
    weight_decay="${..weight_decay}",
    custom_keys={"backbone": dict(lr_mult=0.1), "text_encoder": dict(lr_mult=0.0), "norm": dict(decay_mult=0.0)},
    original_names="vltseg_d2.checkpoint.tqdm_mmseg.original_name",
)
lr_multiplier = L(PolyToAbsoluteMinLR)(
    max_iter="${train.max_iter}", power=0.9, min_lr=1e-6, warmup_iters=1500, warmup_ratio=1e-6
)
train.update(
    max_iter=20000,
    checkpointer=dict(period=2000, max_to_keep=3),
    eval_period=2000,
    output_dir="./output/tqdm_eva02_l_gta2cbm_512_bs8_20k",
)
