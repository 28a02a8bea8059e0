"""The tiny CPU recipe of `make demo`: a small ViT + Mask2Former trained from scratch on the
synthetic source domain, tested on every synthetic target domain (whole-image inference)."""

from ..common.data.semseg import dataloader
from ..common.models.mask2former_vit import model
from ..common.optim import AdamW as optimizer
from ..common.schedule import poly as lr_multiplier  # noqa: F401
from ..common.train import train

model.backbone.update(
    model_name="vit_small_patch14_dinov2",
    model_kwargs=dict(embed_dim=96, depth=4, num_heads=4),
    img_size=256,
    patch_size=16,
    out_indices=(0, 1, 2, 3),
    freeze=False,
)
model.sem_seg_head.pixel_decoder.update(
    in_channels=96, conv_dim=64, mask_dim=64, transformer_enc_layers=2, transformer_dim_feedforward=128
)
model.sem_seg_head.predictor.update(num_queries=24, nheads=4, dim_feedforward=128, dec_layers=3)
model.criterion.num_points = 2048
model.update(test_mode="whole", test_crop=(256, 256), test_stride=(171, 171))

dataloader.train.dataset.names = "synthetic_source_train"
dataloader.train.mapper.augmentations.update(crop_size=(256, 256), short_edges=[192, 224, 256, 288, 320], max_size=1024)
dataloader.train.mapper.cache_mb = 512  # the 300 decoded frames take ~150 MiB: decode each once
dataloader.train.total_batch_size = 4
dataloader.train.num_workers = 1
dataloader.test.num_workers = 1
dataloader.test_datasets = ["synthetic_source_val"] + [
    f"synthetic_{d}_val" for d in ("night", "fog", "rain", "snow", "texture")
]
dataloader.in_domain = ["synthetic_source_val"]

optimizer.lr = 1e-3
train.update(
    max_iter=500,
    device="auto",
    eval_period=0,
    log_period=20,
    checkpointer=dict(period=250, max_to_keep=2),
    output_dir="./output/demo",
)
