"""``Trainer``: detectron2's DefaultTrainer driven by a LazyConfig instead of yacs keys.

The ``build_*`` class methods, ``test`` and ``resume_or_load`` are where detectron2 users look
for them; ``__init__``, ``build_hooks``, ``build_writers`` and ``train`` are overridden only
because DefaultTrainer reads yacs keys there. Config layout (see configs/common):
``cfg.model``, ``cfg.optimizer``, ``cfg.lr_multiplier``, ``cfg.dataloader.{train,test,evaluator,
test_datasets,test_protocols,in_domain}``, ``cfg.train.*``.
"""

import contextlib
import copy
import datetime
import json
import logging
import os
import time
import weakref
from collections import OrderedDict

import torch
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.engine import DefaultTrainer, TrainerBase, create_ddp_model, hooks
from detectron2.evaluation import DatasetEvaluators, inference_on_dataset
from detectron2.solver import LRMultiplier
from detectron2.utils import comm

from ..checkpoint import SafeCheckpointer
from ..config import ConfigError
from ..data.mapper import inference_augmentations
from ..data.test_loader import TestLoader
from ..data.workers import dead_worker_stops, ignore_job_signals
from ..evaluation import format_cross_domain_table, save_cross_domain, summarize_cross_domain
from ..evaluation.cross_domain import evaluation_scalars
from ..evaluation.prediction_writer import PredictionWriter
from ..evaluation.provenance import provenance
from ..modeling import count_parameters
from ..utils.suggest import did_you_mean
from .compile import compile_heavy_parts
from .ema import EMAHook, TrainableEMA
from .preemption import PreemptionHook, RotatingCheckpointer, raise_if_interrupted
from .schedule import CosineWeightDecay
from .train_step import MixedPrecisionTrainer, autocast, resolve_precision
from .writers import build_writers

