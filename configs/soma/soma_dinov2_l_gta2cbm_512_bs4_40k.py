"""SoMA (DINOv2-L) trained on GTA5 at 512, tested on Cityscapes / BDD100K / Mapillary under the
full-resolution protocol SoMA reports (published GTA average 68.27).

Recipe (SoMA's configs/sora/sora_dinov2-L_mask2former.py): AdamW lr 1e-4, wd 0.05, backbone
(adapter) lr x0.5, poly 0.9 over 40k iterations (``PolyLR(begin=0, end=40000)``), weight decay
annealed by a cosine to 1e-5 (``CosineAnnealingParamScheduler(param_name="weight_decay")``), EMA
of the weights from iteration 12000 with momentum 2e-4 (``EMAHook(begin_iter=12000)``, evaluated
and saved as ``state_dict``), float32, batch 4, Rein's data pipeline and head settings; slide
512 / 341; adapters from the random init's minor components (``model.backbone.soma.init``).
"""

from ..common.data.gta2cbm_512 import dataloader
from ..common.data.protocols import FULL_RESOLUTION
from ..common.models.soma_dinov2_l import model
from ..common.optim import AdamW as optimizer
from ..common.schedule import poly as lr_multiplier  # noqa: F401
from ..common.train import train

model.backbone.update(img_size=512, pretrained="pretrained/dinov2_vitl14_pretrain.pth")
model.update(test_mode="slide", test_crop=(512, 512), test_stride=(341, 341))
dataloader.update(test_protocol_name=FULL_RESOLUTION["name"], test_protocols=FULL_RESOLUTION["resize"])
dataloader.train.total_batch_size = 4
optimizer.lr = 1e-4
optimizer.params.backbone_lr_mult = 0.5
train.cosine_weight_decay.update(enabled=True, eta_min=1e-5)
# mmengine's EMA: copies until iteration 11999, then avg = (1 - 2e-4) avg + 2e-4 w (TrainableEMA's rule)
train.ema.update(enabled=True, decay=1 - 2e-4, start_iter=12000)
train.update(max_iter=40000, output_dir="./output/soma_dinov2_l_gta2cbm_512_bs4_40k")
