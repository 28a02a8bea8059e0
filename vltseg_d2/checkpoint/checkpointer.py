"""detectron2's checkpointer, made safe to load and to interrupt.

- Loading reads tensors only: ``.pth`` through ``torch.load(weights_only=True)``, detectron2
  model-zoo ``.pkl`` files through an unpickler that accepts numpy arrays and plain containers
  (detectron2 ``pickle.load``s them, which runs any code the file carries).
- Loading is strict when asked: a checkpoint of another configuration is an error listing the
  first keys and shapes, instead of hundreds of "Skip loading parameter" lines and a model that
  predicts noise.
- Frozen backbones are not repeated: with a frozen ViT loaded from its original file, checkpoints
  hold what was trained (Rein + head, optimizer, scheduler, iteration) plus the identity of the
  frozen weights (``frozen_backbone``: source and content hash). A checkpoint without ViT weights
  (these, trainable-only files, converted Rein files) gets them from ``model.backbone.pretrained``
  (or the recorded source) before loading, and a different frozen backbone is refused by name.
- Saving writes under a temporary name and renames, so a crash, SIGKILL or a full disk never
  leaves a truncated ``model_*.pth`` or ``last_checkpoint``; leftovers of a killed save are
  removed when the checkpointer starts.
"""

import logging
import os
from pathlib import Path

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from torch.nn.parallel import DistributedDataParallel

from ..utils.atomic import remove_stale_temporaries, write_text_atomic
from ..utils.safe_load import CheckpointError, load_array_pickle, load_tensor_checkpoint
from ..utils.tensor_fit import misfits
from .io import save_atomic

logger = logging.getLogger(__name__)


class CheckpointMismatchError(CheckpointError):
    pass


VIT_PREFIX = "backbone.vit."


def _vit_backbone(model):
    """The model's :class:`ViTBackbone` (anything with ``vit`` and ``load_pretrained``), or None."""
    model = model.module if isinstance(model, DistributedDataParallel) else model
    backbone = getattr(model, "backbone", None)
    return backbone if hasattr(backbone, "vit") and hasattr(backbone, "load_pretrained") else None


def _compact(backbone) -> bool:
    """Checkpoints leave out the ViT when it is frozen and came from a named source."""
    return backbone is not None and backbone.freeze and backbone.loaded_from is not None


def _has_source(backbone, identity) -> bool:
    """Can the frozen ViT be loaded: already loaded, configured, or recorded in the checkpoint?"""
    return bool(backbone.loaded_from or backbone.pretrained or (identity or {}).get("source"))


def _frozen_vit_keys(backbone) -> set:
    """Model keys of the ViT's frozen tensors (all of it, but SoMA adapters and adapted biases)."""
    trained = {n for n, p in backbone.vit.named_parameters() if p.requires_grad}
    return {VIT_PREFIX + k for k in backbone.vit.state_dict() if k not in trained}


def _check_soma_init(backbone, recorded):
    """SoMA's two initialisations leave different frozen weights (``W - s B A`` or ``W``): adapters
    trained with one are wrong on the other."""
    soma = getattr(backbone, "soma", None)
    if recorded and soma is not None and recorded != soma.init:
        raise CheckpointMismatchError(
            f"its SoMA adapters were trained with model.backbone.soma.init={recorded}, the config builds "
            f"init={soma.init} (other frozen weights): add model.backbone.soma.init={recorded}"
        )


