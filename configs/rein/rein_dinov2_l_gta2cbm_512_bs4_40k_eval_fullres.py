"""Evaluate a Rein GTA5 model under the full-resolution protocol of later papers (tqdm, SoMA)
instead of Rein's own (see configs/common/data/protocols.py); everything else is the recipe's.

    python tools/train_net.py --config-file configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k_eval_fullres.py \\
        --eval-only train.init_checkpoint=output/rein_dinov2_l_gta2cbm_512_bs4_40k/model_final.pth
"""

from ..common.data.protocols import FULL_RESOLUTION
from .rein_dinov2_l_gta2cbm_512_bs4_40k import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

dataloader.update(test_protocol_name=FULL_RESOLUTION["name"], test_protocols=FULL_RESOLUTION["resize"])
