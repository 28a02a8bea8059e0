"""Read the files ``torch.save`` writes without ``torch.load``.

``torch.load`` with ``weights_only`` turned off is not made safe by a restricted ``pickle_module``:
before any unpickler sees the file, torch hands TorchScript archives to
``torch.jit.load`` (which runs the archive's code, e.g. a ``__setstate__``) and extracts legacy tar
archives into a temporary folder (a FIFO member blocks the reader forever). ``weights_only=True``
refuses every object it does not know, which rules out the training checkpoints of other
frameworks (mmengine keeps config objects and history buffers beside the weights). No library
reads "the tensors of any torch file, and nothing else", so this module parses the two formats
itself, with the unpickler the caller chooses:

- the zip archive (``torch.save`` since PyTorch 1.6): ``<archive>/data.pkl`` is unpickled, and each
  storage it references is read from the record ``<archive>/data/<key>``, whose size must be exactly
  the storage's declared size. Records are never inflated beyond a bounded ratio of their stored
  size, so a small file cannot declare gigabytes;
- the pickle stream (``_use_new_zipfile_serialization=False``): magic number, protocol version and
  system information, the object pickle, the list of storage keys, then each storage as an int64
  element count and its bytes (layout checked against ``torch.serialization._legacy_load``);
- TorchScript archives (a ``constants.pkl`` or ``code/`` record) and legacy tar archives
  (PyTorch < 0.4) are refused without extracting or running anything.

Only plain dense CPU tensors are built. Meta, sparse, quantized, nested and subclass tensors, and
tensor views outside their storage, are refused by name.
"""

import io
import pickle
import struct
import tarfile
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple

import torch

MAX_INFLATION = 64  # a deflated record may expand at most this much (torch stores records uncompressed)
MAX_DEPTH = 64  # nesting depth of containers a checkpoint may have


class TorchFileError(ValueError):
    """The file's structure or contents are refused; the message says what and why."""


class StorageType:
    """Stands in for ``torch.FloatStorage`` and friends: only its dtype is read, and it cannot be
    called (``torch.FloatStorage(10**12)`` in a crafted pickle would allocate terabytes)."""

    def __init__(self, dtype):
        self.dtype = dtype


class Storage(NamedTuple):
    """A storage read from the file: its bytes and the dtype its tensors view them as."""

    data: torch.Tensor  # uint8
    dtype: torch.dtype


_QUANTIZED = {torch.qint8, torch.quint8, torch.qint32, torch.quint4x2, torch.quint2x4}


def storage_globals() -> dict:
    """``torch.<Kind>Storage`` (and ``torch.cuda.<Kind>Storage``, ``torch.storage.UntypedStorage``)
    names to their stand-ins (quantized kinds too, to be refused by name when used)."""
    found = {"torch.storage.UntypedStorage": StorageType(torch.uint8)}
    with warnings.catch_warnings():  # reading a legacy storage class's dtype warns that TypedStorage is deprecated
        warnings.simplefilter("ignore", UserWarning)
        for module, prefix in ((torch, "torch"), (torch.cuda, "torch.cuda")):
            for name in dir(module):
                dtype = getattr(getattr(module, name), "dtype", None) if name.endswith("Storage") else None
                if isinstance(dtype, torch.dtype):
                    found[f"{prefix}.{name}"] = StorageType(dtype)
    return found


def rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    """``torch._utils._rebuild_tensor_v2`` for plain tensors: hooks and metadata are dropped, and the
    view must lie inside its storage (``set_`` checks the bounds)."""
    if not isinstance(storage, Storage):
        raise TorchFileError(f"a tensor is rebuilt from a {type(storage).__name__}, not from a storage of the file")
    if not (
        isinstance(offset, int)
        and isinstance(size, tuple)
        and isinstance(stride, tuple)
        and len(size) == len(stride)
        and all(isinstance(v, int) and v >= 0 for v in (offset, *size, *stride))
    ):
        raise TorchFileError("a tensor has a malformed size, stride or offset")
    try:
        return torch.empty((0,), dtype=storage.dtype).set_(storage.data.untyped_storage(), offset, size, stride)
    except RuntimeError as e:
        raise TorchFileError(f"a tensor of size {size} does not fit its storage ({str(e).splitlines()[0]})") from None


def rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    """``torch._utils._rebuild_parameter(_with_state)``: the tensor, without hooks or attributes."""
    if not isinstance(data, torch.Tensor):
        raise TorchFileError(f"a parameter wraps a {type(data).__name__}, not a tensor")
    return data


