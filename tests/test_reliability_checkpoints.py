"""Checkpoints: never run pickled code, one-line errors, strict loading, rotation, interrupted saves."""

import errno
import os
import pickle
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from planted import RunsCode
from pretrained_files import dinov2_state
from tiny_models import tiny_model, tiny_model_cfg

from vltseg_d2.checkpoint import CheckpointMismatchError, CheckpointReadError, SafeCheckpointer, load_weights
from vltseg_d2.checkpoint.io import save_atomic
from vltseg_d2.engine import eval_output_dir
from vltseg_d2.engine.preemption import RotatingCheckpointer

DEMO_CFG = "configs/demo/tiny_synthetic_cpu.py"


def plant(tmp_path, suffix):
    """A checkpoint that creates ``marker`` if anything unpickles it without restrictions."""
    marker = tmp_path / f"ran{suffix}"
    path = tmp_path / f"evil{suffix}"
    if suffix == ".pkl":  # detectron2 model-zoo layout: numpy arrays
        with open(path, "wb") as f:
            pickle.dump({"model": {"w": np.zeros(2, np.float32)}, "__author__": "x", "hook": RunsCode(marker)}, f)
    else:
        torch.save({"model": {"w": torch.zeros(2)}, "hook": RunsCode(marker)}, path)
    return path, marker


@pytest.mark.parametrize("suffix", [".pkl", ".pth"])
def test_init_resume_and_predictor_loading_refuse_code_by_name(tmp_path, suffix):
    path, marker = plant(tmp_path, suffix)
    model = tiny_model()
    with pytest.raises(CheckpointReadError, match=r"evil\S* refused: it pickles posix\.system, not only"):
        SafeCheckpointer(model).resume_or_load(str(path), resume=False)  # train.init_checkpoint
    with pytest.raises(CheckpointReadError, match="refused"):
        load_weights(model, str(path))  # --eval-only, demo, predictor
    assert not marker.exists()


