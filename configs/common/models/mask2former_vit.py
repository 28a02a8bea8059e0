"""Mask2Former (MSDeformAttn pixel decoder, 9-layer masked-attention decoder) on a timm ViT.

The backbone's model is left to the experiment ("???"); the head settings are the recipes'.
"""

from detectron2.config import LazyCall as L

from vltseg_d2.modeling import (
    HungarianMatcher,
    MaskFormer,
    MaskFormerHead,
    MSDeformAttnPixelDecoder,
    MultiScaleMaskedTransformerDecoder,
    SetCriterion,
    ViTBackbone,
)

# Every recipe's reference config normalises with ImageNet's statistics (RGB, 0..255), the EVA02
# ones included (Rein's EVA02 config, the VLTSeg re-implementation).
IMAGENET_MEAN, IMAGENET_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]

model = L(MaskFormer)(
    backbone=L(ViTBackbone)(
        model_name="???",
        model_kwargs={},
        img_size=512,
        patch_size=16,
        out_indices=(7, 11, 15, 23),
        out_strides=(4, 8, 16, 32),
        freeze=False,
        rein=None,
        grad_checkpointing=False,
        pretrained=None,
        patch_resample="bicubic",
    ),
    sem_seg_head=L(MaskFormerHead)(
        pixel_decoder=L(MSDeformAttnPixelDecoder)(
            in_features=("res2", "res3", "res4", "res5"),
            in_channels=1024,
            conv_dim=256,
            mask_dim=256,
            transformer_enc_layers=6,
            transformer_nheads=8,
            transformer_dim_feedforward=1024,
            enc_n_points=4,
        ),
        predictor=L(MultiScaleMaskedTransformerDecoder)(
            in_channels="${..pixel_decoder.conv_dim}",
            num_classes=19,
            hidden_dim="${..pixel_decoder.conv_dim}",
            num_queries=100,
            nheads=8,
            dim_feedforward=2048,
            dec_layers=9,
            mask_dim="${..pixel_decoder.mask_dim}",
            rein_linked=False,
        ),
    ),
    criterion=L(SetCriterion)(
        num_classes="${..sem_seg_head.predictor.num_classes}",
        matcher=L(HungarianMatcher)(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points="${..num_points}"),
        class_weight=2.0,
        mask_weight=5.0,
        dice_weight=5.0,
        eos_coef=0.1,
        num_points=12544,
        oversample_ratio=3.0,
        importance_sample_ratio=0.75,
    ),
    pixel_mean=IMAGENET_MEAN,
    pixel_std=IMAGENET_STD,
    test_mode="slide",
    test_crop=(512, 512),
    test_stride=(341, 341),
    window_batch=None,  # windows per pass: 4 on a GPU, 1 on a CPU (faster there; the same scores)
    tta_scales=(1.0,),  # test-time augmentation, e.g. (0.75, 1.0, 1.25) with tta_flip=True
    tta_flip=False,
)
