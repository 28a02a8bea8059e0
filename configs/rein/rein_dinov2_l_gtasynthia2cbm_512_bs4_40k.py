"""Rein (DINOv2-L) trained on GTA5 + SYNTHIA (half of the samples each), tested on Cityscapes /
BDD100K / Mapillary under the Rein protocol; otherwise the GTA5 recipe (published: 68.1 on
Cityscapes). The two sources are interleaved deterministically, so --resume continues the mix.
"""

from detectron2.config import LazyCall as L

from vltseg_d2.data.sources import source_datasets

from .rein_dinov2_l_gta2cbm_512_bs4_40k import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

dataloader.train.dataset = L(source_datasets)(names=["gta5_train", "synthia_train"])
dataloader.train.ratios = [0.5, 0.5]
train.output_dir = "./output/rein_dinov2_l_gtasynthia2cbm_512_bs4_40k"
