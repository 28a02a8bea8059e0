"""Tiny but complete models built from the real LazyConfig pieces (official module names)."""

from detectron2.config import LazyConfig, instantiate

CONFIGS = "configs/common/models/"


def tiny_model_cfg(base="rein_dinov2_l", width=64, depth=4, hidden=64, queries=20, dec_layers=3, img_size=64):
    cfg = LazyConfig.load(CONFIGS + base + ".py").model
    bb = cfg.backbone
    bb.model_kwargs = dict(bb.model_kwargs or {}, embed_dim=width, depth=depth, num_heads=4)
    if "eva02" not in bb.model_name:
        bb.model_name = "vit_small_patch14_dinov2"
    bb.out_indices = tuple(range(depth - 4, depth))
    bb.img_size = img_size
    if bb.rein is not None:
        bb.rein.update(num_layers=depth, embed_dims=width, lora_dim=4)
    cfg.sem_seg_head.pixel_decoder.update(
        in_channels=width,
        conv_dim=hidden,
        mask_dim=hidden,
        transformer_enc_layers=2,
        transformer_dim_feedforward=2 * hidden,
    )
    cfg.sem_seg_head.predictor.update(num_queries=queries, nheads=4, dim_feedforward=2 * hidden, dec_layers=dec_layers)
    cfg.criterion.num_points = 256
    cfg.test_crop, cfg.test_stride = (64, 64), (43, 43)
    return cfg


def tiny_model(**kwargs):
    return instantiate(tiny_model_cfg(**kwargs))
