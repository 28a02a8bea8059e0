#!/usr/bin/env python
"""Train or evaluate a vltseg_d2 model (detectron2's command line, LazyConfig configs).

Train, overriding config values with trailing key=value pairs (--num-gpus must divide the
recipe's dataloader.train.total_batch_size: Rein's GTA recipe is 1 GPU x 4, its Cityscapes one 4 x 2):
    python tools/train_net.py --config-file configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py \\
        --num-gpus 1 train.max_iter=1000 optimizer.lr=5e-5

Resume after a crash (continues from the last checkpoint in train.output_dir):
    python tools/train_net.py --config-file ... --resume

Evaluate on every target domain of the config (or the listed ones); the table is printed and
saved under train.output_dir/eval/<checkpoint name>/ (options come before the overrides):
    python tools/train_net.py --config-file ... --eval-only --per-class train.init_checkpoint=ckpt.pth \\
        "dataloader.test_datasets=[cityscapes_val,bdd_val]"

Several machines: add --num-machines N --machine-rank R --dist-url tcp://HOST:PORT; SLURM:
tools/slurm_train.sh. On CPU, --num-gpus N runs N gloo processes.

SIGTERM (SLURM preemption / time limit) or Ctrl-C: the current iteration finishes, a checkpoint
of it is written, and the process exits with status 75; --resume continues from it. After the
last iteration, Ctrl-C stops the final evaluation at once (status 130, model_final.pth kept) and
SIGTERM lets it finish.
"""

import vltseg_d2  # noqa: F401  (first: it silences detectron2's import-time torch.jit warnings)

# isort: split

import logging
import multiprocessing
import os
import signal
import sys

import torch
from detectron2.engine import create_ddp_model, default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from vltseg_d2.checkpoint import CheckpointError, load_weights
from vltseg_d2.config import ConfigError, OverrideError, add_override_arguments, load_config, overrides_of, tool_parser
from vltseg_d2.data.loader import check_batch_split
from vltseg_d2.data.workers import DataWorkerDied, is_dead_worker_error
from vltseg_d2.engine import (
    REQUEUE_EXIT_CODE,
    Trainer,
    TrainingInterrupted,
    eval_output_dir,
    evaluation_dataset_names,
    launch,
    lock_output_dir,
    resolve_device,
)
from vltseg_d2.utils.plain_logs import plain_log_files

logger = logging.getLogger("vltseg_d2")


def setup(args):
    cfg = load_config(args.config_file, args.opts)
    if args.eval_only and cfg.train.init_checkpoint:
        # everything of one evaluation (log, config, table, predictions) in one folder
        args.eval_dir = eval_output_dir(cfg, cfg.train.init_checkpoint)
        cfg.train.output_dir = args.eval_dir
    elif comm.get_rank() == 0:  # before anything is written there
        lock_output_dir(cfg.train.output_dir)
    try:
        os.makedirs(cfg.train.output_dir, exist_ok=True)
    except OSError as e:  # a file of that name, no permission, a read-only disk
        folder = cfg.train.output_dir
        raise ConfigError(f"cannot create the output folder {folder} ({e.strerror}): set train.output_dir") from None
    plain_log_files(cfg.train.output_dir, comm.get_rank())
    default_setup(cfg, args)
    setup_logger(cfg.train.output_dir, distributed_rank=comm.get_rank(), name="vltseg_d2", abbrev_name="vltseg")
    return cfg


def evaluate(cfg, args):
    checkpoint = cfg.train.init_checkpoint
    if not checkpoint:
        raise SystemExit("error: --eval-only needs weights: add train.init_checkpoint=/path/to/model.pth")
    if not os.path.isfile(checkpoint):
        raise SystemExit(f"error: train.init_checkpoint={checkpoint} does not exist")
    evaluation_dataset_names(cfg)  # every name checked before the model is built
    model = Trainer.build_model(cfg)
    loaded = load_weights(model, checkpoint, strict=cfg.train.get("strict_load", True))
    if resolve_device(cfg.train.device).type == "cpu":
        model = create_ddp_model(model, device_ids=None)
    else:
        model = create_ddp_model(model)
    return Trainer.test(
        cfg,
        model,
        output_dir=args.eval_dir,
        per_class=args.per_class,
        source=os.path.abspath(checkpoint),
        iteration=loaded.get("iteration"),
    )


def check_something_to_train(trainer, cfg):
    """A resumed checkpoint at or past ``train.max_iter`` leaves nothing to train: say so and stop
    (detectron2 would run no iteration, then file a table under a model_final.pth never written)."""
    if trainer.start_iter < trainer.max_iter:
        return
    reached = trainer.start_iter - 1
    final = os.path.join(cfg.train.output_dir, "model_final.pth")
    evaluate = f"; evaluate it with --eval-only train.init_checkpoint={final}" if os.path.isfile(final) else ""
    if trainer.start_iter == trainer.max_iter:
        logger.info(f"--resume: training already ran to its last iteration ({reached}){evaluate}")
        raise SystemExit(0)
    raise ConfigError(
        f"--resume: the checkpoint in {cfg.train.output_dir} is at iteration {reached}, past "
        f"train.max_iter={trainer.max_iter}: nothing to train. Raise train.max_iter above {reached + 1} to "
        "continue, or resume in another train.output_dir"
    )


