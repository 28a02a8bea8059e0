#!/usr/bin/env python
"""Convert a SoMA checkpoint (github.com/ysj9909/SoMA, mmsegmentation layout) into this project's model.

Accepted forms (see vltseg_d2/checkpoint/soma_mmseg.py): the released adapter + head files
(v1.0 release, e.g. soma_dinov2-L_g2cbm_best.pth) and the output of SoMA's merge_soma_weights.py
(the same plus the converted DINOv2 weights). The file is read tensors-only; its EMA-averaged
``state_dict`` is used (mmengine swaps it with ``ema_state_dict`` when saving).

    python tools/convert_soma_checkpoint.py soma_dinov2-L_g2cbm_best.pth output/soma_gta.pth

Evaluate it; the frozen DINOv2 weights come from the original file:

    python tools/train_net.py --config-file configs/soma/soma_dinov2_l_gta2cbm_512_bs4_40k.py --eval-only \\
        train.init_checkpoint=output/soma_gta.pth model.backbone.pretrained=pretrained/dinov2_vitl14_pretrain.pth

The released models were trained on the whole pretrained weight (W_pretrained + s B A), which is
the recipe's model.backbone.soma.init=released; a model built with init=paper refuses the file.
"""

import vltseg_d2  # noqa: F401  (first: it silences detectron2's import-time torch.jit warnings)

# isort: split

import sys

from vltseg_d2.checkpoint import save_atomic
from vltseg_d2.checkpoint.rein_mmseg import UnmappedKeyError
from vltseg_d2.checkpoint.soma_mmseg import convert_soma_state_dict, read_soma_checkpoint
from vltseg_d2.config.cli import converter_arguments, meta_vit, tool_logging
from vltseg_d2.modeling.backbone.weights import WeightsMismatchError
from vltseg_d2.utils.safe_load import CheckpointReadError

DEFAULT_CONFIG = "configs/soma/soma_dinov2_l_gta2cbm_512_bs4_40k.py"


def main(argv=None):
    parser = converter_arguments(__doc__, "SoMA", DEFAULT_CONFIG, "a merged file")
    args = parser.parse_args(argv)
    tool_logging(format="%(message)s")
    try:
        state = read_soma_checkpoint(args.input)
        merged = any(k.endswith("patch_embed.proj.weight") for k in state.get("state_dict", state))
        converted, dropped = convert_soma_state_dict(
            state, meta_vit(args.config_file) if merged else None, source=args.input
        )
    except (FileNotFoundError, CheckpointReadError, WeightsMismatchError, ValueError) as e:
        sys.exit(f"error: {e}")
    except (KeyError, UnmappedKeyError) as e:
        sys.exit(f"error: {args.input}: {e.args[0]}")
    output = {"model": converted, "soma_init": "released", "__source__": f"converted from {args.input}"}
    save_atomic(output, args.output)
    counts = {
        part: sum(k.startswith(prefix) and (tag in k) for k in converted)
        for part, prefix, tag in (("adapter", "backbone.vit.", "lora_"), ("head", "sem_seg_head.", ""))
    }
    vit = sum(k.startswith("backbone.vit.") and "lora_" not in k for k in converted)
    print(
        f"wrote {args.output}: {len(converted)} tensors ({counts['adapter']} adapter, {vit} ViT, "
        f"{counts['head']} head); dropped {len(dropped)}: " + "; ".join(dropped)
    )


if __name__ == "__main__":
    main()