class SafeCheckpointer(DetectionCheckpointer):
    """Args (beyond DetectionCheckpointer's):
    strict: refuse a checkpoint whose model weights do not all fit (missing, unexpected or
        of another shape); ``False`` keeps detectron2's partial loading (fine-tuning from
        another head, e.g. another class count).
    """

    def __init__(self, model, save_dir="", *, strict: bool = True, **kwargs):
        super().__init__(model, save_dir, **kwargs)
        self.strict = strict
        if self.save_dir and self.save_to_disk and os.path.isdir(self.save_dir):
            for path in remove_stale_temporaries(self.save_dir):
                logger.info(f"removed {path}, left by a save that was interrupted")

    def load(self, path, *args, **kwargs):
        if path and "://" not in path and "?" not in path and not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        try:
            return super().load(path, *args, **kwargs)
        except CheckpointMismatchError as e:
            raise CheckpointMismatchError(f"{path}: {e}") from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:  # an entry of another form
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise CheckpointMismatchError(
                f"{path}: an entry does not fit what it is loaded into ({type(e).__name__}: {first[:200]})"
            ) from None
        finally:
            self._parsed_url_during_load = None  # a failed load must not block the next one

    def _load_file(self, filename):
        if filename.endswith(".pkl"):
            data = load_array_pickle(filename)
            if not isinstance(data, dict):
                raise CheckpointMismatchError(f"{filename} holds a {type(data).__name__}, not a dict of weights")
            if "model" in data and "__author__" in data:
                return data
            data = data.get("blobs", data)  # Caffe2 / Detectron1 model zoo
            return {
                "model": {k: v for k, v in data.items() if not k.endswith("_momentum")},
                "__author__": "Caffe2",
                "matching_heuristics": True,
            }
        return super()._load_file(filename)

    def _torch_load(self, f):
        return load_tensor_checkpoint(f)

    def _load_model(self, checkpoint):
        state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in checkpoint["model"].items()}
        backbone = _vit_backbone(self.model)
        frozen = _frozen_vit_keys(backbone) if backbone is not None else set()
        from_source = bool(frozen) and not frozen <= state.keys()  # compact: the ViT comes from its source
        identity = checkpoint.get("frozen_backbone")
        if from_source and frozen & state.keys() and not _has_source(backbone, identity):
            # part of a ViT (one of another depth, or SoMA's adapted biases) and nothing to complete it
            # from: the key check below names what differs, rather than "holds no ViT weights"
            from_source = False
        _check_soma_init(backbone, checkpoint.get("soma_init"))
        if from_source:
            self._frozen_weights_for(backbone, identity)
        if self.strict and not checkpoint.get("matching_heuristics", False):  # name matching: no key check
            self._check_fits(state, frozen if from_source else set())
        if "optimizer" in checkpoint and "optimizer" in self.checkpointables:
            check_optimizer_state(self.checkpointables["optimizer"], checkpoint["optimizer"])
        return super()._load_model(checkpoint)

    @staticmethod
    def _frozen_weights_for(backbone, identity):
        """Load the ViT a checkpoint without ViT weights was trained on, and check it is that one."""
        if backbone.loaded_from is None:
            source = backbone.pretrained or (identity or {}).get("source")
            if not source:
                raise CheckpointMismatchError(
                    "it holds no ViT weights (a Rein or trainable-only checkpoint) and none are configured: "
                    "set model.backbone.pretrained to the original backbone file or hub id"
                )
            backbone.load_pretrained(source)
        expected, found = (identity or {}).get("sha256", ""), backbone.frozen_identity()["sha256"]
        if identity and expected != found:
            raise CheckpointMismatchError(
                f"it was trained on the frozen backbone {identity.get('source')} (sha256 {expected[:12]}), "
                f"but {backbone.loaded_from} holds other weights (sha256 {found[:12]}): "
                "set model.backbone.pretrained to the file it was trained with"
            )

    def _check_fits(self, state: dict, provided: set):
        own = self.model.state_dict()
        missing = sorted(own.keys() - state.keys() - provided)
        unexpected = sorted(state.keys() - own.keys())
        wrong = misfits(own, {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in state.items()})
        if not (missing or unexpected or wrong):
            return
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} of another shape or kind of number ({'; '.join(wrong[:4])})")
        if missing:
            parts.append(f"{len(missing)} missing ({', '.join(missing[:4])})")
        if unexpected:
            parts.append(f"{len(unexpected)} not in the model ({', '.join(unexpected[:4])})")
        raise CheckpointMismatchError(
            "the checkpoint does not fit the model built from the config: "
            + "; ".join(parts)
            + ". Likely cause: the checkpoint was trained with another config (backbone, number of "
            "classes or queries, head size). Use that config, or set train.strict_load=False to load "
            "what fits (e.g. fine-tuning with another head)."
        )

    def save(self, name, **kwargs):
        if not self.save_dir or not self.save_to_disk:
            return
        model_state = self.model.state_dict()
        backbone = _vit_backbone(self.model)
        data = {}
        if getattr(backbone, "soma", None) is not None:  # the frozen weights depend on it
            data["soma_init"] = backbone.soma.init
        if _compact(backbone):
            frozen = _frozen_vit_keys(backbone)
            model_state = {k: v for k, v in model_state.items() if k not in frozen}
            data["frozen_backbone"] = backbone.frozen_identity()
        data.update(model=model_state, **{k: o.state_dict() for k, o in self.checkpointables.items()})
        data.update(kwargs)
        path = os.path.join(self.save_dir, f"{name}.pth")
        self.logger.info(f"Saving checkpoint to {path}")
        save_atomic(data, path)
        self.tag_last_checkpoint(os.path.basename(path))

    def tag_last_checkpoint(self, last_filename_basename):
        write_text_atomic(Path(self.save_dir) / "last_checkpoint", last_filename_basename)


