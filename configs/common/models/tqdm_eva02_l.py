"""tqdm (Pak et al., ECCV 2024) on EVA02-CLIP-L/14-336: text queries, one per class, fixed matching.

Values from its EVA02-L configs (``configs/tqdm/tqdm_eva_vit-l_1e-5_20k-g2c-512.py``) and code:
image tower fully fine-tuned, blocks 7, 11, 15, 23 through a BEiT-style FPN, CLIP's 768-d global and
dense embeddings; text tower frozen, context length 13 of which 5 for the class name (8 learned
context vectors); context decoder width 256, 4 heads, 3 layers, dropout 0.1; pixel decoder with
text-to-pixel attention and a final LayerNorm (6 layers, FFN 2048: its config writes ``ffn_cfgs``
with 1024, "reduced from 2048", but also the layer's deprecated ``feedforward_channels=2048``, which
mmcv 1.x's ``BaseTransformerLayer`` copies over ``ffn_cfgs``, so the model it trained has 2048);
decoder with 19 text queries (9 layers, FFN 2048); class scores made at 1/4 and then upsampled;
losses class 2.0 (no object 0.1), mask 5.0, dice 5.0 on 12,544 points; CLIP's normalisation.
"""

from detectron2.config import LazyCall as L

from vltseg_d2.data.datasets.classes import CLASS_NAMES
from vltseg_d2.modeling import ClipImageTower, ContextDecoder, FixedMatcher, PromptedTextEncoder, TextQueryMaskFormer

from .mask2former_vit import model

CLIP_MEAN = [v * 255 for v in (0.48145466, 0.4578275, 0.40821073)]
CLIP_STD = [v * 255 for v in (0.26862954, 0.26130258, 0.27577711)]

# Mask2Former's head, criterion and inference settings, with tqdm's parts swapped in
model._target_ = TextQueryMaskFormer
model.backbone = L(ClipImageTower)(
    model_name="eva02_large_patch14_clip_336", img_size=512, clip_dim=768, out_indices=(7, 11, 15, 23)
)
model.text_encoder = L(PromptedTextEncoder)(class_names=list(CLASS_NAMES), name_length=5, tower=dict(context_length=13))
model.context_decoder = L(ContextDecoder)(
    transformer_width=256, transformer_heads=4, transformer_layers=3, visual_dim=768, dropout=0.1
)
model.regularisers = ("language", "vision", "score_map")
model.sem_seg_head.pixel_decoder.update(in_channels=1024, text_dim=768, num_texts=19, transformer_dim_feedforward=2048)
model.sem_seg_head.predictor.update(num_queries=19, text_dim=768)
model.criterion.matcher = L(FixedMatcher)(num_classes="${..num_classes}")
model.update(pixel_mean=CLIP_MEAN, pixel_std=CLIP_STD)
