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

from vltseg_d2.checkpoint.convert_files import convert_soma_file
from vltseg_d2.checkpoint.rein_mmseg import UnmappedKeyError
from vltseg_d2.config.cli import converter_arguments, tool_logging
from vltseg_d2.modeling.backbone.weights import WeightsMismatchError
from vltseg_d2.utils.safe_load import CheckpointReadError

DEFAULT_CONFIG = "configs/soma/soma_dinov2_l_gta2cbm_512_bs4_40k.py"


def main(argv=None):
    parser = converter_arguments(__doc__, "SoMA", DEFAULT_CONFIG, "a merged file's DINOv2 weights")
    args = parser.parse_args(argv)
    tool_logging(format="%(message)s")
    try:
        print(convert_soma_file(args.input, args.output, args.config_file))
    except (FileNotFoundError, CheckpointReadError, WeightsMismatchError, ValueError) as e:
        sys.exit(f"error: {e}")
    except (KeyError, UnmappedKeyError) as e:
        sys.exit(f"error: {args.input}: {e.args[0]}")


if __name__ == "__main__":
    main()