def check_optimizer_state(optimizer, saved):
    """The saved optimizer state must fit ``optimizer``: the same groups of the same sizes, and each
    per-parameter tensor (AdamW's moments) of its parameter's shape. torch's ``load_state_dict``
    checks only the group sizes, and a moment of another shape fails at the next step, or
    broadcasts silently."""
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list):
        raise CheckpointMismatchError("its 'optimizer' entry is not an optimizer state (no param_groups list)")
    groups, state = saved["param_groups"], saved.get("state", {})
    if not isinstance(state, dict) or len(groups) != len(optimizer.param_groups):
        raise CheckpointMismatchError(
            f"its optimizer has {len(groups)} parameter groups, this one {len(optimizer.param_groups)}: "
            "was it trained with another config? (train.init_checkpoint loads only the weights)"
        )
    for k, (group, own) in enumerate(zip(groups, optimizer.param_groups)):
        ids = group.get("params") if isinstance(group, dict) else None
        if not isinstance(ids, list) or len(ids) != len(own["params"]):
            raise CheckpointMismatchError(f"its optimizer's group {k} does not hold {len(own['params'])} parameters")
        for index, param in zip(ids, own["params"]):
            entry = state.get(index, {})
            for name, value in entry.items() if isinstance(entry, dict) else ():
                moment = isinstance(value, torch.Tensor) and name != "step"  # the step count is a scalar
                if moment and tuple(value.shape) != tuple(param.shape):
                    raise CheckpointMismatchError(
                        f"its optimizer's {name} of parameter {index} is {tuple(value.shape)}, "
                        f"the parameter {tuple(param.shape)}"
                    )


def load_weights(model, path, strict: bool = True, use_ema: bool = True):
    """Load a checkpoint's model weights for evaluation, the demo or a predictor; with
    ``use_ema``, the averaged weights of a checkpoint that holds an EMA replace the trained ones."""
    rest = SafeCheckpointer(model, strict=strict).load(path)
    ema = rest.get("ema") if use_ema else None
    if ema:
        params = dict(model.named_parameters())
        if not isinstance(ema, dict) or not isinstance(ema.get("shadow"), dict):
            raise CheckpointMismatchError(f"{path}: its 'ema' entry holds no 'shadow' dict of averaged weights")
        missing = sorted(ema["shadow"].keys() - params.keys())
        if missing:
            raise CheckpointMismatchError(
                f"{path}: its EMA names parameters the model lacks ({', '.join(missing[:3])})"
            )
        wrong = misfits(params, ema["shadow"], "EMA")
        if wrong:
            raise CheckpointMismatchError(
                f"{path}: {len(wrong)} EMA weights do not fit the model ({'; '.join(wrong[:3])})"
            )
        with torch.no_grad():
            for name, value in ema["shadow"].items():
                params[name].copy_(value.to(params[name].dtype))
        logger.info(f"{path}: evaluating with its EMA weights (decay {ema['decay']})")
    return rest