def test_train_net_eval_only_and_demo_refuse_a_planted_pickle(tmp_path, use_synthetic):
    path, marker = plant(tmp_path, ".pkl")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for cmd in (
        [
            "tools/train_net.py",
            "--config-file",
            DEMO_CFG,
            "--eval-only",
            f"train.init_checkpoint={path}",
            f"train.output_dir={tmp_path / 'out'}",
            "dataloader.test_datasets=[synthetic_fog_val]",
        ],
        [
            "tools/demo.py",
            "--config-file",
            DEMO_CFG,
            "--input",
            str(tmp_path),
            "--output",
            str(tmp_path / "vis"),
            "--opts",
            f"train.init_checkpoint={path}",
        ],
    ):
        result = subprocess.run([sys.executable] + cmd, capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode != 0 and "evil.pkl refused" in result.stderr, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
    assert not marker.exists() and not list((tmp_path / "out").rglob("cross_domain.json"))


def test_convert_pretrained_refuses_a_planted_pickle(tmp_path):
    path, marker = plant(tmp_path, ".pth")
    result = subprocess.run(
        [
            sys.executable,
            "tools/convert_pretrained.py",
            "--config-file",
            DEMO_CFG,
            str(path),
            str(tmp_path / "out.pth"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0 and "evil.pth" in result.stderr and not marker.exists()


def test_broken_files_are_one_line_naming_the_file(tmp_path):
    model = tiny_model()
    torch.save({"model": model.state_dict()}, tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 3])
    (tmp_path / "notes.pth").write_text("this is not a checkpoint")
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    for name, expected in (
        ("truncated.pth", "is not a readable PyTorch checkpoint"),
        ("notes.pth", "is not a readable PyTorch checkpoint"),
        ("tensor.pth", "holds a single tensor"),
    ):
        with pytest.raises(CheckpointReadError) as info:
            load_weights(model, str(tmp_path / name))
        message = str(info.value)
        assert name in message and expected in message and "\n" not in message and "weights_only" not in message
    with pytest.raises(FileNotFoundError, match="missing.pth does not exist"):
        load_weights(model, str(tmp_path / "missing.pth"))


def test_a_checkpoint_of_another_config_is_an_error_unless_opted_out(tmp_path):
    torch.save({"model": tiny_model(hidden=32).state_dict()}, tmp_path / "other.pth")
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(model, str(tmp_path / "other.pth"))
    message = str(info.value)
    assert "other.pth" in message and "of another shape" in message and "(32" in message
    assert "train.strict_load=False" in message
    load_weights(model, str(tmp_path / "other.pth"), strict=False)  # fine-tuning: loads what fits
    after = model.state_dict()
    assert not torch.equal(after["backbone.vit.cls_token"], before["backbone.vit.cls_token"])
    assert torch.equal(
        after["sem_seg_head.predictor.class_embed.weight"], before["sem_seg_head.predictor.class_embed.weight"]
    )


def test_a_checkpoint_without_vit_weights_needs_a_backbone_source(tmp_path):
    """A converted Rein file (no ViT weights, no recorded source) loads strictly once
    model.backbone.pretrained names the backbone file; without it the error says what to set."""
    cfg = tiny_model_cfg(img_size=518)
    cfg.backbone.patch_size = 14
    trained = instantiate(cfg)
    torch.save(dinov2_state(trained.backbone.vit), tmp_path / "dinov2.pth")
    torch.save(
        {"model": {k: v for k, v in trained.state_dict().items() if not k.startswith("backbone.vit.")}},
        tmp_path / "rein_head.pth",
    )
    with pytest.raises(CheckpointMismatchError, match="set model.backbone.pretrained"):
        load_weights(instantiate(cfg), str(tmp_path / "rein_head.pth"))
    cfg.backbone.pretrained = str(tmp_path / "dinov2.pth")
    model = instantiate(cfg)
    load_weights(model, str(tmp_path / "rein_head.pth"))
    assert model.backbone.loaded_from == str(tmp_path / "dinov2.pth")
    torch.testing.assert_close(model.backbone.vit.cls_token, trained.backbone.vit.cls_token)


def test_eval_folders_never_replace_another_checkpoints_table(tmp_path):
    cfg = LazyConfig.load(DEMO_CFG)
    cfg.train.output_dir = str(tmp_path / "out")
    first = eval_output_dir(cfg, str(tmp_path / "run1" / "model_final.pth"))
    os.makedirs(first)
    with open(os.path.join(first, "cross_domain.json"), "w") as f:
        f.write('{"checkpoint": "%s"}' % (tmp_path / "run1" / "model_final.pth"))
    assert first == str(tmp_path / "out" / "eval" / "model_final")
    assert eval_output_dir(cfg, str(tmp_path / "run1" / "model_final.pth")) == first  # same weights: same folder
    assert eval_output_dir(cfg, str(tmp_path / "run2" / "model_final.pth")) == first + "_2"


def test_rotation_holds_across_resumes_and_stale_temporaries_are_removed(tmp_path):
    model = torch.nn.Linear(2, 2)
    for it in (2, 5):
        torch.save({"model": model.state_dict()}, tmp_path / f"model_{it:07d}.pth")
    (tmp_path / ".model_0000008.4242.tmp.pth").write_bytes(b"half a checkpoint")
    checkpointer = SafeCheckpointer(model, str(tmp_path))
    assert not list(tmp_path.glob(".*.tmp*"))  # removed when the (resumed) run starts
    hook = RotatingCheckpointer(checkpointer, period=3, max_to_keep=2)
    hook.trainer = SimpleNamespace(max_iter=20)
    hook.before_train()
    hook.save_now(8)
    assert sorted(p.name for p in tmp_path.glob("model_*.pth")) == ["model_0000005.pth", "model_0000008.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000008.pth"


def test_a_full_disk_leaves_no_partial_file_and_names_the_path(tmp_path, monkeypatch):
    def disk_full(obj, f, *args, **kwargs):
        with open(f, "wb") as out:
            out.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match=r"could not write .*model_0000003\.pth: No space left on device"):
        save_atomic({"model": {}}, tmp_path / "model_0000003.pth")
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_with_a_vit_of_another_depth_names_the_real_mismatch(tmp_path):
    torch.save({"model": tiny_model(depth=4).state_dict()}, tmp_path / "shallower.pth")
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(tiny_model(depth=6), str(tmp_path / "shallower.pth"))
    message = str(info.value)
    assert "holds no ViT weights" not in message  # what it said: the file has ViT weights, of another model
    assert "missing (backbone.vit.blocks.4." in message and "train.strict_load=False" in message
