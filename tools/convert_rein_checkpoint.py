#!/usr/bin/env python
"""Convert Rein's released mmsegmentation checkpoint into this project's model.

    python tools/convert_rein_checkpoint.py rein_dinov2_mask2former_512x512_bs1x4.pth output/rein_gta.pth

Then evaluate the released model (the backbone comes from the original DINOv2 file):

    python tools/train_net.py --config-file configs/rein/rein_dinov2_l_gta2cbm_512_released.py --eval-only \\
        train.init_checkpoint=output/rein_gta.pth model.backbone.pretrained=dinov2_vitl14_pretrain.pth

Every key of the file is mapped by an explicit rule (vltseg_d2/checkpoint/rein_mmseg.py); an
unmapped key is an error naming it.
"""
import argparse
import sys

import torch

from vltseg_d2.checkpoint import UnmappedKeyError, convert_rein_state_dict, save_atomic


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="Rein checkpoint (.pth, mmsegmentation layout)")
    parser.add_argument("output", help="converted checkpoint to write (detectron2 format)")
    args = parser.parse_args(argv)
    state = torch.load(args.input, map_location="cpu", weights_only=True)
    try:
        converted = convert_rein_state_dict(state)
    except UnmappedKeyError as e:
        sys.exit(f"error: {args.input}: {e.args[0]}")
    save_atomic({"model": converted, "__source__": f"converted from {args.input}"}, args.output)
    n_rein = sum(k.startswith("backbone.rein.") for k in converted)
    print(f"wrote {args.output}: {len(converted)} tensors ({n_rein} Rein, {len(converted) - n_rein} head)")


if __name__ == "__main__":
    main()
