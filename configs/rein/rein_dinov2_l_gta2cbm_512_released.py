"""Evaluate Rein's released GTA5 model, converted with tools/convert_rein_checkpoint.py.

    python tools/train_net.py --config-file configs/rein/rein_dinov2_l_gta2cbm_512_released.py \\
        --eval-only train.init_checkpoint=output/rein_gta.pth

The model is the training recipe's: the released tensors are used as they are (interleaved query
pooling, sine encoding without offset), so nothing but the output folder differs.
"""

from .rein_dinov2_l_gta2cbm_512_bs4_40k import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

train.output_dir = "./output/rein_dinov2_l_gta2cbm_512_released"
