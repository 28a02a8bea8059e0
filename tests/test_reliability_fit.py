"""Tensors from files must fit exactly: no broadcasting, no silent casts to another kind of number."""

import json
import struct

import pytest
import torch
from pretrained_files import dinov3_state
from test_pretrained_accounting import DINOV3, _backbone, _reference
from tiny_models import tiny_model

from vltseg_d2.checkpoint import CheckpointMismatchError, SafeCheckpointer, load_weights
from vltseg_d2.checkpoint.io import save_atomic
from vltseg_d2.engine.ema import TrainableEMA
from vltseg_d2.modeling.backbone import WeightsMismatchError
from vltseg_d2.utils.tensor_fit import misfits


def test_misfits_names_shape_and_kind_of_number_but_not_float_precision():
    own = {"w": torch.zeros(2, 3), "n": torch.zeros((), dtype=torch.int64), "b": torch.zeros(3)}
    given = {"w": torch.tensor(0.5), "n": torch.tensor(1.0), "b": torch.zeros(3, dtype=torch.bfloat16), "x": 1}
    assert misfits(own, given) == [
        "n: checkpoint () float32 vs model () int64",
        "w: checkpoint () float32 vs model (2, 3) float32",
    ]
    assert misfits({"w": torch.zeros(2)}, {"w": torch.zeros(2, dtype=torch.int8)}, "file") == [
        "w: file (2,) int8 vs model (2,) float32"
    ]


def _ema_checkpoint(tmp_path, model, value):
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    shadow = {n: value(p) for n, p in trained.items()}
    path = tmp_path / "ema.pth"
    save_atomic({"model": model.state_dict(), "ema": {"decay": 0.9, "start_iter": 0, "shadow": shadow}}, path)
    return path


def test_an_ema_of_0d_tensors_is_refused_not_broadcast(tmp_path):
    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    path = _ema_checkpoint(tmp_path, model, lambda p: torch.tensor(0.25))
    with pytest.raises(
        CheckpointMismatchError, match=r"ema.pth: \d+ EMA weights do not fit the model \(.*: EMA \(\) float32 vs model"
    ):
        load_weights(model, str(path))
    ema = TrainableEMA(model)
    with pytest.raises(ValueError, match="EMA weights of the checkpoint do not fit the model"):
        ema.load_state_dict({"shadow": {n: torch.tensor(0.25) for n in ema.shadow}})
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    ok = _ema_checkpoint(tmp_path, model, lambda p: torch.full_like(p, 0.25))
    load_weights(model, str(ok))
    assert all((p == 0.25).all() for n, p in model.named_parameters() if p.requires_grad)


def test_an_ema_entry_without_a_shadow_dict_is_one_line(tmp_path):
    model = tiny_model()
    save_atomic({"model": model.state_dict(), "ema": {"shadow": [1, 2]}}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointMismatchError, match="odd.pth: its 'ema' entry holds no 'shadow' dict"):
        load_weights(model, str(tmp_path / "odd.pth"))


def test_an_integer_weight_in_a_checkpoint_is_refused_not_cast(tmp_path):
    model = tiny_model()
    state = model.state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point() and v.ndim == 2)
    state[name] = state[name].to(torch.int64)
    save_atomic({"model": state}, tmp_path / "int.pth")
    with pytest.raises(
        CheckpointMismatchError,
        match=rf"another shape or kind of number \({name}: checkpoint .* int64 vs model .* float32",
    ):
        SafeCheckpointer(model).load(str(tmp_path / "int.pth"))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_an_int8_pretrained_file_is_refused_naming_the_tensor(tmp_path, suffix):
    from safetensors.torch import save_file

    state = dinov3_state(_reference(DINOV3))
    state["blocks.1.mlp.fc1.weight"] = state["blocks.1.mlp.fc1.weight"].to(torch.int8)
    path = tmp_path / f"quantised{suffix}"
    torch.save(state, path) if suffix == ".pth" else save_file(state, str(path))
    with pytest.raises(WeightsMismatchError, match=r"blocks\.1\.mlp\.fc1\.weight: file \(256, 64\) int8 vs model"):
        _backbone(DINOV3, path)


def test_a_broken_safetensors_header_is_one_line(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    (tmp_path / "big.safetensors").write_bytes(struct.pack("<Q", 10**15) + header)
    (tmp_path / "short.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    (tmp_path / "flat.safetensors").write_bytes(struct.pack("<Q", 2) + b"[]")
    for name in ("big", "short", "flat"):
        with pytest.raises(WeightsMismatchError, match=rf"{name}.safetensors is not a readable safetensors file \("):
            _backbone(DINOV3, tmp_path / f"{name}.safetensors")


def test_an_optimizer_state_of_other_shapes_or_groups_is_refused_on_resume(tmp_path):
    model = tiny_model()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": params[:3]}, {"params": params[3:]}], lr=1e-3)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    saved = optimizer.state_dict()
    saved["state"][1]["exp_avg"] = torch.zeros(())  # would broadcast in the next step
    save_atomic({"model": model.state_dict(), "optimizer": saved}, tmp_path / "moments.pth")
    with pytest.raises(CheckpointMismatchError, match=r"moments.pth: its optimizer's exp_avg of parameter 1 is \(\)"):
        SafeCheckpointer(model, optimizer=optimizer).load(str(tmp_path / "moments.pth"))
    one_group = torch.optim.AdamW(params, lr=1e-3).state_dict()
    save_atomic({"model": model.state_dict(), "optimizer": one_group}, tmp_path / "groups.pth")
    with pytest.raises(CheckpointMismatchError, match="groups.pth: its optimizer has 1 parameter groups, this one 2"):
        SafeCheckpointer(model, optimizer=optimizer).load(str(tmp_path / "groups.pth"))
    save_atomic({"model": model.state_dict(), "optimizer": [1, 2]}, tmp_path / "list.pth")
    with pytest.raises(CheckpointMismatchError, match="list.pth: its 'optimizer' entry is not an optimizer state"):
        SafeCheckpointer(model, optimizer=optimizer).load(str(tmp_path / "list.pth"))
