"""tqdm's model at the demo recipe's size on the built-in synthetic benchmark (CPU): a tiny EVA02
image tower and a tiny CLIP text tower (random weights: no file is read), the 19 class names as
queries with learned context, the context decoder, fixed matching and the three regularisers."""

from ..common.models.tqdm_eva02_l import model
from .tiny_synthetic_cpu import dataloader, lr_multiplier, optimizer, train  # noqa: F401

model.backbone.update(model_kwargs=dict(embed_dim=96, depth=4, num_heads=4), img_size=256, clip_dim=64,
                      out_indices=(0, 1, 2, 3))  # fmt: skip
model.text_encoder.tower = dict(context_length=13, width=64, heads=4, layers=2, output_dim=64)
model.context_decoder.update(transformer_width=32, transformer_heads=4, transformer_layers=1, visual_dim=64)
model.sem_seg_head.pixel_decoder.update(
    in_channels=96, conv_dim=64, mask_dim=64, transformer_enc_layers=2, transformer_dim_feedforward=128,
    transformer_nheads=4, text_dim=64,
)  # fmt: skip
model.sem_seg_head.predictor.update(nheads=4, dim_feedforward=128, dec_layers=3, text_dim=64)
model.criterion.num_points = 2048
model.update(test_mode="whole", test_crop=(256, 256), test_stride=(171, 171))
train.output_dir = "./output/demo_tqdm"
