"""Compact checkpoints for frozen backbones, weights read when training starts, full-model export."""

import os
import subprocess
import sys

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from pretrained_files import dinov2_state
from test_mask2former import _frames
from test_train_net import FAST, train_net
from tiny_models import tiny_model_cfg

from vltseg_d2.checkpoint import CheckpointMismatchError, SafeCheckpointer, load_weights


def _scores(model, frames):
    model.eval()
    with torch.no_grad():
        return model([dict(f) for f in frames])[0]["sem_seg"]


def _trained_rein(tmp_path):
    """A tiny Rein model whose frozen ViT came from an original-layout file, then "trained"."""
    torch.manual_seed(0)
    cfg = tiny_model_cfg(img_size=518)
    cfg.backbone.update(patch_size=14, pretrained=str(tmp_path / "dinov2.pth"))
    donor = instantiate(cfg)
    torch.save(dinov2_state(donor.backbone.vit), tmp_path / "dinov2.pth")
    torch.manual_seed(1)
    model = instantiate(cfg)
    assert model.backbone.loaded_from is None  # building never reads the file
    model.backbone.load_pretrained()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.01)
    return cfg, model


def test_frozen_backbone_checkpoints_hold_what_was_trained_and_reload_exactly(tmp_path):
    cfg, trained = _trained_rein(tmp_path)
    SafeCheckpointer(trained, str(tmp_path / "run")).save("model_final")
    saved = torch.load(tmp_path / "run" / "model_final.pth", weights_only=True)
    assert not any(k.startswith("backbone.vit.") for k in saved["model"])
    assert set(saved["model"]) == {k for k, p in trained.named_parameters() if p.requires_grad}
    assert (
        saved["frozen_backbone"]["source"] == str(tmp_path / "dinov2.pth")
        and len(saved["frozen_backbone"]["sha256"]) == 64
    )

    fresh = instantiate(cfg)  # --eval-only / demo: the backbone file is read because the checkpoint names it
    load_weights(fresh, str(tmp_path / "run" / "model_final.pth"))
    frames = _frames(n=1)
    torch.testing.assert_close(_scores(fresh, frames), _scores(trained, frames), rtol=0, atol=0)


def test_a_different_frozen_backbone_is_refused_by_name(tmp_path):
    cfg, trained = _trained_rein(tmp_path)
    SafeCheckpointer(trained, str(tmp_path)).save("model_final")
    other = dinov2_state(trained.backbone.vit)
    other["blocks.0.attn.qkv.weight"] = other["blocks.0.attn.qkv.weight"] + 1e-3
    torch.save(other, tmp_path / "other_dinov2.pth")
    cfg.backbone.pretrained = str(tmp_path / "other_dinov2.pth")
    with pytest.raises(
        CheckpointMismatchError, match=r"trained on the frozen backbone .*dinov2\.pth.*other_dinov2\.pth"
    ):
        load_weights(instantiate(cfg), str(tmp_path / "model_final.pth"))


def test_full_finetuning_keeps_full_checkpoints_and_export_writes_one_file(tmp_path):
    cfg, trained = _trained_rein(tmp_path)
    SafeCheckpointer(trained, str(tmp_path)).save("compact")
    exported = tmp_path / "full.pth"
    result = subprocess.run(
        [
            sys.executable,
            "tools/export_full_model.py",
            "--config-file",
            "tests/configs/rein_tiny.py",
            str(tmp_path / "compact.pth"),
            str(exported),
            "model.backbone.img_size=518",
            "model.backbone.patch_size=14",
            f"model.backbone.pretrained={tmp_path / 'dinov2.pth'}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": "tests"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    cfg.backbone.pretrained = None  # the exported file needs no backbone file
    alone = instantiate(cfg)
    load_weights(alone, str(exported))
    frames = _frames(n=1)
    torch.testing.assert_close(_scores(alone, frames), _scores(trained, frames), rtol=0, atol=0)

    cfg.backbone.update(freeze=False, rein=None, pretrained=str(tmp_path / "dinov2.pth"))  # full fine-tuning
    cfg.sem_seg_head.predictor.rein_linked = False
    tuned = instantiate(cfg)
    tuned.backbone.load_pretrained()
    SafeCheckpointer(tuned, str(tmp_path)).save("full_finetune")
    saved = torch.load(tmp_path / "full_finetune.pth", weights_only=True)
    assert "frozen_backbone" not in saved and any(k.startswith("backbone.vit.") for k in saved["model"])


def test_training_reads_the_backbone_file_at_start_and_resumes_from_compact_checkpoints(synthetic_root, tmp_path):
    cfg = LazyConfig.load("configs/demo/tiny_synthetic_cpu.py")
    cfg.model.backbone.freeze = True
    donor = instantiate(cfg.model.backbone)
    torch.save(dinov2_state(donor.vit), tmp_path / "dinov2.pth")
    common = [
        f"train.output_dir={tmp_path / 'run'}",
        "model.backbone.freeze=True",
        "train.checkpointer.period=2",
        f"model.backbone.pretrained={tmp_path / 'dinov2.pth'}",
        "train.eval_period=0",
        "dataloader.test_datasets=[synthetic_source_val]",
    ] + FAST
    train_net(["train.max_iter=2"] + common, synthetic_root)
    saved = torch.load(tmp_path / "run" / "model_0000001.pth", weights_only=True)
    assert saved["frozen_backbone"]["source"] == str(tmp_path / "dinov2.pth")
    assert not any(k.startswith("backbone.vit.") for k in saved["model"])
    result = train_net(["--resume", "train.max_iter=4"] + common, synthetic_root)
    log = result.stdout + result.stderr
    assert f"into the ViT from {tmp_path / 'dinov2.pth'}" in log  # the frozen ViT came from the file
    assert (tmp_path / "run" / "model_final.pth").exists()
