"""Writers of tiny checkpoints in the original released key layouts (EVA-CLIP, DINOv2).

Each takes a timm reference model and writes its weights the way the original code names them,
so loading the file back must reproduce the reference model exactly.
"""

import torch

# timm Eva name -> EVA-CLIP name (the inverse of timm's checkpoint_filter_fn renames)
_EVA_CLIP_NAMES = (
    ("mlp.norm", "mlp.ffn_ln"),
    ("attn.norm", "attn.inner_attn_ln"),
    ("mlp.fc1_g", "mlp.w1"),
    ("mlp.fc1_x", "mlp.w2"),
    ("mlp.fc2", "mlp.w3"),
    ("attn.q_proj.bias", "attn.q_bias"),
    ("attn.v_proj.bias", "attn.v_bias"),
)


def eva_clip_state(ref) -> dict:
    """The EVA-CLIP ``EVA02_CLIP_*_s4B.pt`` layout: vision tower under ``visual.``, text tower beside it."""
    out = {}
    for k, v in ref.state_dict().items():
        for timm_name, clip_name in _EVA_CLIP_NAMES:
            k = k.replace(timm_name, clip_name)
        out["visual." + k] = v.clone()
    dim, grid = ref.embed_dim, ref.patch_embed.grid_size
    head_dim = dim // ref.blocks[0].attn.num_heads
    freqs = torch.randn(grid[0] * grid[1], head_dim)
    out["visual.rope.freqs_cos"], out["visual.rope.freqs_sin"] = freqs.cos(), freqs.sin()
    for i in range(len(ref.blocks)):
        out[f"visual.blocks.{i}.attn.rope.freqs_cos"] = freqs.cos()
        out[f"visual.blocks.{i}.attn.rope.freqs_sin"] = freqs.sin()
    out["visual.norm.weight"], out["visual.norm.bias"] = torch.ones(dim), torch.zeros(dim)
    out["visual.head.weight"], out["visual.head.bias"] = torch.randn(8, dim), torch.zeros(8)
    out["text.token_embedding.weight"] = torch.randn(10, 8)
    out["logit_scale"] = torch.tensor(4.6)
    return out


def dinov2_state(ref) -> dict:
    """The ``dinov2_vit*14_pretrain.pth`` layout: class token's position inside ``pos_embed``,
    ``mask_token``, ``register_tokens`` for the register variants."""
    out = {k: v.clone() for k, v in ref.state_dict().items()}
    out["mask_token"] = torch.zeros(1, ref.embed_dim)
    if ref.reg_token is not None:  # timm folds the class position into cls_token: undo that
        cls_pos = torch.randn(1, 1, ref.embed_dim) * 0.02
        out["register_tokens"] = out.pop("reg_token")
        out["cls_token"] = out["cls_token"] - cls_pos
        out["pos_embed"] = torch.cat([cls_pos, out["pos_embed"]], dim=1)
    out["norm.weight"], out["norm.bias"] = torch.ones(ref.embed_dim), torch.zeros(ref.embed_dim)
    return out


def dinov3_state(ref) -> dict:
    """Meta's DINOv3 layout (``dinov3_vitl16_pretrain_lvd1689m-*.pth``): ``storage_tokens`` for
    timm's ``reg_token``, ``ls1.gamma``/``ls2.gamma`` for ``gamma_1``/``gamma_2``, a fused
    ``qkv.bias`` with its ``bias_mask`` (the ViT-L biases are zero), ``rope_embed.periods`` (in
    bfloat16, as Meta's files have them), ``mask_token`` and the final norm."""
    renames = (("reg_token", "storage_tokens"), ("gamma_1", "ls1.gamma"), ("gamma_2", "ls2.gamma"))
    out = {}
    for k, v in ref.state_dict().items():
        for timm_name, meta_name in renames:
            k = k.replace(timm_name, meta_name)
        out[k] = v.clone()
    dim = ref.embed_dim
    for i in range(len(ref.blocks)):
        q, v = out.pop(f"blocks.{i}.attn.q_bias", None), out.pop(f"blocks.{i}.attn.v_bias", None)
        # Meta's fused bias; the k third is masked out by bias_mask (any value), zeros where timm has no bias
        k = torch.full((dim,), 0.5)
        out[f"blocks.{i}.attn.qkv.bias"] = torch.cat([q, k, v]) if q is not None else torch.zeros(3 * dim)
        out[f"blocks.{i}.attn.qkv.bias_mask"] = torch.cat(
            [torch.ones(dim), torch.full((dim,), float("nan")), torch.ones(dim)]
        )
    out["rope_embed.periods"] = ref.rope.periods.to(torch.bfloat16)  # Meta stores them in bfloat16
    out["mask_token"] = torch.zeros(1, dim)
    out["norm.weight"], out["norm.bias"] = torch.ones(dim), torch.zeros(dim)
    return out
