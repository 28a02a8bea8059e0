#!/usr/bin/env python
"""Export a checkpoint as one self-contained file holding every weight of the model.

Checkpoints of frozen-backbone recipes (Rein) leave the frozen ViT out and name its source; this
writes the full model (no optimizer state), so it can be used where the original backbone file
is not at hand (deployment, another cluster); loading it reads no backbone file:

    python tools/export_full_model.py --config-file configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py \\
        output/rein_dinov2_l_gta2cbm_512_bs4_40k/model_final.pth rein_gta_full.pth
    python tools/train_net.py --config-file configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py --eval-only \\
        train.init_checkpoint=rein_gta_full.pth
"""

import vltseg_d2  # noqa: F401  (first: it silences detectron2's import-time torch.jit warnings)

# isort: split

import sys

from detectron2.config import instantiate

from vltseg_d2.checkpoint import CheckpointError, load_weights, save_atomic
from vltseg_d2.config import add_override_arguments, load_config_for_tool, overrides_of, tool_parser


def main(argv=None):
    parser = tool_parser(__doc__)
    parser.add_argument("--config-file", required=True, help="the config the checkpoint was trained with")
    parser.add_argument("checkpoint", help="a training checkpoint (compact or full)")
    parser.add_argument("output", help="the single-file model to write")
    add_override_arguments(parser)
    args = parser.parse_args(argv)
    cfg = load_config_for_tool(parser, args.config_file, overrides_of(args))
    model = instantiate(cfg.model)  # on the CPU: only the weights are needed
    try:
        load_weights(model, args.checkpoint)
    except (CheckpointError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    state = model.state_dict()
    save_atomic({"model": state, "__source__": f"exported from {args.checkpoint}"}, args.output)
    print(f"wrote {args.output}: {len(state)} tensors, {sum(v.numel() for v in state.values()):,} values")


if __name__ == "__main__":
    main()
