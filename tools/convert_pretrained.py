#!/usr/bin/env python
"""Convert an original pretrained ViT file into a detectron2-ready backbone checkpoint, offline.

    python tools/convert_pretrained.py --config-file configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py \\
        dinov2_vitl14_pretrain.pth output/dinov2_l16_512.pth

Reads EVA-CLIP (``EVA02_CLIP_L_psz14_s4B.pt``), DINOv2 (``dinov2_vitl14_pretrain.pth``), timm or
open_clip state dicts, adapts the patch kernel and position grid to the config's backbone
(``model.backbone.patch_size``, ``img_size``, ``patch_resample``) and writes ``backbone.vit.*``
keys, to be used as ``train.init_checkpoint`` (or load the original file directly with
``model.backbone.pretrained=...``).
"""

import vltseg_d2  # noqa: F401  (first: it silences detectron2's import-time torch.jit warnings)

# isort: split

import sys

from detectron2.config import instantiate

from vltseg_d2.checkpoint import save_atomic
from vltseg_d2.config import add_override_arguments, load_config_for_tool, overrides_of, tool_parser
from vltseg_d2.modeling.backbone.weights import WeightsMismatchError


def main(argv=None):
    parser = tool_parser(__doc__)
    parser.add_argument("--config-file", required=True, help="experiment config whose model.backbone is the target")
    parser.add_argument("input", help="original checkpoint")
    parser.add_argument("output", help="file to write")
    add_override_arguments(parser)
    args = parser.parse_args(argv)
    cfg = load_config_for_tool(parser, args.config_file, overrides_of(args))
    cfg.model.backbone.pretrained = args.input
    cfg.model.backbone.rein = None
    backbone = instantiate(cfg.model.backbone)
    try:
        backbone.load_pretrained()
    except (FileNotFoundError, WeightsMismatchError) as e:
        sys.exit(f"error: {e}")
    state = {"backbone." + k: v for k, v in backbone.state_dict().items()}
    save_atomic({"model": state, "__source__": f"converted from {args.input}"}, args.output)
    print(f"wrote {args.output}: {len(state)} backbone tensors")


if __name__ == "__main__":
    main()