def rebuild_from_type(func, new_type, args, state):
    """``torch._tensor._rebuild_from_type_v2``: the tensor, without its Python subclass or state
    (which could name any class)."""
    if func not in (rebuild_tensor, rebuild_parameter) or not isinstance(args, tuple):
        raise TorchFileError("a tensor subclass is rebuilt by a function that does not build tensors")
    return func(*args)


def _refused_tensor(kind):
    def refuse(*args, **kwargs):
        raise TorchFileError(f"it holds a {kind} tensor; only dense tensors with values are read")

    return refuse


TENSOR_REBUILDERS = {
    "torch._utils._rebuild_tensor_v2": rebuild_tensor,
    "torch._utils._rebuild_parameter": rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": rebuild_parameter,
    "torch._tensor._rebuild_from_type_v2": rebuild_from_type,
}
REFUSED_TENSORS = {
    "torch._utils._rebuild_meta_tensor_no_storage": _refused_tensor("meta (shape only, no values)"),
    "torch._utils._rebuild_sparse_tensor": _refused_tensor("sparse"),
    "torch._utils._rebuild_nested_tensor": _refused_tensor("nested"),
    "torch._utils._rebuild_qtensor": _refused_tensor("quantized"),
    "torch._utils._rebuild_wrapper_subclass": _refused_tensor("wrapper-subclass"),
    "torch._utils._rebuild_device_tensor_from_numpy": _refused_tensor("device (numpy-backed)"),
    "torch._utils._rebuild_device_tensor_from_cpu_tensor": _refused_tensor("device"),
    "torch._utils._rebuild_tensor_v3": _refused_tensor("typed-storage v3"),
    "torch.serialization._get_layout": _refused_tensor("sparse"),  # only sparse tensors pickle their layout
}


class _Storages:
    """``persistent_load`` for both formats: makes each referenced storage once, from ``read``."""

    def __init__(self, read):
        self.read = read  # (key, element count, element size) -> uint8 tensor of count * size bytes
        self.by_key = {}

    def __call__(self, saved_id):
        if not (isinstance(saved_id, tuple) and len(saved_id) in (5, 6) and saved_id[0] in ("storage", b"storage")):
            raise TorchFileError(f"it references an object of kind {str(saved_id)[:60]}, not a storage")
        storage_type, key, _location, numel = saved_id[1:5]
        view = saved_id[5] if len(saved_id) == 6 else None
        if not isinstance(storage_type, StorageType) or not isinstance(numel, int) or numel < 0:
            raise TorchFileError(f"storage {key!r} has an unknown type or a malformed size")
        if storage_type.dtype in _QUANTIZED:
            raise TorchFileError("it holds a quantized tensor; only dense tensors with values are read")
        key = key.decode() if isinstance(key, bytes) else str(key)
        size = torch._utils._element_size(storage_type.dtype)
        if key not in self.by_key:
            self.by_key[key] = self.read(key, numel, size)
        data = self.by_key[key]
        if view is not None:  # (view key, offset, count) of the legacy stream format
            _view_key, offset, count = view
            if not (isinstance(offset, int) and isinstance(count, int) and 0 <= offset <= offset + count <= numel):
                raise TorchFileError(f"storage {key!r} has a view outside it")
            data = data[offset * size : (offset + count) * size]
        return Storage(data, storage_type.dtype)


def _unpickle(stream, unpickler_class, storages):
    unpickler = unpickler_class(stream, encoding="latin1")
    unpickler.persistent_load = storages
    return unpickler.load()


def _read_zip(path: Path, unpickler_class):
    with zipfile.ZipFile(path) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        pickles = [name for name in infos if name.endswith("data.pkl") and name.count("/") <= 1]
        if len(pickles) != 1:
            raise TorchFileError(f"a zip archive with {len(pickles)} data.pkl records, not a torch.save file")
        prefix = pickles[0][: -len("data.pkl")]
        if prefix + "constants.pkl" in infos or any(name.startswith(prefix + "code/") for name in infos):
            raise TorchFileError(
                "it is a TorchScript archive (torch.jit.save), which runs code when loaded; nothing was run. "
                "Save the weights with torch.save(model.state_dict(), ...)"
            )
        for info in infos.values():
            if info.file_size > MAX_INFLATION * info.compress_size + (1 << 20):
                raise TorchFileError(
                    f"record {info.filename} declares {info.file_size} bytes inflated from {info.compress_size}; "
                    "not inflated"
                )
        order = archive.read(prefix + "byteorder").decode() if prefix + "byteorder" in infos else "little"
        if order != "little":
            raise TorchFileError(f"its tensors are stored {order}-endian; re-save it on a little-endian machine")

        def read(key, numel, element_size):
            nbytes = numel * element_size
            info = infos.get(f"{prefix}data/{key}")
            if info is None or info.file_size != nbytes:
                found = "missing" if info is None else f"{info.file_size} bytes"
                raise TorchFileError(f"storage {key} should hold {nbytes} bytes, the record is {found}")
            data = torch.empty(nbytes, dtype=torch.uint8)
            with archive.open(info) as f:
                if nbytes and f.readinto(memoryview(data.numpy())) != nbytes:
                    raise TorchFileError(f"storage {key} is shorter than declared")
            return data

        with archive.open(prefix + "data.pkl") as f:
            return _unpickle(f, unpickler_class, _Storages(read))


