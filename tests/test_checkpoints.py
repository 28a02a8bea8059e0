"""Trainable-only checkpoints and assembling a model from a backbone file."""
import pytest
import torch
from detectron2.config import instantiate
from pretrained_files import dinov2_state
from test_mask2former import _frames
from tiny_models import tiny_model_cfg

from vltseg_d2.checkpoint import load_trainable, save_trainable


def _scores(model, frames):
    model.eval()
    with torch.no_grad():
        return model([dict(f) for f in frames])[0]["sem_seg"]


def test_model_assembled_from_backbone_file_and_trainable_file(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_model_cfg(img_size=518)
    cfg.backbone.patch_size = 14
    trained = instantiate(cfg)
    with torch.no_grad():
        for p in trained.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.01)  # "training"
    torch.save(dinov2_state(trained.backbone.vit), tmp_path / "dinov2.pth")
    save_trainable(trained, tmp_path / "rein_head.pth")
    trainable = torch.load(tmp_path / "rein_head.pth", weights_only=True)["model"]
    assert trainable and not any(k.startswith("backbone.vit.") for k in trainable)

    torch.manual_seed(1)
    cfg.backbone.pretrained = str(tmp_path / "dinov2.pth")
    assembled = instantiate(cfg)
    load_trainable(assembled, tmp_path / "rein_head.pth")
    frames = _frames(n=1)
    torch.testing.assert_close(_scores(assembled, frames), _scores(trained, frames))

    other = instantiate(tiny_model_cfg(hidden=32))
    with pytest.raises(ValueError, match="does not fit"):
        load_trainable(other, tmp_path / "rein_head.pth")