logger = logging.getLogger("vltseg_d2")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer(DefaultTrainer):
    def __init__(self, cfg):
        TrainerBase.__init__(self)
        self.cfg = cfg
        device = resolve_device(cfg.train.device)
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        ddp = dict(cfg.train.ddp)
        if device.type == "cpu":
            ddp["device_ids"] = None  # detectron2 passes the local rank, which CPU (gloo) processes refuse
        model = create_ddp_model(model, **ddp)
        clip = cfg.train.clip_grad
        self._trainer = MixedPrecisionTrainer(
            model,
            data_loader,
            optimizer,
            device_type=device.type,
            precision=resolve_precision(cfg.train.amp.enabled, cfg.train.amp.precision, device),
            clip_grad_norm=clip.max_norm if clip.enabled else None,
            seed=cfg.train.get("seed", -1),
        )
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        ema_cfg = cfg.train.get("ema", None) or {}
        self.ema = None
        if ema_cfg.get("enabled", False):
            unwrapped = model.module if hasattr(model, "module") else model
            self.ema = TrainableEMA(unwrapped, ema_cfg.get("decay", 0.9999), ema_cfg.get("start_iter", 0))
        extra = {"ema": self.ema} if self.ema is not None else {}
        self.checkpointer = SafeCheckpointer(
            model, cfg.train.output_dir, strict=cfg.train.get("strict_load", True), trainer=weakref.proxy(self), **extra
        )
        evaluation_dataset_names(cfg)  # an unknown evaluation dataset fails now, not after hours of training
        self.start_iter = 0
        self.max_iter = cfg.train.max_iter
        self.register_hooks(self.build_hooks())

    def resume_or_load(self, resume=True):
        """Resume from the last checkpoint in ``train.output_dir`` if ``resume`` and one exists,
        else start at iteration 0 from the backbone's original weights (``model.backbone.pretrained``)
        and then ``train.init_checkpoint`` (weights only) if set."""
        if not (resume and self.checkpointer.has_checkpoint()):
            model = self.checkpointer.model
            backbone = getattr(model, "backbone", None)
            # the model's own loader where it has one (tqdm: both CLIP towers from one file), else the backbone's
            load = getattr(model, "load_pretrained", None) or getattr(backbone, "load_pretrained", None)
            if getattr(backbone, "pretrained", None) and load is not None:
                load()
        self.checkpointer.resume_or_load(self.cfg.train.init_checkpoint, resume=resume)
        if resume and self.checkpointer.has_checkpoint():
            self.start_iter = self.iter + 1
        if hasattr(self._trainer.data_loader, "start_iter"):  # continue the sample stream, not restart it
            self._trainer.data_loader.start_iter = self.start_iter

    def build_hooks(self):
        cfg = self.cfg
        ret = [hooks.IterationTimer(), hooks.LRScheduler()]
        wd_schedule = cfg.train.get("cosine_weight_decay", None) or {}
        if wd_schedule.get("enabled", False):  # SoMA: weight decay annealed 0.05 -> 1e-5 over training
            ret.append(CosineWeightDecay(self.max_iter, wd_schedule.get("eta_min", 1e-5)))
        if self.ema is not None:  # before checkpointing and evaluation, which use it
            ret.append(EMAHook(self.ema))
        rotating = RotatingCheckpointer(self.checkpointer, **cfg.train.checkpointer) if comm.is_main_process() else None
        if rotating is not None:
            ret.append(rotating)

        def test_and_save_results():  # named like the checkpoint of these weights
            name = "model_final" if self.iter + 1 >= self.max_iter else f"model_{self.iter:07d}"
            folder = os.path.join(cfg.train.output_dir, "eval", name)
            source = os.path.abspath(os.path.join(cfg.train.output_dir, name + ".pth"))
            with self.ema.swapped() if self.ema is not None else contextlib.nullcontext():
                self._last_eval_results = self.test(
                    self.cfg, self.model, output_dir=folder, source=source, iteration=min(self.iter, self.max_iter - 1)
                )  # after the loop detectron2's iter is max_iter; the weights are those of max_iter - 1
            return evaluation_scalars(self._last_eval_results, tuple(cfg.dataloader.get("in_domain", ())))

        ret.append(hooks.EvalHook(cfg.train.eval_period, test_and_save_results))  # 0: only after training
        if comm.is_main_process():
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=cfg.train.log_period))
        # last, so the interrupted iteration's metrics are written before it stops
        ret.append(PreemptionHook(rotating, resolve_device(cfg.train.device)))
        return ret

    def build_writers(self):
        """Console (with ETA), ``metrics.json`` and TensorBoard."""
        return build_writers(self.cfg.train.output_dir, self.max_iter)

    # a data-loader worker's death surfaces wherever the main thread is: in the step or in a hook
    def before_step(self):
        with dead_worker_stops(f"at iteration {self.iter}"):
            super().before_step()

    def run_step(self):
        with dead_worker_stops(f"at iteration {self.iter}"):
            super().run_step()

    def after_step(self):
        with dead_worker_stops(f"at iteration {self.iter}"):
            super().after_step()

    def train(self):
        try:
            TrainerBase.train(self, self.start_iter, self.max_iter)
        finally:  # also after an interruption: the curves so far
            self._plot_training_curves()
        return getattr(self, "_last_eval_results", None)

    def _plot_training_curves(self):
        metrics = os.path.join(self.cfg.train.output_dir, "metrics.json")
        if not comm.is_main_process() or not os.path.isfile(metrics):
            return
        from ..evaluation.plots import plot_training_curves  # matplotlib only when a run ends

        try:
            path = plot_training_curves(metrics, os.path.join(self.cfg.train.output_dir, "training_curves.png"))
            logger.info(f"training curves: {path}")
        except Exception as e:  # a figure never costs a finished run
            logger.warning(f"could not draw the training curves ({type(e).__name__}: {e})")

    @classmethod
    def build_model(cls, cfg):
        model = instantiate(cfg.model).to(resolve_device(cfg.train.device))
        total, trainable = count_parameters(model)
        logger.info(f"Model: {type(model).__name__}, {total:,} parameters, {trainable:,} trainable")
        compile_cfg = cfg.train.get("compile", None) or {}
        if compile_cfg.get("enabled", False):  # training, --eval-only, the demo and the predictor alike
            compile_heavy_parts(
                model,
                compile_cfg.get("backend", "inductor"),
                compile_cfg.get("dynamic", False),
                size_bucket=compile_cfg.get("size_bucket", None),
            )
        return model

    @classmethod
    def build_optimizer(cls, cfg, model):
        cfg = copy.deepcopy(cfg)
        cfg.optimizer.params.model = model
        return instantiate(cfg.optimizer)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        multiplier = instantiate(cfg.lr_multiplier)
        if getattr(multiplier, "max_iter", cfg.train.max_iter) != cfg.train.max_iter:
            raise ConfigError(
                f"lr_multiplier.max_iter={multiplier.max_iter} but train.max_iter={cfg.train.max_iter}: "
                'leave lr_multiplier.max_iter="${train.max_iter}"'
            )
        if hasattr(multiplier, "build"):  # a per-group schedule (PolyToAbsoluteMinLR)
            return multiplier.build(optimizer)
        return LRMultiplier(optimizer, multiplier=multiplier, max_iter=cfg.train.max_iter)

    @classmethod
    def build_train_loader(cls, cfg):
        return instantiate(cfg.dataloader.train)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        """The test loader with the dataset's resize protocol (``dataloader.test_protocols``)."""
        test = copy.deepcopy(cfg.dataloader.test)
        test.dataset.names = dataset_name
        protocol = cfg.dataloader.get("test_protocols", {}).get(dataset_name, {})
        test.mapper.augmentations = inference_augmentations(**protocol)
        loader = instantiate(test)
        loader.worker_init_fn = ignore_job_signals  # Ctrl-C / SIGTERM to the job: the main process decides
        return TestLoader(loader, before_batch=raise_if_interrupted)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        """mIoU for labelled splits; PNG predictions too when ``train.write_predictions`` is set
        (and only those for test splits without labels)."""
        evaluators = []
        if MetadataCatalog.get(dataset_name).get("has_labels", True):
            evaluator = copy.deepcopy(cfg.dataloader.evaluator)
            evaluator.dataset_name = dataset_name
            evaluators.append(instantiate(evaluator))
        fmt = cfg.train.get("write_predictions", None)
        if fmt:
            folder = output_folder or os.path.join(cfg.train.output_dir, "eval", "predictions")
            evaluators.append(PredictionWriter(dataset_name, os.path.join(folder, dataset_name), fmt))
        if not evaluators:
            raise ValueError(
                f"{dataset_name} has no labels; set train.write_predictions=trainId (or labelId) "
                "to write predictions for the benchmark server"
            )
        return DatasetEvaluators(evaluators)

    @classmethod
    def test(cls, cfg, model, evaluators=None, output_dir=None, per_class=False, source=None, iteration=None):
        """Evaluate on every dataset of ``dataloader.test_datasets`` (all names are checked before
        the first is evaluated); print the cross-domain table, then save it as
        ``cross_domain.{json,md}`` in ``output_dir`` (default ``train.output_dir/eval``).
        ``source`` (the evaluated checkpoint) and its ``iteration`` are recorded in the JSON, with
        the config's hash, the code's commit, the images per dataset and the date."""
        names = evaluation_dataset_names(cfg)
        folder = output_dir or os.path.join(cfg.train.output_dir, "eval")
        device = resolve_device(cfg.train.device)
        precision = resolve_precision(cfg.train.amp.enabled, cfg.train.amp.precision, device)
        results, confusions, loaders = OrderedDict(), {}, {}
        for name in names:  # all first: the image counts give an overall ETA, a broken dataset stops early
            loaders[name] = cls.build_test_loader(cfg, name)
        images = {name: len(loader.dataset) for name, loader in loaders.items()}
        started, done = time.perf_counter(), 0
        for k, name in enumerate(names, 1):
            evaluator = cls.build_evaluator(cfg, name, output_folder=os.path.join(folder, "predictions"))
            with dead_worker_stops(f"while evaluating {name}"):
                loader = loaders.pop(name)
                logger.info(
                    f"evaluating {name} ({k} of {len(names)}): {images[name]} images"
                    + overall_eta(time.perf_counter() - started, done, sum(images.values()), len(names))
                )
                counters = [e for e in evaluator._evaluators if hasattr(e, "skip_unreadable")]
                if counters:  # counted and shown in the table, like unreadable labels
                    loader.on_unreadable = counters[0].skip_unreadable
                with autocast(device, precision):  # the training precision (train.amp), bf16 on CPU too
                    res = inference_on_dataset(model, loader, evaluator)
            done += images[name]
            raise_if_interrupted()
            if res and "sem_seg" in res:
                results[name] = {"sem_seg": res["sem_seg"]}
                if counters and getattr(counters[0], "confusion", None) is not None:
                    confusions[name] = counters[0].confusion
        if results and comm.is_main_process():
            summary = summarize_cross_domain(results, in_domain=tuple(cfg.dataloader.get("in_domain", ())))
            summary.update(checkpoint=source, protocol=evaluation_protocol(cfg, model, names))
            summary["provenance"] = provenance(cfg, source, iteration, images)
            logger.info(f"Cross-domain evaluation:\n{format_cross_domain_table(summary, per_class=per_class)}")
            raise_if_interrupted()
            # an OSError here names the file
            json_path, md_path = save_cross_domain(summary, folder, confusions=confusions)
            logger.info(f"saved to {json_path} and {md_path}")
        return results


