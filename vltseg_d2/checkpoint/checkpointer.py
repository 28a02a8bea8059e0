"""detectron2's checkpointer, made safe to load and to interrupt.

- Loading reads tensors only: ``.pth`` through ``torch.load(weights_only=True)``, detectron2
  model-zoo ``.pkl`` files through an unpickler that accepts numpy arrays and plain containers
  (detectron2 ``pickle.load``s them, which runs any code the file carries).
- Loading is strict when asked: a checkpoint of another configuration is an error listing the
  first keys and shapes, instead of hundreds of "Skip loading parameter" lines and a model that
  predicts noise. Weights the backbone read from its original file (``model.backbone.pretrained``)
  may be absent: trainable-only and converted Rein files do not repeat them.
- Saving writes under a temporary name and renames, so a crash, SIGKILL or a full disk never
  leaves a truncated ``model_*.pth`` or ``last_checkpoint``; leftovers of a killed save are
  removed when the checkpointer starts.
"""
import logging
import os
from pathlib import Path

from detectron2.checkpoint import DetectionCheckpointer
from torch.nn.parallel import DistributedDataParallel

from .io import remove_stale_temporaries, save_atomic, write_text_atomic
from ..utils.safe_load import CheckpointError, load_array_pickle, load_tensor_checkpoint

logger = logging.getLogger(__name__)


class CheckpointMismatchError(CheckpointError):
    pass


def _frozen_pretrained_keys(model) -> set:
    """Model keys that came from the backbone's original file at construction."""
    model = model.module if isinstance(model, DistributedDataParallel) else model
    backbone = getattr(model, "backbone", None)
    if not getattr(backbone, "pretrained", None) or not hasattr(backbone, "vit"):
        return set()
    return {"backbone.vit." + k for k in backbone.vit.state_dict()}


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
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        try:
            return super().load(path, *args, **kwargs)
        except CheckpointMismatchError as e:
            raise CheckpointMismatchError(f"{path}: {e}") from None
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
            return {"model": {k: v for k, v in data.items() if not k.endswith("_momentum")}, "__author__": "Caffe2",
                    "matching_heuristics": True}
        return super()._load_file(filename)

    def _torch_load(self, f):
        return load_tensor_checkpoint(f)

    def _load_model(self, checkpoint):
        if self.strict:
            self._check_fits(checkpoint["model"])
        return super()._load_model(checkpoint)

    def _check_fits(self, state: dict):
        own = self.model.module.state_dict() if isinstance(self.model, DistributedDataParallel) else self.model.state_dict()
        state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
        missing = sorted(own.keys() - state.keys() - _frozen_pretrained_keys(self.model))
        unexpected = sorted(state.keys() - own.keys())
        wrong = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                 for k in sorted(own.keys() & state.keys()) if hasattr(state[k], "shape")
                 and tuple(state[k].shape) != tuple(own[k].shape)]
        if not (missing or unexpected or wrong):
            return
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} of another shape ({'; '.join(wrong[:4])})")
        if missing:
            parts.append(f"{len(missing)} missing ({', '.join(missing[:4])})")
        if unexpected:
            parts.append(f"{len(unexpected)} not in the model ({', '.join(unexpected[:4])})")
        raise CheckpointMismatchError(
            "the checkpoint does not fit the model built from the config: " + "; ".join(parts)
            + ". Likely cause: the checkpoint was trained with another config (backbone, number of "
            "classes or queries, head size). Use that config, or set train.strict_load=False to load "
            "what fits (e.g. fine-tuning with another head).")

    def save(self, name, **kwargs):
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict(), **{k: o.state_dict() for k, o in self.checkpointables.items()}}
        data.update(kwargs)
        path = os.path.join(self.save_dir, f"{name}.pth")
        self.logger.info(f"Saving checkpoint to {path}")
        save_atomic(data, path)
        self.tag_last_checkpoint(os.path.basename(path))

    def tag_last_checkpoint(self, last_filename_basename):
        write_text_atomic(Path(self.save_dir) / "last_checkpoint", last_filename_basename)


def load_weights(model, path, strict: bool = True):
    """Load a checkpoint's model weights for evaluation, the demo or a predictor."""
    return SafeCheckpointer(model, strict=strict).load(path)
