"""The importable Predictor: detectron2's DefaultPredictor contract."""

import cv2
import numpy as np
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