def overall_eta(elapsed: float, done: int, total: int, datasets: int) -> str:
    """ "; about 0:12:30 left for all 5 datasets", from the seconds per image so far (datasets of
    other frame sizes make it approximate); nothing before the first dataset is done."""
    if not done or done >= total:
        return ""
    left = datetime.timedelta(seconds=round(elapsed / done * (total - done)))
    return f"; about {left} left for all {datasets} datasets"


def evaluation_dataset_names(cfg) -> list:
    """``dataloader.test_datasets`` as a list (a single name is accepted as a string), each one
    registered; an unknown name is an error naming it and the closest registered ones."""
    names = cfg.dataloader.test_datasets
    names = [names] if isinstance(names, str) else list(names)
    registered = DatasetCatalog.list()
    for name in names:
        if name not in registered:
            raise ConfigError(
                f"dataloader.test_datasets: '{name}' is not a registered dataset{did_you_mean(name, registered)}"
                "; see datasets/README.md for the names"
            )
    if not names:
        raise ConfigError("dataloader.test_datasets is empty: name the datasets to evaluate on")
    return names


def evaluation_protocol(cfg, model, names) -> dict:
    """How the numbers were produced: the protocol's name and resize per dataset, whole or
    sliding-window inference (crop, stride), and test-time augmentation."""
    model = model.module if hasattr(model, "module") else model
    resize = cfg.dataloader.get("test_protocols", {})
    return {
        "name": cfg.dataloader.get("test_protocol_name", "as_is"),
        "resize": {n: dict(resize.get(n, {})) or "as is" for n in names},
        "test_mode": model.test_mode,
        "crop": list(model.test_crop) if model.test_mode == "slide" else None,
        "stride": list(model.test_stride) if model.test_mode == "slide" else None,
        "tta": {"scales": list(model.tta_scales), "flip": model.tta_flip},
    }


def eval_output_dir(cfg, checkpoint: str) -> str:
    """``train.output_dir/eval/<checkpoint name>``; a folder holding another checkpoint's table
    (same file name, another path) is never reused: ``_2``, ``_3``, ... is appended."""
    base = os.path.join(cfg.train.output_dir, "eval", os.path.splitext(os.path.basename(checkpoint))[0])
    folder, n = base, 1
    while True:
        previous = os.path.join(folder, "cross_domain.json")
        if not os.path.exists(previous):
            return folder
        try:
            with open(previous) as f:
                if json.load(f).get("checkpoint") == os.path.abspath(checkpoint):
                    return folder
        except (OSError, ValueError):
            pass
        n += 1
        folder = f"{base}_{n}"
