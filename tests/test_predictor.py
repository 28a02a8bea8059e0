"""The importable Predictor: detectron2's DefaultPredictor contract."""

import cv2
import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, instantiate

from vltseg_d2.engine import Predictor

DEMO_CFG = "configs/demo/tiny_synthetic_cpu.py"


def _cfg_and_weights(tmp_path):
    torch.manual_seed(0)
    cfg = LazyConfig.load(DEMO_CFG)
    cfg.train.device = "cpu"
    torch.save({"model": instantiate(cfg.model).state_dict()}, tmp_path / "model.pth")
    return cfg, str(tmp_path / "model.pth")


def test_bgr_by_default_rgb_by_argument_scores_at_the_input_size(tmp_path):
    cfg, weights = _cfg_and_weights(tmp_path)
    rgb = np.random.default_rng(0).integers(0, 255, (70, 110, 3), dtype=np.uint8)
    bgr_out = Predictor(cfg, weights)(np.ascontiguousarray(rgb[..., ::-1]))
    rgb_predictor = Predictor(cfg, weights, input_format="RGB")
    rgb_out = rgb_predictor(rgb)
    assert set(bgr_out) == {"sem_seg"} and bgr_out["sem_seg"].shape == (19, 70, 110)
    torch.testing.assert_close(bgr_out["sem_seg"], rgb_out["sem_seg"])
    assert not torch.allclose(rgb_predictor(np.ascontiguousarray(rgb[..., ::-1]))["sem_seg"], rgb_out["sem_seg"])
    assert rgb_predictor.metadata.stuff_classes[0] == "road" and rgb_predictor.metadata.name == "synthetic_source_val"


def test_the_datasets_evaluation_resize_protocol_is_applied(tmp_path):
    cfg, weights = _cfg_and_weights(tmp_path)
    cfg.dataloader.test_protocols = {"synthetic_fog_val": {"short_edge": 32, "max_size": 64}}
    rgb = np.random.default_rng(1).integers(0, 255, (64, 128, 3), dtype=np.uint8)
    protocol = Predictor(cfg, weights, input_format="RGB", dataset="synthetic_fog_val")
    model = protocol.model
    small = cv2.resize(rgb, (64, 32), interpolation=cv2.INTER_LINEAR)  # mmseg's test resize: OpenCV bilinear
    assert small.shape == (32, 64, 3)
    expected = model([{"image": torch.as_tensor(small.transpose(2, 0, 1).copy()), "height": 64, "width": 128}])[0][
        "sem_seg"
    ]
    got = protocol(rgb)["sem_seg"]
    assert got.shape == (19, 64, 128)
    torch.testing.assert_close(got, expected)
    plain = Predictor(cfg, weights, input_format="RGB", dataset="synthetic_night_val")(rgb)["sem_seg"]
    assert not torch.allclose(plain, got)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.full((8, 8, 3), 0.5, np.float32), r"not float32 \(floats in 0\.\.1: \(image \* 255\)"),
        (np.zeros((8, 8), np.uint8), r"not shape \(8, 8\) \(gray: cv2.cvtColor"),
        (np.zeros((8, 8, 4), np.uint8), r"not shape \(8, 8, 4\) .*COLOR_BGRA2BGR"),
        (np.zeros((3, 8, 8), np.uint8), r"not 3 x H x W \(3, 8, 8\) \(image.transpose\(1, 2, 0\)\)"),
        (np.zeros((0, 8, 3), np.uint8), r"this one is empty \(\(0, 8, 3\)\)"),
        (torch.zeros(3, 8, 8, dtype=torch.uint8), r"not a torch tensor"),
        ([[0, 1]], r"not a list"),
    ],
)
def test_inputs_it_does_not_take_are_refused_in_one_line_saying_how_to_convert(image, message):
    from vltseg_d2.engine.predictor import check_image

    with pytest.raises((TypeError, ValueError), match=r"takes an H x W x 3 uint8 BGR numpy array .*" + message):
        check_image(image, "BGR")
    check_image(np.zeros((8, 8, 3), np.uint8))


def test_a_large_frame_left_at_full_resolution_is_said_once_with_how_to_resize(tmp_path, caplog):
    cfg, weights = _cfg_and_weights(tmp_path)
    rgb = np.zeros((64, 128, 3), np.uint8)
    predictor = Predictor(cfg, weights, input_format="RGB", large_frame_pixels=64 * 127)
    with caplog.at_level("WARNING", logger="vltseg_d2"):
        predictor(rgb)
        predictor(rgb)
    said = [r.getMessage() for r in caplog.records if "full resolution" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("a 128x64 frame runs at full resolution: the evaluation protocol of")
    assert "--resize 1024 2048" in said[0] and "Predictor(..., resize=(1024, 2048))" in said[0]
    caplog.clear()
    resized = Predictor(cfg, weights, input_format="RGB", resize=(32, 64), large_frame_pixels=64 * 127)
    small = Predictor(cfg, weights, input_format="RGB", large_frame_pixels=64 * 128)
    with caplog.at_level("WARNING", logger="vltseg_d2"):
        resized(rgb)  # resized by the caller: nothing to say
        small(rgb)  # not over the size
    assert "full resolution" not in caplog.text
