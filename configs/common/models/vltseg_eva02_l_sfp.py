"""VLTSeg with a learned neck: detectron2's SimpleFeaturePyramid (ViTDet) on the last block,
instead of the parameter-free bilinear levels."""

from detectron2.config import LazyCall as L
from detectron2.modeling import SimpleFeaturePyramid

from .vltseg_eva02_l import model

vit = model.backbone
vit.update(out_indices=(23,), out_strides=(16,))  # one level at stride 16 (exact for patch 14 too)
model.backbone = L(SimpleFeaturePyramid)(
    net=vit, in_feature="res4", out_channels=256, scale_factors=(4.0, 2.0, 1.0, 0.5), norm="LN", square_pad=0
)
model.sem_seg_head.pixel_decoder.update(
    in_features=("p2", "p3", "p4", "p5"),
    transformer_in_features=("p3", "p4", "p5"),
    in_channels="${...backbone.out_channels}",
)
del vit
