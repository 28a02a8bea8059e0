"""The released Rein checkpoint layout (mmsegmentation + mmdetection names) at any size.

Written from Rein's model definition independently of the converter, and checked against the
full-size fixture, so tiny checkpoints in the released layout can be made for value tests.
"""

import torch


def released_rein_shapes(
    c=1024,
    depth=24,
    tokens=100,
    lora=16,
    q=256,
    enc_layers=6,
    enc_ffn=1024,
    enc_heads=8,
    levels=3,
    points=4,
    dec_layers=9,
    dec_ffn=2048,
    classes=19,
) -> dict:
    shapes = {
        "backbone.reins.scale": (),
        "backbone.reins.learnable_tokens_a": (depth, tokens, lora),
        "backbone.reins.learnable_tokens_b": (depth, lora, c),
    }
    for name, (o, i) in {
        "mlp_token2feat": (c, c),
        "mlp_delta_f": (c, c),
        "transform": (q, c),
        "merge": (q, 3 * q),
    }.items():
        shapes[f"backbone.reins.{name}.weight"], shapes[f"backbone.reins.{name}.bias"] = (o, i), (o,)
    pd = "decode_head.pixel_decoder."
    for lvl in range(levels):
        shapes.update(
            {
                f"{pd}input_convs.{lvl}.conv.weight": (q, c, 1, 1),
                f"{pd}input_convs.{lvl}.conv.bias": (q,),
                f"{pd}input_convs.{lvl}.gn.weight": (q,),
                f"{pd}input_convs.{lvl}.gn.bias": (q,),
            }
        )
    linears = {
        "self_attn.sampling_offsets": (enc_heads * levels * points * 2, q),
        "self_attn.attention_weights": (enc_heads * levels * points, q),
        "self_attn.value_proj": (q, q),
        "self_attn.output_proj": (q, q),
        "ffn.layers.0.0": (enc_ffn, q),
        "ffn.layers.1": (q, enc_ffn),
    }
    for i in range(enc_layers):
        for name, (o, n_in) in linears.items():
            shapes[f"{pd}encoder.layers.{i}.{name}.weight"], shapes[f"{pd}encoder.layers.{i}.{name}.bias"] = (
                (o, n_in),
                (o,),
            )
        for n in range(2):
            shapes[f"{pd}encoder.layers.{i}.norms.{n}.weight"] = shapes[f"{pd}encoder.layers.{i}.norms.{n}.bias"] = (q,)
    shapes.update(
        {
            f"{pd}level_encoding.weight": (levels, q),
            f"{pd}lateral_convs.0.conv.weight": (q, c, 1, 1),
            f"{pd}lateral_convs.0.gn.weight": (q,),
            f"{pd}lateral_convs.0.gn.bias": (q,),
            f"{pd}output_convs.0.conv.weight": (q, q, 3, 3),
            f"{pd}output_convs.0.gn.weight": (q,),
            f"{pd}output_convs.0.gn.bias": (q,),
            f"{pd}mask_feature.weight": (q, q, 1, 1),
            f"{pd}mask_feature.bias": (q,),
        }
    )
    td = "decode_head.transformer_decoder."
    for i in range(dec_layers):
        for attn in ("self_attn", "cross_attn"):
            shapes.update(
                {
                    f"{td}layers.{i}.{attn}.attn.in_proj_weight": (3 * q, q),
                    f"{td}layers.{i}.{attn}.attn.in_proj_bias": (3 * q,),
                    f"{td}layers.{i}.{attn}.attn.out_proj.weight": (q, q),
                    f"{td}layers.{i}.{attn}.attn.out_proj.bias": (q,),
                }
            )
        shapes.update(
            {
                f"{td}layers.{i}.ffn.layers.0.0.weight": (dec_ffn, q),
                f"{td}layers.{i}.ffn.layers.0.0.bias": (dec_ffn,),
                f"{td}layers.{i}.ffn.layers.1.weight": (q, dec_ffn),
                f"{td}layers.{i}.ffn.layers.1.bias": (q,),
            }
        )
        for n in range(3):
            shapes[f"{td}layers.{i}.norms.{n}.weight"] = shapes[f"{td}layers.{i}.norms.{n}.bias"] = (q,)
    shapes.update(
        {
            f"{td}post_norm.weight": (q,),
            f"{td}post_norm.bias": (q,),
            "decode_head.level_embed.weight": (levels, q),
            "decode_head.cls_embed.weight": (classes + 1, q),
            "decode_head.cls_embed.bias": (classes + 1,),
        }
    )
    for n in (0, 2, 4):
        shapes[f"decode_head.mask_embed.{n}.weight"], shapes[f"decode_head.mask_embed.{n}.bias"] = (q, q), (q,)
    shapes["decode_head.querys2feat.weight"], shapes["decode_head.querys2feat.bias"] = (q, q), (q,)
    return shapes


def distinct_tensors(shapes: dict, seed: int = 0) -> dict:
    """Random tensors of the given shapes: no two are equal, so a misplaced one is caught."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * 0.2 for k, s in shapes.items()}
