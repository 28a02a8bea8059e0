"""VLTSeg: EVA02-CLIP-L/14 (patch 14 kept), fully fine-tuned, drop-path 0.2, blocks 9/14/19/23.

Input normalisation is ImageNet's (inherited), not CLIP's: the public VLTSeg re-implementation's
mmsegmentation config normalises with mean (123.675, 116.28, 103.53), std (58.395, 57.12, 57.375)
(its CLIP statistics are commented out), and the whole ViT is fine-tuned to that input.
"""

from .mask2former_vit import model

model.backbone.update(
    model_name="eva02_large_patch14_clip_224",
    model_kwargs={"drop_path_rate": 0.2},
    patch_size=14,
    out_indices=(9, 14, 19, 23),
    freeze=False,
)
model.test_stride = (426, 426)
