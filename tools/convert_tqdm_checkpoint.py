#!/usr/bin/env python
"""Convert a tqdm checkpoint (github.com/ByeongHyunPak/tqdm, mmsegmentation 0.x layout) into this project's model.

Accepted: the released EVA02-CLIP-L models its README links (GTA5 and Cityscapes) and any
checkpoint its train.py writes. The file is read tensors-only and holds every weight (image and
text towers, context decoder, head, the frozen initial tower), so no other file is needed; the
mapping is in vltseg_d2/checkpoint/tqdm_mmseg.py.

    python tools/convert_tqdm_checkpoint.py tqdm_eva_vit-l_g2c.pth output/tqdm_gta.pth

Evaluate it:

    python tools/train_net.py --config-file configs/tqdm/tqdm_eva02_l_gta2cbm_512_bs8_20k.py --eval-only \\
        train.init_checkpoint=output/tqdm_gta.pth
"""

import vltseg_d2  # noqa: F401  (first: it silences detectron2's import-time torch.jit warnings)

# isort: split

from vltseg_d2.checkpoint.convert_files import convert_tqdm_file
from vltseg_d2.checkpoint.tqdm_mmseg import RECIPE as DEFAULT_CONFIG
from vltseg_d2.config.cli import run_converter


def main(argv=None):
    run_converter(argv, __doc__, "tqdm", DEFAULT_CONFIG, "the file's EVA-CLIP towers", convert_tqdm_file)


if __name__ == "__main__":
    main()
