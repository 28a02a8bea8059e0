#!/usr/bin/env python
"""Convert a Rein mmsegmentation checkpoint into this project's model (detectron2 format).

Accepted forms (see vltseg_d2/checkpoint/rein_mmseg.py):
  - the released Rein + head file, e.g. iter_40000_published.pth or citys2acdc_40k_rein_head.pth;
  - the full segmentor of Rein's generate_full_weights.py (DINOv2 weights included);
  - an mmengine training checkpoint (meta, message_hub, optimizer, schedulers are ignored).
The file is read without running any code pickled in it: only tensors are taken.

    python tools/convert_rein_checkpoint.py iter_40000_published.pth output/rein_gta.pth

Evaluate the released model; the DINOv2 weights come from the original file, unless the input
was a full segmentor file, which already contains them:

    python tools/train_net.py --config-file configs/rein/rein_dinov2_l_gta2cbm_512_released.py --eval-only \\
        train.init_checkpoint=output/rein_gta.pth model.backbone.pretrained=pretrained/dinov2_vitl14_pretrain.pth

A full segmentor file's backbone is converted for the ViT of --config-file (its patch size and
position grid); use the 1024 config for the Cityscapes -> ACDC model. Every key is mapped by an
explicit rule; an unmapped key is an error naming it.
"""

import vltseg_d2  # noqa: F401  (first: it silences detectron2's import-time torch.jit warnings)

# isort: split

from vltseg_d2.checkpoint.convert_files import convert_rein_file
from vltseg_d2.config.cli import run_converter

DEFAULT_CONFIG = "configs/rein/rein_dinov2_l_gta2cbm_512_released.py"


def main(argv=None):
    run_converter(argv, __doc__, "Rein", DEFAULT_CONFIG, "a full segmentor file's DINOv2 weights", convert_rein_file)


if __name__ == "__main__":
    main()
