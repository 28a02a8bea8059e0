"""Named evaluation protocols recorded with every table, and test-time augmentation."""

from types import SimpleNamespace

import torch
from detectron2.config import LazyConfig
from tiny_models import tiny_model

from vltseg_d2.engine.trainer import evaluation_protocol
from vltseg_d2.evaluation import format_cross_domain_table, summarize_cross_domain


def _model():
    torch.manual_seed(0)
    model = tiny_model().eval()
    model.test_mode = "whole"
    return model


def _scores(model, image):
    return model.inference([{"image": image}])[0]["sem_seg"]


def test_flip_tta_is_flip_equivariant_and_symmetric_on_a_symmetric_input():
    model = _model()
    g = torch.Generator().manual_seed(0)
    half = torch.randint(0, 256, (3, 64, 48), generator=g, dtype=torch.uint8)
    symmetric = torch.cat([half, half.flip(-1)], dim=-1)  # 64 x 96: multiples of 32, no padding
    plain = _scores(model, symmetric)
    assert not torch.allclose(plain, plain.flip(-1), atol=1e-4)  # the model itself is not symmetric
    model.tta_flip = True
    tta = _scores(model, symmetric)
    torch.testing.assert_close(tta, tta.flip(-1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(tta, (plain + plain.flip(-1)) / 2, rtol=1e-5, atol=1e-6)
    image = torch.randint(0, 256, (3, 64, 96), generator=g, dtype=torch.uint8)
    torch.testing.assert_close(_scores(model, image.flip(-1)), _scores(model, image).flip(-1), rtol=1e-5, atol=1e-6)


def test_one_scale_without_flip_is_plain_inference_and_scales_average():
    model = _model()
    image = torch.randint(0, 256, (3, 64, 96), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    plain = _scores(model, image)
    normalised = (image.float() - model.pixel_mean) / model.pixel_std
    with torch.no_grad():
        torch.testing.assert_close(model.tta_scores(normalised, (1.0,), False, "whole"), plain)
        half = model.tta_scores(normalised, (0.5,), False, "whole")
        both = model.tta_scores(normalised, (0.5, 1.0), False, "whole")
    torch.testing.assert_close(both, (half + plain) / 2, rtol=1e-5, atol=1e-6)
    model.tta_scales = (0.5, 1.0)
    torch.testing.assert_close(_scores(model, image), both)


def test_the_two_named_protocols_and_what_the_table_records():
    rein = LazyConfig.load("configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k.py")
    full = LazyConfig.load("configs/rein/rein_dinov2_l_gta2cbm_512_bs4_40k_eval_fullres.py")
    assert rein.dataloader.test_protocol_name == "rein" and full.dataloader.test_protocol_name == "full_resolution"
    assert dict(rein.dataloader.test_protocols.cityscapes_val) == {"short_edge": 512, "max_size": 1024}
    assert dict(full.dataloader.test_protocols.cityscapes_val) == {"short_edge": 1024, "max_size": 2048}
    assert dict(full.dataloader.test_protocols.mapillary_val_half) == {"short_edge": 1024, "max_size": 2048}

    model = SimpleNamespace(
        test_mode="slide", test_crop=(512, 512), test_stride=(341, 341), tta_scales=(1.0,), tta_flip=False
    )
    names = list(rein.dataloader.test_datasets)
    protocol = evaluation_protocol(rein, model, names)
    assert protocol == {
        "name": "rein",
        "resize": {
            "cityscapes_val": {"short_edge": 512, "max_size": 1024},
            "bdd_val": "as is",
            "mapillary_val_half": {"short_edge": 512, "max_size": 1024},
        },
        "test_mode": "slide",
        "crop": [512, 512],
        "stride": [341, 341],
        "tta": {"scales": [1.0], "flip": False},
    }
    metrics = {"sem_seg": {"mIoU": 60.0, "mAcc": 70.0, "aAcc": 90.0}}
    summary = summarize_cross_domain({n: metrics for n in names})
    summary["protocol"] = protocol
    first = format_cross_domain_table(summary).splitlines()[0]
    assert first.startswith("protocol rein: sliding window 512x512 / stride 341x341, no TTA; inputs: cityscapes_val")
    assert "bdd_val as is" in first


def test_windows_per_pass_default_to_one_on_a_cpu_and_the_scores_do_not_depend_on_it():
    from detectron2.config import LazyConfig, instantiate

    cfg = LazyConfig.load("configs/demo/tiny_synthetic_cpu.py")
    cfg.model.test_mode, cfg.model.window_batch = "slide", None
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    assert model.windows_per_pass == 1  # CPU; 4 on CUDA
    image = torch.randint(0, 255, (3, 96, 300), dtype=torch.uint8)
    one = model.inference([{"image": image}])[0]["sem_seg"]
    model.window_batch = 4
    assert model.windows_per_pass == 4
    torch.testing.assert_close(model.inference([{"image": image}])[0]["sem_seg"], one, rtol=1e-5, atol=1e-5)
