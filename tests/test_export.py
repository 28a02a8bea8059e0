"""ONNX export: the gather-based sampling equals grid_sample; the exported graph equals PyTorch."""

import importlib.util

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import torch.nn.functional as F
from tiny_models import tiny_model

from vltseg_d2.export import SemSegExportModule
from vltseg_d2.modeling.pixel_decoder.ms_deform_attn import bilinear_sample_gather


def test_gather_sampling_equals_grid_sample_inside_and_outside_the_image():
    torch.manual_seed(0)
    image = torch.randn(3, 4, 5, 7)
    grid = torch.rand(3, 6, 9, 2) * 2.8 - 1.4  # about a third of the points fall outside
    grid[0, 0, 0] = torch.tensor([-1.0, 1.0])  # corners and exact pixel centres
    grid[0, 0, 1] = torch.tensor([1 / 7 - 1, 1 / 5 - 1])
    expected = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(bilinear_sample_gather(image, grid), expected, rtol=1e-5, atol=1e-6)


def test_gather_sampling_in_bf16_indexes_in_float32():
    """A bf16 grid on a 64 x 64 map: pixel indices up to 4095 are computed in float32 (in bf16
    they round to 4096 and index out of bounds); the result is grid_sample's on the same inputs."""
    torch.manual_seed(0)
    image = torch.randn(2, 3, 64, 64).bfloat16()
    grid = (torch.rand(2, 40, 40, 2) * 2 - 1).bfloat16()
    grid[0, 0, 0] = torch.tensor([0.99, 0.99])  # the last pixel's neighbourhood
    expected = F.grid_sample(image.float(), grid.float(), mode="bilinear", align_corners=False)
    got = bilinear_sample_gather(image, grid)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, rtol=2e-2, atol=2e-2)


def _export(tmp_path, height, width, *options):
    """tools/export_onnx.py on the tiny Rein model saved at tmp_path/model.pth."""
    spec = importlib.util.spec_from_file_location("export_onnx_tool", "tools/export_onnx.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    checkpoint, output = str(tmp_path / "model.pth"), str(tmp_path / "m.onnx")
    tool.main(["--config-file", "tests/configs/rein_tiny.py", "--checkpoint", checkpoint, "--output", output,
               "--size", height, width, *options])  # fmt: skip


def test_dynamic_export_with_gather_sampling_matches_pytorch_at_other_sizes(tmp_path, capsys):
    torch.manual_seed(0)
    model = tiny_model().eval()
    torch.save({"model": model.state_dict()}, tmp_path / "model.pth")
    _export(tmp_path, "64", "96", "--dynamic", "--sampling", "gather", "--check")
    assert "max abs difference" in capsys.readouterr().out
    graph = onnx.load(str(tmp_path / "m.onnx"))
    assert "GridSample" not in {node.op_type for node in graph.graph.node}
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for shape in ((1, 3, 64, 96), (2, 3, 96, 128)):
        image = torch.rand(*shape) * 255
        with torch.no_grad():
            expected = SemSegExportModule(model)(image).numpy()
        got = session.run(None, {"image": image.numpy()})[0]
        assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4


def test_export_refuses_a_size_the_graph_cannot_take(tmp_path):
    torch.save({"model": tiny_model().state_dict()}, tmp_path / "model.pth")
    with pytest.raises(SystemExit, match="multiple of 32"):
        _export(tmp_path, "60", "96")


@pytest.mark.parametrize(
    "size, options, message",
    [
        (("0", "64"), [], "--size 0 64: both must be positive multiples of 32"),
        (("64", "64"), ["--opset", "13"], "--opset 13: GridSample needs opset 16 or later"),
        (("64", "64"), ["--tolerance", "-1"], "--tolerance -1.0: must be >= 0"),
    ],
)
def test_export_options_that_make_no_sense_are_one_line(tmp_path, capsys, size, options, message):
    with pytest.raises(SystemExit) as stop:
        _export(tmp_path, *size, *options)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_an_export_output_that_is_a_folder_is_refused(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("export_onnx_tool", "tools/export_onnx.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.raises(SystemExit):
        tool.main(["--config-file", "tests/configs/rein_tiny.py", "--checkpoint", "m.pth", "--output", str(tmp_path)])
    assert f"--output {tmp_path} is a folder" in capsys.readouterr().err
