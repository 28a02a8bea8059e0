"""Files built to run code, hang a reader or exhaust memory: refused in one line, or read inert.

Each payload is built here. Every reader of ours goes through :mod:`vltseg_d2.utils.torch_file`,
which never calls ``torch.load``; the readers differ only in what an unknown pickled global
becomes (refusal, or an inert placeholder).
"""

import collections
import functools
import io
import operator
import os
import pickle
import tarfile
import tempfile
import threading
import zipfile

import numpy as np
import pytest
import torch
from planted import RunsCode

from vltseg_d2.utils.safe_load import (
    CheckpointReadError,
    IgnoredObject,
    load_array_pickle,
    load_restricted,
    load_state_dict,
    load_tensor_checkpoint,
)

READERS = [load_tensor_checkpoint, load_restricted, load_state_dict, load_array_pickle]


@pytest.fixture(autouse=True)
def torch_load_is_never_called(monkeypatch):
    """The readers must not reach torch.load or torch.jit.load on any path."""

    def called(*args, **kwargs):
        raise AssertionError("torch.load / torch.jit.load was called")

    monkeypatch.setattr(torch, "load", called)
    monkeypatch.setattr(torch.jit, "load", called)


class Gadget:
    """Pickles as ``func(*args)``: any callable a crafted file could name."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args

    def __call__(self, *args):  # the pickler only checks that a reduced callable is callable
        raise AssertionError("never called while pickling")


def _gadgets(marker):
    command = f"touch {marker}"
    return {
        "getattr": Gadget(Gadget(getattr, Gadget(__import__, "os"), "system"), command),
        "partial": Gadget(functools.partial(os.system, command)),
        "attrgetter": Gadget(Gadget(operator.attrgetter("system"), Gadget(__import__, "os")), command),
        "eval": Gadget(eval, f"__import__('os').system('{command}')"),
        "system": RunsCode(marker),
        "rebuild_from_a_non_storage": Gadget(
            torch._utils._rebuild_tensor_v2, RunsCode(marker), 0, (3,), (1,), False, collections.OrderedDict()
        ),
        "subclass_rebuilt_by_system": Gadget(
            torch._tensor._rebuild_from_type_v2, os.system, torch.Tensor, (command,), {}
        ),
    }


@pytest.mark.parametrize("name", list(_gadgets("m")))
@pytest.mark.parametrize("legacy", [False, True])
def test_code_gadgets_are_refused_or_inert_in_every_reader(tmp_path, name, legacy):
    marker = tmp_path / "ran"
    payload = {"model": {"w": torch.ones(2)}, "meta": _gadgets(marker)[name]}
    path = tmp_path / "evil.pth"
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    for reader in READERS:
        try:
            result = reader(path)
        except CheckpointReadError as e:
            assert str(e).startswith(f"{path} ") and "\n" not in str(e)
        else:
            assert reader in (load_restricted, load_state_dict), f"{reader.__name__} read a {name} gadget"
            meta = result.get("meta") if reader is load_restricted else None
            assert meta is None or isinstance(meta, IgnoredObject)
        assert not marker.exists(), f"{reader.__name__} ran the {name} gadget"


def test_a_torchscript_archive_is_refused_before_anything_loads_it(tmp_path):
    path = tmp_path / "scripted.pth"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    for reader in READERS:
        with pytest.raises(CheckpointReadError, match="scripted.pth refused: it is a TorchScript archive"):
            reader(path)


def test_a_legacy_tar_archive_with_a_fifo_is_refused_without_hanging_or_extracting(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    path = tmp_path / "old.pth"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        fifo = tarfile.TarInfo("storages")
        fifo.type = tarfile.FIFOTYPE
        tar.addfile(fifo)
        for name in ("tensors", "pickle", "sys_info"):
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"\0" * 4))
    outcome = []

    def read_all():
        for reader in READERS:
            try:
                reader(path)
                outcome.append(f"{reader.__name__} read it")
            except CheckpointReadError as e:
                outcome.append(str(e))

    worker = threading.Thread(target=read_all, daemon=True)
    worker.start()
    worker.join(timeout=120)  # a reader that opens the FIFO blocks forever
    assert not worker.is_alive(), "a reader hangs on the FIFO"
    assert outcome == [f"{path} refused: it is a legacy tar archive (PyTorch < 0.4), which is not read"] * 4
    assert list(scratch.iterdir()) == []


def _zip_with_pickle(path, data_pkl: bytes, records=None, compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compress) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        for name, data in (records or {}).items():
            archive.writestr(f"archive/{name}", data)


def test_absurd_sizes_from_a_tiny_file_are_refused_before_allocating(tmp_path):
    torch.save({"w": torch.ones(4)}, tmp_path / "ok.pth")
    with zipfile.ZipFile(tmp_path / "ok.pth") as archive:
        records = {n.split("/", 1)[1]: archive.read(n) for n in archive.namelist()}
    original = records["data.pkl"]
    # the same tensor, claiming 10**12 elements over its 4-element storage
    records["data.pkl"] = original.replace(b"K\x04\x85", b"\x8a\x06\x00\x10\xa5\xd4\xe8\x00\x85")
    assert records["data.pkl"] != original
    _zip_with_pickle(tmp_path / "view.pth", records.pop("data.pkl"), records)
    with pytest.raises(CheckpointReadError, match="view.pth refused: a tensor of size .* does not fit its storage"):
        load_tensor_checkpoint(tmp_path / "view.pth")
    # a storage that declares 10**12 floats, with 16 bytes in its record
    records["data.pkl"] = original.replace(b"K\x04t", b"\x8a\x06\x00\x10\xa5\xd4\xe8\x00t")
    _zip_with_pickle(tmp_path / "storage.pth", records.pop("data.pkl"), records)
    with pytest.raises(CheckpointReadError, match=r"storage.pth refused: storage 0 should hold 4000000000000 bytes"):
        load_tensor_checkpoint(tmp_path / "storage.pth")
    # a storage class called with a size, as a crafted pickle would
    called = pickle.dumps({"w": Gadget(torch.FloatStorage, 10**12)}, protocol=2)
    _zip_with_pickle(tmp_path / "call.pth", called)
    with pytest.raises(CheckpointReadError, match="call.pth is not a readable .*TypeError"):
        load_tensor_checkpoint(tmp_path / "call.pth")


def test_a_record_that_inflates_far_beyond_its_size_is_not_inflated(tmp_path):
    bomb = tmp_path / "bomb.pth"
    _zip_with_pickle(bomb, pickle.dumps({}), {"data/0": b"\0" * (64 << 20)}, compress=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(CheckpointReadError, match=r"bomb.pth refused: record archive/data/0 declares 67108864 bytes"):
        load_restricted(bomb)


def _nested_pickle(depth):
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


def test_deep_nesting_and_doubling_shared_branches_are_refused(tmp_path):
    (tmp_path / "deep.pkl").write_bytes(_nested_pickle(100_000))
    _zip_with_pickle(tmp_path / "deep.pth", _nested_pickle(100_000))
    for path in (tmp_path / "deep.pkl", tmp_path / "deep.pth"):
        with pytest.raises(CheckpointReadError, match="nests containers more than 64 levels deep"):
            load_restricted(path)
    branch = [1.0]
    for _ in range(40):  # 2**40 paths through 41 lists
        branch = [branch, branch]
    torch.save({"model": {}, "meta": branch}, tmp_path / "shared.pth")
    with pytest.raises(CheckpointReadError, match="holds a container twice"):
        load_restricted(tmp_path / "shared.pth")
    betas = (0.9, 0.999)  # a shared tuple of plain values is fine
    torch.save({"model": {"w": torch.ones(1)}, "groups": [{"betas": betas}, {"betas": betas}]}, tmp_path / "ok.pth")
    assert load_tensor_checkpoint(tmp_path / "ok.pth")["groups"][1]["betas"] == betas


@pytest.mark.parametrize(
    "tensor, kind",
    [
        (torch.empty(3, device="meta"), "meta"),
        (torch.sparse_coo_tensor(torch.tensor([[0, 1]]), torch.ones(2), (4,)), "sparse"),
        (torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.qint8), "quantized"),
    ],
)
def test_tensors_without_plain_values_are_refused_by_kind(tmp_path, tensor, kind):
    torch.save({"model": {"w": tensor}}, tmp_path / "odd.pth")
    for reader in (load_tensor_checkpoint, load_restricted):
        with pytest.raises(CheckpointReadError, match=f"odd.pth refused: it holds a {kind}"):
            reader(tmp_path / "odd.pth")


def test_an_out_of_bounds_sparse_tensor_is_refused(tmp_path):
    bad = torch.sparse_coo_tensor(torch.tensor([[0, 9]]), torch.ones(2), (4,), check_invariants=False)
    torch.save({"model": {"w": bad}}, tmp_path / "sparse.pth")
    with pytest.raises(CheckpointReadError, match="it holds a sparse tensor"):
        load_tensor_checkpoint(tmp_path / "sparse.pth")


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"model": [torch.ones(1)]}, "its 'model' entry is a list, not a dict of named weights"),
        ({"model": {1: torch.ones(1)}}, "its 'model' entry has a key 1 that is not a name"),
        ({"model": {"w": "text"}}, "'model' entry w is a str, not a tensor"),
        ([torch.ones(1)], "holds a list, not a checkpoint"),
    ],
)
def test_malformed_checkpoint_contents_are_one_line(tmp_path, payload, message):
    torch.save(payload, tmp_path / "odd.pth")
    with pytest.raises(CheckpointReadError, match=message):
        load_tensor_checkpoint(tmp_path / "odd.pth")


def test_a_directory_named_like_a_checkpoint_is_one_line(tmp_path):
    (tmp_path / "model.pth").mkdir()
    with pytest.raises(CheckpointReadError, match="model.pth is not a file"):
        load_tensor_checkpoint(tmp_path / "model.pth")


@pytest.mark.parametrize("legacy", [False, True])
def test_every_dtype_views_and_shared_storages_round_trip(tmp_path, legacy):
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    state = {
        "view": base[1:3, ::2],
        "base": base,
        "half": torch.tensor([1.5, -2.0], dtype=torch.float16),
        "bf16": torch.tensor([3.0], dtype=torch.bfloat16),
        "int8": torch.tensor([-3, 4], dtype=torch.int8),
        "bool": torch.tensor([True, False]),
        "param": torch.nn.Parameter(torch.ones(2)),
        "empty": torch.zeros(0, 3),
        "array": np.arange(3, dtype=np.int32),
    }
    torch.save(state, tmp_path / "all.pth", _use_new_zipfile_serialization=not legacy)
    loaded = load_tensor_checkpoint(tmp_path / "all.pth")
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(loaded[key], value)
        else:
            assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value.detach()), key
            assert type(loaded[key]) is torch.Tensor
    loaded["view"][0, 0] = -1  # views share their storage, as torch.load's do
    assert loaded["base"][1, 0] == -1
