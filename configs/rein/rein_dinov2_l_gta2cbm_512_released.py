"""Evaluate Rein's released GTA5 model, converted with tools/convert_rein_checkpoint.py.

    python tools/train_net.py --config-file configs/rein/rein_dinov2_l_gta2cbm_512_released.py \\
        --eval-only train.init_checkpoint=output/rein_gta.pth

The released head was trained with mmdetection's position encoding (offset 0).
"""
from .rein_dinov2_l_gta2cbm_512_bs4_40k import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.sem_seg_head.pixel_decoder.pe_offset = 0.0
train.output_dir = "./output/rein_dinov2_l_gta2cbm_512_released"
