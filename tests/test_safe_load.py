"""Reading tensors from checkpoints without running pickled code."""

import pickle

import numpy as np
import pytest
import torch
from planted import RunsCode

from vltseg_d2.utils.safe_load import CheckpointReadError, IgnoredObject, load_restricted, load_state_dict


class _Custom:  # a class of another framework: rebuilt as an inert placeholder
    def __init__(self):
        self.values = [1, 2]


@pytest.mark.parametrize("legacy", [False, True])
def test_tensors_are_kept_and_other_objects_never_run(tmp_path, legacy):
    marker = tmp_path / "ran"
    weights = {"a.weight": torch.arange(6.0).reshape(2, 3), "a.bias": torch.tensor([1.5])}
    obj = {"state_dict": weights, "meta": {"hook": RunsCode(marker), "obj": _Custom(), "seed": 3}}
    torch.save(obj, tmp_path / "ckpt.pth", _use_new_zipfile_serialization=not legacy)
    with open(tmp_path / "ckpt.pth", "rb") as f:  # the file would run code under a plain unpickler
        assert b"system" in f.read()
    loaded = load_restricted(tmp_path / "ckpt.pth")
    assert not marker.exists()
    assert isinstance(loaded["meta"]["hook"], IgnoredObject) and isinstance(loaded["meta"]["obj"], IgnoredObject)
    assert loaded["meta"]["seed"] == 3
    state = load_state_dict(tmp_path / "ckpt.pth")
    assert state.keys() == weights.keys() and all(torch.equal(state[k], weights[k]) for k in weights)


def test_a_model_zoo_pickle_of_numpy_arrays_is_read(tmp_path):
    marker = tmp_path / "ran"
    blobs = {"conv.weight": np.arange(4, dtype=np.float32).reshape(2, 2), "evil": RunsCode(marker)}
    with open(tmp_path / "model.pkl", "wb") as f:
        pickle.dump({"model": blobs, "__author__": "zoo"}, f)
    state = load_state_dict(tmp_path / "model.pkl")
    assert not marker.exists()
    assert list(state) == ["conv.weight"] and torch.equal(state["conv.weight"], torch.arange(4.0).reshape(2, 2))


def test_bad_files_are_one_clear_error_naming_the_file(tmp_path):
    torch.save({"w": torch.zeros(1000)}, tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    torch.save(torch.zeros(3), tmp_path / "bare.pth")
    with pytest.raises(CheckpointReadError, match="truncated.pth is not a readable"):
        load_state_dict(tmp_path / "truncated.pth")
    with pytest.raises(CheckpointReadError, match="notes.txt is not a readable"):
        load_state_dict(tmp_path / "notes.txt")
    with pytest.raises(CheckpointReadError, match="bare.pth holds a single tensor"):
        load_state_dict(tmp_path / "bare.pth")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_state_dict(tmp_path / "missing.pth")
