"""Trainable-only checkpoints, assembling a model from a backbone file, and the converter tools."""
import re
import subprocess
import sys

import pytest
import torch
from detectron2.config import instantiate
from pretrained_files import dinov2_state
from test_mask2former import _frames, read_fixture
from tiny_models import tiny_model_cfg

from vltseg_d2.checkpoint import load_trainable, save_trainable
from vltseg_d2.checkpoint.rein_mmseg import map_key


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


def test_convert_rein_checkpoint_tool(tmp_path):
    """A tiny checkpoint written with the released key names loads into the tiny model completely."""
    model = instantiate(tiny_model_cfg())
    own = model.state_dict()
    released = {}
    for key in read_fixture("rein_mmseg_checkpoint_keys.txt"):
        target = map_key(key)
        if target in own:  # layer indices beyond the tiny model's depth are left out
            released[key] = torch.randn(own[target].shape)
        else:
            assert re.search(r"layers\.\d+\.", key), key
    torch.save({"meta": {"mmseg_version": "1.x"}, "state_dict": released}, tmp_path / "rein.pth")
    subprocess.run([sys.executable, "tools/convert_rein_checkpoint.py", str(tmp_path / "rein.pth"),
                    str(tmp_path / "out.pth")], check=True, capture_output=True)
    converted = torch.load(tmp_path / "out.pth", weights_only=True)["model"]
    missing, unexpected = model.load_state_dict(converted, strict=False)
    assert not unexpected and all(k.startswith("backbone.vit.") for k in missing)
    key = "decode_head.transformer_decoder.layers.1.norms.0.weight"
    torch.testing.assert_close(model.state_dict()[map_key(key)], released[key])

    torch.save({"state_dict": {"decode_head.foo.weight": torch.zeros(1)}}, tmp_path / "bad.pth")
    bad = subprocess.run([sys.executable, "tools/convert_rein_checkpoint.py", str(tmp_path / "bad.pth"),
                          str(tmp_path / "bad_out.pth")], capture_output=True, text=True)
    assert bad.returncode != 0 and "decode_head.foo.weight" in bad.stderr
    assert not (tmp_path / "bad_out.pth").exists()
