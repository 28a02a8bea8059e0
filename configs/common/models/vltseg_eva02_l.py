"""VLTSeg: EVA02-CLIP-L/14 (patch 14 kept), fully fine-tuned, drop-path 0.2, blocks 9/14/19/23."""
from .mask2former_vit import CLIP_MEAN, CLIP_STD, model

model.backbone.update(
    model_name="eva02_large_patch14_clip_224", model_kwargs={"drop_path_rate": 0.2}, patch_size=14,
    out_indices=(9, 14, 19, 23), freeze=False,
)
model.pixel_mean, model.pixel_std = CLIP_MEAN, CLIP_STD
model.test_stride = (426, 426)
