"""Read the tensors of a checkpoint without running any code stored in it.

``torch.load(weights_only=True)`` refuses a whole file as soon as it meets one object it does not
know, and training checkpoints of other frameworks are full of them (mmengine's ``message_hub``
holds ``HistoryBuffer`` objects, ``meta`` holds config objects and numpy scalars). No library reads
"the tensors, and nothing else", so this module does it with a restricted unpickler:

- a global in torch's own weights-only allowlist (tensor rebuild functions, storages, dtypes,
  ``OrderedDict``, ``torch.Size``) or numpy's array/dtype reconstruction is resolved as usual;
- every other global (a class, ``os.system``, ``builtins.eval`` ...) resolves to
  :class:`IgnoredObject`, a class that accepts any arguments and state and does nothing, so the
  pickled object is built as an inert placeholder and its code never runs.

Both torch's zip format (``torch.save``) and plain pickles (detectron2's model-zoo ``.pkl`` files)
are read.
"""

import pickle
import re
import zipfile
from pathlib import Path
from typing import Dict

import numpy as np
import torch
from torch import _weights_only_unpickler

try:  # numpy >= 2 moved the array internals to numpy._core
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and the fix."""


class CheckpointReadError(CheckpointError):
    """The file exists but holds no readable tensors, or holds objects that are refused."""


class IgnoredObject:
    """Placeholder for any pickled object that is not a tensor, an array or a plain container."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):  # dict subclasses are filled item by item
        pass

    def append(self, value):  # list subclasses are filled by append / extend
        pass

    def extend(self, values):
        pass

    def __repr__(self):
        return "<ignored object>"


def _rebuild_plain_tensor(func, new_type, args, state):
    """Stands in for ``torch._tensor._rebuild_from_type_v2``: keeps the tensor, drops its Python
    subclass and attributes (which could name any class)."""
    tensor = func(*args)
    return tensor if isinstance(tensor, torch.Tensor) else IgnoredObject()


def _allowed_globals() -> dict:
    allowed = dict(_weights_only_unpickler._get_allowed_globals())
    allowed["torch._tensor._rebuild_from_type_v2"] = _rebuild_plain_tensor
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1.x / 2.x pickles
        allowed[f"{module}._reconstruct"] = _multiarray._reconstruct
        allowed[f"{module}.scalar"] = _multiarray.scalar
    allowed["numpy.ndarray"] = np.ndarray
    allowed["numpy.dtype"] = np.dtype
    return allowed


_ALLOWED = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        return _ALLOWED.get(f"{module}.{name}", IgnoredObject)


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """For detectron2 model-zoo ``.pkl`` files: numpy arrays and plain containers, nothing else."""

    def find_class(self, module, name):
        found = _ALLOWED.get(f"{module}.{name}")
        if found is None or module.startswith("torch"):
            raise CheckpointReadError(f"it pickles {module}.{name}, not only arrays")
        return found


class _RestrictedPickleModule:
    """What ``torch.load(pickle_module=...)`` needs: ``Unpickler`` and ``load``."""

    Unpickler = _RestrictedUnpickler

    @staticmethod
    def load(file, **kwargs):
        return _RestrictedUnpickler(file, **kwargs).load()


def load_array_pickle(path):
    """A plain pickle of numpy arrays in dicts/lists (detectron2's model zoo ``.pkl``)."""
    try:
        with open(path, "rb") as f:
            return _ArraysOnlyUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None
    except CheckpointReadError as e:
        raise CheckpointReadError(f"{path} refused: {e}; only numpy arrays are read from .pkl files") from None
    except Exception as e:
        raise CheckpointReadError(f"{path} is not a readable pickle ({type(e).__name__}: {e})") from None


def load_tensor_checkpoint(path):
    """``torch.load(weights_only=True)`` with one-line errors that name the file and what it is."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+)", str(e))
        culprit = f"it pickles {found.group(1)}" if found else str(e).splitlines()[0][:200]
        raise CheckpointReadError(
            f"{path} refused: {culprit}, not only tensors; nothing in it was run. "
            "Rein/mmengine files: convert them with tools/convert_rein_checkpoint.py"
        ) from None
    except Exception as e:
        raise CheckpointReadError(
            f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200]}); is the file complete?"
        ) from None
    if not isinstance(obj, dict):
        what = "a single tensor" if isinstance(obj, torch.Tensor) else f"a {type(obj).__name__}"
        raise CheckpointReadError(f"{path} holds {what}, not a checkpoint (a dict of named weights)")
    return obj


def load_restricted(path):
    """The object pickled in ``path`` (torch zip, legacy torch, or plain pickle), with every
    non-tensor object replaced by an :class:`IgnoredObject`. Tensors are loaded on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        if not zipfile.is_zipfile(path):  # a plain pickle, or the legacy torch.save format
            with open(path, "rb") as f:
                obj = _RestrictedPickleModule.load(f, encoding="latin1")
            if not (isinstance(obj, int) and obj == torch.serialization.MAGIC_NUMBER):
                return obj
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickleModule)
    except Exception as e:  # truncated zip, not a pickle, corrupt stream ...
        raise CheckpointReadError(
            f"{path} is not a readable PyTorch checkpoint or pickle ({type(e).__name__}: {e}); is the file complete?"
        ) from None


def tensors_of(obj, prefix: str = "") -> Dict[str, torch.Tensor]:
    """The tensors (and numpy arrays, as tensors) in a nested dict, under dotted keys."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        return {prefix: torch.from_numpy(obj)}
    out = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(key, str):
                out.update(tensors_of(value, f"{prefix}.{key}" if prefix else key))
    return out


def load_state_dict(path, wrappers=("state_dict", "model")) -> Dict[str, torch.Tensor]:
    """The flat tensor state dict of a checkpoint: the first of ``wrappers`` present is unwrapped
    (mmengine and detectron2 checkpoints keep the weights under ``state_dict`` / ``model``; the
    optimizer, schedulers and metadata beside them are ignored)."""
    obj = load_restricted(path)
    if not isinstance(obj, dict):
        what = "a single tensor" if isinstance(obj, torch.Tensor) else f"a {type(obj).__name__}"
        raise CheckpointReadError(f"{path} holds {what}, not a dict of named weights")
    for key in wrappers:
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    state = tensors_of(obj)
    if not state:
        raise CheckpointReadError(f"{path} holds no tensors under {' / '.join(wrappers)} or at the top level")
    return state