def main(args):
    try:
        cfg = setup(args)
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    try:
        if args.eval_only:
            return evaluate(cfg, args)
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        check_something_to_train(trainer, cfg)
    except (CheckpointError, ConfigError, FileNotFoundError) as e:  # bad input: one line, no traceback
        raise SystemExit(f"error: {e}") from None
    except DataWorkerDied as e:
        raise SystemExit(
            f"error: a data-loader worker died {e} (killed, or out of memory: lower dataloader.test.num_workers); "
            "nothing was written: run the evaluation again"
        ) from None
    try:
        results = trainer.train()
    except (DataWorkerDied, RuntimeError) as e:  # a worker killed from outside, or by the kernel for memory
        if isinstance(e, RuntimeError) and not is_dead_worker_error(e):
            raise
        last = os.path.join(cfg.train.output_dir, "last_checkpoint")
        kept = "no checkpoint yet"
        if os.path.isfile(last):
            kept = f"the last checkpoint ({open(last).read().strip()}) is kept"
        where = str(e) if isinstance(e, DataWorkerDied) else f"after iteration {trainer.iter}: {str(e).strip()}"
        raise SystemExit(
            f"error: a data-loader worker died {where} (killed, or out of memory: lower dataloader.train.num_workers); "
            f"{kept}: run again with --resume to continue"
        ) from None
    except TrainingInterrupted as e:  # SIGTERM / SIGINT: checkpoint written; tools/slurm_train.sh requeues
        logger.warning(str(e))
        sys.exit(REQUEUE_EXIT_CODE)
    except FloatingPointError as e:  # NaN/inf: nothing broken was saved
        raise SystemExit(f"error: {e}") from None
    except KeyboardInterrupt:  # Ctrl-C in the final checkpoint or evaluation (the hook handed it back)
        if trainer.iter + 1 < trainer.max_iter:
            raise
        final = os.path.join(cfg.train.output_dir, "model_final.pth")
        hint = f"; evaluate with --eval-only train.init_checkpoint={final}" if os.path.isfile(final) else ""
        print(f"interrupted after the last iteration{hint}", file=sys.stderr)
        sys.exit(130)  # 128 + SIGINT, as a shell reports Ctrl-C
    if comm.is_main_process():
        logger.info(f"Training finished; checkpoints and logs in {cfg.train.output_dir}")
    return results


def build_parser():
    """detectron2's command line (the same options and attribute names, which ``default_setup``
    reads), in our words and with LazyConfig overrides only."""
    parser = tool_parser(__doc__)
    parser.add_argument("--config-file", metavar="FILE", help="the LazyConfig (.py) to train or evaluate")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in train.output_dir (if there is one)"
    )
    parser.add_argument(
        "--eval-only", action="store_true", help="evaluate train.init_checkpoint on dataloader.test_datasets only"
    )
    parser.add_argument("--per-class", action="store_true", help="also print the per-class IoU table")
    parser.add_argument("--num-gpus", type=int, default=1, help="processes per machine (one per GPU; gloo on a CPU)")
    parser.add_argument("--num-machines", type=int, default=1, help="machines of a multi-machine run")
    parser.add_argument("--machine-rank", type=int, default=0, help="this machine's rank, 0 .. num-machines - 1")
    parser.add_argument(
        "--dist-url",
        default="auto",
        help="where the processes meet, tcp://HOST:PORT of machine 0 for several machines; auto picks a "
        "free port on one machine (detectron2's fixed default collides between runs)",
    )
    add_override_arguments(parser, what="LazyConfig overrides key=value, e.g. train.max_iter=1000")
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    args.opts = overrides_of(args)
    if not args.config_file:
        parser.error("--config-file is required, e.g. --config-file configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py")
    if args.num_machines > 1 and args.dist_url == "auto":
        parser.error("--num-machines > 1 needs --dist-url tcp://HOST:PORT (machine 0's address, the same everywhere)")
    try:  # refuse misspelled override keys and a batch that cannot be split before spawning any process
        if args.num_gpus < 1 or args.num_machines < 1 or not 0 <= args.machine_rank < args.num_machines:
            raise ConfigError(
                f"--num-gpus {args.num_gpus} --num-machines {args.num_machines} --machine-rank {args.machine_rank}: "
                "need at least 1 process per machine, 1 machine, and 0 <= machine rank < machines"
            )
        cfg = load_config(args.config_file, args.opts)
        if not args.eval_only:
            check_batch_split(
                cfg.dataloader.train.total_batch_size, args.num_gpus * args.num_machines, cfg.optimizer.get("lr")
            )
    except (OverrideError, ConfigError) as e:
        parser.error(str(e))
    except FileNotFoundError as e:
        parser.error(f"config file: {e}")
    return args


def _forward_to_workers(signum, frame):
    """The launcher process passes SIGTERM/SIGINT on to its workers, which checkpoint and exit."""
    for child in multiprocessing.active_children():
        os.kill(child.pid, signum)


def launch_with_requeue(args):
    """``launch`` (detectron2's, releasing each worker's process group); a worker's requeue exit
    status becomes this process's."""
    torch.multiprocessing.set_sharing_strategy("file_system")
    if args.num_gpus * args.num_machines > 1:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _forward_to_workers)
    try:
        launch(
            main,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
        )
    except torch.multiprocessing.ProcessExitedException as e:
        if e.exit_code == REQUEUE_EXIT_CODE:
            sys.exit(REQUEUE_EXIT_CODE)
        raise


if __name__ == "__main__":
    launch_with_requeue(parse_args())
