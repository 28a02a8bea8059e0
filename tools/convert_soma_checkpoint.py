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

from vltseg_d2.checkpoint.convert_files import convert_soma_file
from vltseg_d2.config.cli import run_converter

DEFAULT_CONFIG = "configs/soma/soma_dinov2_l_gta2cbm_512_bs4_40k.py"


def main(argv=None):
    run_converter(argv, __doc__, "SoMA", DEFAULT_CONFIG, "a merged file's DINOv2 weights", convert_soma_file)


if __name__ == "__main__":
    main()
