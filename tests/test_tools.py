"""tools/demo.py, tools/benchmark.py and tools/convert_pretrained.py on tiny inputs."""

import importlib.util
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog
from pretrained_files import dinov2_state

DEMO_CFG = "configs/demo/tiny_synthetic_cpu.py"


def run(args, **env):
    result = subprocess.run(
        [sys.executable] + args,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_demo_writes_overlays_that_differ_from_the_input_where_classes_are_predicted(use_synthetic, tmp_path):
    torch.manual_seed(0)
    model = instantiate(LazyConfig.load(DEMO_CFG).model)
    torch.save({"model": model.state_dict()}, tmp_path / "model.pth")
    frames = [r["file_name"] for r in DatasetCatalog.get("synthetic_night_val")[:2]]
    run(
        [
            "tools/demo.py",
            "--config-file",
            DEMO_CFG,
            "--input",
            frames[0],
            os.path.dirname(frames[1]) + "/0000[1].png",
            "--output",
            str(tmp_path / "vis"),
            "--side-by-side",
            "--opts",
            f"train.init_checkpoint={tmp_path / 'model.pth'}",
        ],
        DETECTRON2_DATASETS=str(use_synthetic),
    )
    for frame in frames:
        out = cv2.imread(str(tmp_path / "vis" / (os.path.basename(frame)[:-4] + "_seg.png")))
        src = cv2.imread(frame)
        assert out.shape == (src.shape[0], 2 * src.shape[1], 3)
        assert np.array_equal(out[:, : src.shape[1]], src)  # left: the input
        assert np.abs(out[:, src.shape[1] :].astype(int) - src).mean() > 5  # right: the coloured prediction

    run(
        [
            "tools/demo.py",
            "--config-file",
            DEMO_CFG,
            "--input",
            frames[0],
            "--output",
            str(tmp_path / "one.png"),
            "--slide",
            "--opts",
            f"train.init_checkpoint={tmp_path / 'model.pth'}",
        ]
    )
    assert cv2.imread(str(tmp_path / "one.png")).shape == cv2.imread(frames[0]).shape

    missing = subprocess.run(
        [
            sys.executable,
            "tools/demo.py",
            "--config-file",
            DEMO_CFG,
            "--input",
            "nope.png",
            "--output",
            str(tmp_path),
            "--opts",
            f"train.init_checkpoint={tmp_path / 'model.pth'}",
        ],
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0 and "nope.png does not exist" in missing.stderr


def test_benchmark_compares_variants_in_one_run_with_true_flops(tmp_path):
    result = run(
        ["tools/benchmark.py", "--config-file", DEMO_CFG, "--iters", "2", "--warmup", "1", "--train-batch", "1",
         "--variants", "fp32,bf16+ckpt,fp32+compile", "--skip-data", "--peak-tflops", "1.0",
         "--output", str(tmp_path / "bench.json"), "train.compile.backend=aot_eager",
         "dataloader.train.mapper.augmentations.crop_size=[64,64]", "model.criterion.num_points=256"]
    )  # fmt: skip
    assert "repeat 1/2: fp32: train step" in result.stdout and "repeat 2/2" in result.stdout  # progress while it runs
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert set(bench["variants"]) == {"fp32", "bf16+ckpt", "fp32+compile"}
    activations = bench["activations_saved_for_backward_gib"]
    assert set(activations) == {"fp32", "fp32+ckpt", "bf16", "bf16+ckpt"}
    assert activations["fp32+ckpt"] < activations["fp32"] and activations["bf16+ckpt"] < activations["bf16"]
    for variant in bench["variants"].values():
        assert variant["train_step_s"]["min"] <= variant["train_step_s"]["median"]
        assert variant["inference_whole_ms"]["median"] > 0 and variant["train_utilisation"] > 0
    assert bench["variants"]["fp32"]["speedup_vs_fp32"]["train step"] == 1.0
    stages = bench["forward_gflops_by_stage"]
    assert stages["rein"] == 0 and stages["backbone"] > 0 and stages["criterion"] > 0  # the demo model has no Rein
    assert sum(v for k, v in stages.items() if k != "rein") <= bench["forward_gflops_train_batch"] * 1.0001
    # every weight is trained here: backward costs about twice the forward (weights and inputs)
    assert 2.5 < bench["train_step_gflops"] / bench["forward_gflops_train_batch"] < 3.5
    assert {
        "backbone",
        "pixel decoder",
        "transformer decoder",
        "criterion",
        "backward, optimizer step and the rest",
    } <= set(bench["step_time_by_stage_s (fp32, mean)"])


def test_saved_activation_bytes_of_a_two_layer_mlp_by_hand():
    """Linear(4, 8) saves its input (3 x 4 floats), ReLU its output (3 x 8), which the second
    Linear saves again (the same storage, counted once); weights are parameters: 48 + 96 bytes."""
    spec = importlib.util.spec_from_file_location("benchmark_tool", "tools/benchmark.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    saved_activation_bytes = benchmark.saved_activation_bytes
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    x = torch.randn(3, 4)
    assert saved_activation_bytes(mlp, lambda: mlp(x)) == 3 * 4 * 4 + 3 * 8 * 4
    with torch.no_grad():
        assert saved_activation_bytes(mlp, lambda: mlp(x)) == 0


def test_compare_checkouts_alternates_the_two_checkouts(tmp_path):
    """Against itself as the baseline: two benchmark runs per round in alternation, one table."""
    result = run(
        ["tools/compare_checkouts.py", "--baseline", ".", "--rounds", "1", "--iters", "1", "--warmup", "0",
         "--config-file", DEMO_CFG, "--output", str(tmp_path / "cmp.json"), "--", "--train-batch", "1",
         "--measures", "train,whole",
         "dataloader.train.mapper.augmentations.crop_size=[64,64]", "model.criterion.num_points=256"]
    )  # fmt: skip
    rounds = [line.split(":")[1].split()[0] for line in result.stdout.splitlines() if line.startswith("round")]
    assert rounds == ["baseline", "this"]
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert set(cmp["speedup"]) == {"train step", "inference whole"}  # the measures asked for
    assert all(v > 0 for v in cmp["speedup"].values())
    bad = subprocess.run([sys.executable, "tools/compare_checkouts.py", "--baseline", str(tmp_path),
                          "--config-file", DEMO_CFG], capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "is not a vltseg_d2 checkout" in bad.stderr


def test_convert_pretrained_writes_a_detectron2_ready_backbone(tmp_path):
    cfg = LazyConfig.load(DEMO_CFG)
    reference = instantiate(cfg.model.backbone).vit
    torch.save(dinov2_state(reference), tmp_path / "dinov2.pth")
    run(
        [
            "tools/convert_pretrained.py",
            "--config-file",
            DEMO_CFG,
            str(tmp_path / "dinov2.pth"),
            str(tmp_path / "out.pth"),
        ]
    )
    state = torch.load(tmp_path / "out.pth", weights_only=True)["model"]
    model = instantiate(cfg.model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and not any(k.startswith("backbone.vit.") for k in missing)
    torch.testing.assert_close(model.backbone.vit.blocks[1].mlp.fc1.weight, reference.blocks[1].mlp.fc1.weight)


def test_main_job_runs_end_to_end(tmp_path):
    """`make demo` in miniature: generation, training (2 iterations), table, overlays, summary."""
    out = tmp_path / "demo"
    result = run(
        [
            "tools/run_demo.py",
            "--output",
            str(out),
            "--iters",
            "2",
            "--frames-per-domain",
            "1",
            "dataloader.train.mapper.augmentations.crop_size=[64,64]",
            "model.criterion.num_points=256",
            "model.sem_seg_head.predictor.num_queries=16",  # the overlay model must get it too
        ],
        DETECTRON2_DATASETS=str(tmp_path / "datasets"),
    )
    assert (tmp_path / "datasets" / "synthetic" / "manifest.json").exists()
    assert (out / "model_final.pth").exists() and (out / "eval" / "model_final" / "cross_domain.md").exists()
    assert len(list((out / "visualizations").glob("*/*_seg.png"))) == 6
    assert "mean of 5 target domains" in result.stdout and "source-domain mIoU" in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the check itself runs (make gpu-check)")
def test_gpu_check_says_in_one_line_that_it_needs_a_gpu():
    result = subprocess.run([sys.executable, "tools/gpu_check.py"], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: no CUDA GPU here (torch.cuda.is_available() is False); make gpu-check needs one"
    )


def test_side_by_side_benchmark_names_a_folder_that_is_not_the_original_checkout(tmp_path):
    (tmp_path / "Rein").mkdir()
    result = subprocess.run(
        [sys.executable, "tools/benchmark_reference.py", "--rein-src", str(tmp_path / "Rein"),
         "--mask2former-src", str(tmp_path / "M2F")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"benchmark_reference.py: error: {tmp_path / 'Rein'} is not a checkout of github.com/w1oves/Rein: "
        "rein/models/backbones/reins_dinov2.py is missing"
    )
