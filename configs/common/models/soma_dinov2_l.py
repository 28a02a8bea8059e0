"""SoMA: frozen DINOv2 ViT-L (patch 14 -> 16, as the Rein recipe) with rank-16 adapters on the
minor singular components of q/k/v, proj, fc1, fc2 in blocks 8..23 (of the random init, as SoMA's
released code does), plus their biases; the Mask2Former head learns its own queries (no Rein
linking)."""

from detectron2.config import LazyCall as L

from vltseg_d2.modeling import SoMA

from .mask2former_vit import model

model.backbone.update(
    model_name="vit_large_patch14_dinov2",
    patch_size=16,
    out_indices=(7, 11, 15, 23),
    freeze=True,
    # init="released": SoMA's code and released models (SVD of the random init, then the pretrained
    # weight loaded whole); "paper": the paper's split W = W_res + s B A (see vltseg_d2/modeling/backbone/soma.py)
    soma=L(SoMA)(
        rank=16, alpha=16, start_block=8, targets=("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"), init="released"
    ),
)
