"""Read the tensors of a checkpoint without running any code stored in it.

``torch.load`` is never called: :mod:`.torch_file` parses torch's formats (refusing TorchScript
and legacy tar archives before anything is extracted or run), and one of three unpicklers decides
what each pickled global becomes:

- :func:`load_tensor_checkpoint` (our checkpoints, backbone ``.pth`` files): tensors, dtypes and
  plain containers; any other global refuses the whole file, naming it (``weights_only=True``'s
  rule);
- :func:`load_restricted` / :func:`load_state_dict` (training checkpoints of other frameworks:
  mmengine's ``message_hub`` holds ``HistoryBuffer`` objects, ``meta`` holds config objects and
  numpy scalars): every other global (a class, ``os.system``, ``builtins.getattr`` ...) resolves to
  :class:`IgnoredObject`, which accepts any arguments and state and does nothing, so the pickled
  object is built as an inert placeholder and its code never runs;
- :func:`load_array_pickle` (detectron2's model-zoo ``.pkl``): numpy arrays and plain containers.

Tensor rebuild functions are our own (:mod:`.torch_file`): plain dense CPU tensors inside their
storage, no hooks, no subclass state; meta, sparse, quantized and nested tensors are refused.
"""

import pickle
from pathlib import Path
from typing import Dict

import numpy as np
import torch

from .torch_file import (
    REFUSED_TENSORS,
    TENSOR_REBUILDERS,
    TorchFileError,
    check_structure,
    read_torch_file,
    storage_globals,
)

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


class _Refused(Exception):
    """A global the strict unpicklers do not resolve."""

    def __init__(self, name):
        super().__init__(name)
        self.name = name


def _allowed_globals() -> dict:
    import _codecs
    import collections

    allowed = {**storage_globals(), **TENSOR_REBUILDERS, **REFUSED_TENSORS}
    allowed.update({f"torch.{n}": v for n, v in vars(torch).items() if isinstance(v, torch.dtype)})
    allowed.update(
        {
            "torch.Size": torch.Size,
            "torch.device": torch.device,
            "collections.OrderedDict": collections.OrderedDict,
            "builtins.set": set,
            "builtins.frozenset": frozenset,
            "builtins.complex": complex,
            "_codecs.encode": _codecs.encode,  # bytes in protocol-2 pickles of numpy arrays
        }
    )
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1.x / 2.x pickles
        allowed[f"{module}._reconstruct"] = _multiarray._reconstruct
        allowed[f"{module}.scalar"] = _multiarray.scalar
    allowed["numpy.ndarray"] = np.ndarray
    allowed["numpy.dtype"] = np.dtype
    return allowed


_ALLOWED = _allowed_globals()


class _WeightsUnpickler(pickle.Unpickler):
    """Tensors, dtypes, numpy arrays and plain containers; anything else refuses the file."""

    def find_class(self, module, name):
        found = _ALLOWED.get(f"{module}.{name}")
        if found is None:
            raise _Refused(f"{module}.{name}")
        return found


class _RestrictedUnpickler(pickle.Unpickler):
    """As :class:`_WeightsUnpickler`, but any other global becomes an inert :class:`IgnoredObject`."""

    def find_class(self, module, name):
        return _ALLOWED.get(f"{module}.{name}", IgnoredObject)


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """For detectron2 model-zoo ``.pkl`` files: numpy arrays and plain containers, nothing else."""

    def find_class(self, module, name):
        found = _ALLOWED.get(f"{module}.{name}")
        if found is None or module.startswith("torch"):
            raise _Refused(f"{module}.{name}")
        return found


def _read(path, unpickler_class, refused_what: str = "", advice: str = ""):
    """The object in ``path``, structure-checked; every failure is one :class:`CheckpointReadError`
    line naming the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointReadError(f"{path} is not a file (a checkpoint is one .pth/.pkl file)")
    try:
        obj = read_torch_file(path, unpickler_class)
        check_structure(obj)
        return obj
    except _Refused as e:
        raise CheckpointReadError(
            f"{path} refused: it pickles {e.name}, {refused_what}; nothing in it was run{advice}"
        ) from None
    except TorchFileError as e:
        raise CheckpointReadError(f"{path} refused: {e}") from None
    except Exception as e:  # truncated zip, not a pickle, corrupt stream, absurd sizes ...
        message = str(e).splitlines()[0][:200] if str(e) else ""
        raise CheckpointReadError(
            f"{path} is not a readable PyTorch checkpoint or pickle ({type(e).__name__}: {message}); "
            "is the file complete?"
        ) from None


def load_array_pickle(path):
    """A plain pickle of numpy arrays in dicts/lists (detectron2's model zoo ``.pkl``)."""
    return _read(path, _ArraysOnlyUnpickler, "not only arrays", " (only numpy arrays are read from .pkl files)")


def _what(obj) -> str:
    return "a single tensor" if isinstance(obj, torch.Tensor) else f"a {type(obj).__name__}"


def load_tensor_checkpoint(path):
    """A checkpoint of tensors (``weights_only=True``'s rule: any other pickled object refuses the
    file), as a dict; its ``model`` entry, where present, maps names to tensors."""
    obj = _read(
        path,
        _WeightsUnpickler,
        "not only tensors",
        ". Rein/mmengine files: convert them with tools/convert_rein_checkpoint.py",
    )
    if not isinstance(obj, dict):
        raise CheckpointReadError(f"{path} holds {_what(obj)}, not a checkpoint (a dict of named weights)")
    if "model" in obj:
        model = obj["model"]
        if not isinstance(model, dict):
            raise CheckpointReadError(f"{path}: its 'model' entry is {_what(model)}, not a dict of named weights")
        for key, value in model.items():
            if not isinstance(key, str):
                raise CheckpointReadError(f"{path}: its 'model' entry has a key {key!r} that is not a name")
            if not isinstance(value, (torch.Tensor, np.ndarray)):
                raise CheckpointReadError(f"{path}: 'model' entry {key} is {_what(value)}, not a tensor")
    return obj


def load_restricted(path):
    """The object pickled in ``path`` (torch zip, legacy torch stream, or plain pickle), with every
    non-tensor object replaced by an :class:`IgnoredObject`. Tensors are loaded on the CPU."""
    return _read(path, _RestrictedUnpickler)


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
        raise CheckpointReadError(f"{path} holds {_what(obj)}, not a dict of named weights")
    for key in wrappers:
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    state = tensors_of(obj)
    if not state:
        raise CheckpointReadError(f"{path} holds no tensors under {' / '.join(wrappers)} or at the top level")
    return state