class _PlainUnpickler(pickle.Unpickler):
    """One pickle of plain values (the stream's header and key list): no globals at all."""

    def find_class(self, module, name):
        raise TorchFileError(f"its header pickles {module}.{name}")


def _plain_value(f):
    return _PlainUnpickler(f).load()


def _read_stream(f, unpickler_class, file_size):
    """The legacy pickle stream after its magic number: the protocol version, the system
    information, the objects, the storage keys, then each storage's element count and bytes."""
    protocol, info = _plain_value(f), _plain_value(f)
    if protocol != 1001 or not isinstance(info, dict):
        raise TorchFileError(f"unknown legacy format version {protocol!r}")
    if not info.get("little_endian", True):
        raise TorchFileError("its tensors are stored big-endian; re-save it on a little-endian machine")
    declared = {}  # key -> (element count, element size); the bytes follow the objects

    def read(key, numel, element_size):
        if numel * element_size > file_size:
            raise TorchFileError(f"storage {key} declares {numel * element_size} bytes, more than the file holds")
        declared[key] = (numel, element_size)
        return torch.empty(numel * element_size, dtype=torch.uint8)

    storages = _Storages(read)
    obj = _unpickle(f, unpickler_class, storages)
    order = _plain_value(f)
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(declared):
        raise TorchFileError("its storage list does not match the storages its objects use")
    for key in map(str, order):
        data, (numel, _) = storages.by_key[key], declared[key]
        count = f.read(8)
        if len(count) != 8 or struct.unpack("<q", count)[0] != numel:
            raise TorchFileError(f"storage {key} has another size than its objects declare")
        if data.numel() and f.readinto(memoryview(data.numpy())) != data.numel():
            raise TorchFileError(f"storage {key} is shorter than declared")
    return obj


def read_torch_file(path, unpickler_class):
    """The object stored in ``path`` (a ``torch.save`` zip, its legacy stream, or a plain pickle),
    unpickled by ``unpickler_class``, whose ``find_class`` decides what every global becomes
    (:func:`storage_globals` and :data:`TENSOR_REBUILDERS` are what tensors need)."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        return _read_zip(path, unpickler_class)
    if tarfile.is_tarfile(path):
        raise TorchFileError("it is a legacy tar archive (PyTorch < 0.4), which is not read")
    size = path.stat().st_size
    with open(path, "rb") as raw:
        f = io.BufferedReader(raw)
        first = _unpickle(f, unpickler_class, _Storages(_no_storage))
        if isinstance(first, int) and first == torch.serialization.MAGIC_NUMBER:
            return _read_stream(f, unpickler_class, size)
        return first


def _no_storage(key, numel, element_size):
    raise TorchFileError("a plain pickle references tensor storages it does not hold")


def check_structure(obj):
    """Refuse containers nested deeper than :data:`MAX_DEPTH`, and containers of containers reached
    twice (a loop, or shared branches that double at every level), before anything walks them
    recursively: the unpickler builds any such graph without recursion, later walks would not end.
    A container of plain values may be shared (torch.save memoises e.g. one ``betas`` tuple used by
    every optimizer group)."""
    seen = set()

    def visit(value, where, depth):
        if not isinstance(value, (dict, list, tuple)):
            return
        if depth > MAX_DEPTH:
            raise TorchFileError(f"it nests containers more than {MAX_DEPTH} levels deep (at {where})")
        items = list(value.items() if isinstance(value, dict) else enumerate(value))
        if any(isinstance(item, (dict, list, tuple)) for _, item in items):
            if id(value) in seen:
                raise TorchFileError(f"it holds a container twice (a loop or a shared branch, at {where})")
            seen.add(id(value))
        for key, item in items:
            visit(item, f"{where}.{key}" if isinstance(value, dict) else f"{where}[{key}]", depth + 1)

    visit(obj, "top", 0)
