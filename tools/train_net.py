#!/usr/bin/env python
"""Train or evaluate a vltseg_d2 model (detectron2's command line, LazyConfig configs).

Train (8 GPUs), overriding config values with trailing key=value pairs:
    python tools/train_net.py --config-file configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py \\
        --num-gpus 8 train.max_iter=1000 optimizer.lr=5e-5

Resume after a crash (continues from the last checkpoint in train.output_dir):
    python tools/train_net.py --config-file ... --resume

Evaluate on every target domain of the config (or the listed ones), write the cross-domain
table next to the checkpoint:
    python tools/train_net.py --config-file ... --eval-only train.init_checkpoint=ckpt.pth \\
        "dataloader.test_datasets=[cityscapes_val,bdd_val]" --per-class

Several machines: add --num-machines N --machine-rank R --dist-url tcp://HOST:PORT; SLURM:
tools/slurm_train.sh. On CPU, --num-gpus N runs N gloo processes.
"""
import logging
import os

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import LazyConfig
from detectron2.engine import create_ddp_model, default_argument_parser, default_setup, launch
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from vltseg_d2.config import OverrideError, apply_overrides
from vltseg_d2.engine import Trainer, resolve_device

logger = logging.getLogger("vltseg_d2")


def setup(args):
    cfg = LazyConfig.load(args.config_file)
    cfg = apply_overrides(cfg, args.opts)
    default_setup(cfg, args)
    setup_logger(cfg.train.output_dir, distributed_rank=comm.get_rank(), name="vltseg_d2", abbrev_name="vltseg")
    return cfg


def evaluate(cfg, args):
    checkpoint = cfg.train.init_checkpoint
    if not checkpoint:
        raise SystemExit("error: --eval-only needs weights: add train.init_checkpoint=/path/to/model.pth")
    if not os.path.isfile(checkpoint):
        raise SystemExit(f"error: train.init_checkpoint={checkpoint} does not exist")
    model = Trainer.build_model(cfg)
    DetectionCheckpointer(model).load(checkpoint)
    if resolve_device(cfg.train.device).type == "cpu":
        model = create_ddp_model(model, device_ids=None)
    else:
        model = create_ddp_model(model)
    output_dir = os.path.dirname(os.path.abspath(checkpoint))
    return Trainer.test(cfg, model, output_dir=output_dir, per_class=args.per_class)


def main(args):
    cfg = setup(args)
    if args.eval_only:
        return evaluate(cfg, args)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    results = trainer.train()
    if comm.is_main_process():
        logger.info(f"Training finished; checkpoints and logs in {cfg.train.output_dir}")
    return results


def parse_args(argv=None):
    parser = default_argument_parser(epilog=__doc__)
    parser.add_argument("--per-class", action="store_true", help="print per-class IoU in the cross-domain table")
    args = parser.parse_args(argv)
    try:  # refuse misspelled override keys before spawning any process
        apply_overrides(LazyConfig.load(args.config_file), args.opts)
    except OverrideError as e:
        parser.error(str(e))
    except FileNotFoundError as e:
        parser.error(f"config file: {e}")
    return args


if __name__ == "__main__":
    args = parse_args()
    torch.multiprocessing.set_sharing_strategy("file_system")
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
