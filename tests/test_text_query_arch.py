"""tqdm's whole model at the demo size: its losses, what learns, and training + evaluation through
train_net (no file read: tiny random towers)."""

import json
import sys

import torch
from detectron2.config import LazyConfig, instantiate
from test_train_net import FAST, train_net

sys.path.insert(0, "tools")
from benchmark import random_batch  # noqa: E402

TQDM_DEMO = "configs/demo/tqdm_tiny_synthetic_cpu.py"


def _model():
    torch.manual_seed(0)
    cfg = LazyConfig.load(TQDM_DEMO)
    cfg.model.criterion.num_points = 256
    return instantiate(cfg.model)


def test_training_adds_the_three_regularisers_and_only_the_right_parts_learn():
    model = _model().train()
    losses = model(random_batch(2, 128, 128))
    main = {"loss_ce", "loss_mask", "loss_dice"}
    assert main | {"loss_reg_language", "loss_reg_vision", "loss_score_map"} <= set(losses)
    assert losses["loss_reg_vision"].item() == 0.0  # the tower still equals its initial copy
    assert losses["loss_reg_language"].item() > 0 and losses["loss_score_map"].item() > 0
    sum(losses.values()).backward()
    grads = {n: p.grad is not None and p.grad.abs().sum().item() > 0 for n, p in model.named_parameters()}
    assert grads["text_encoder.contexts"] and grads["gamma"] and grads["backbone.fpn2.0.weight"]
    assert any(v for n, v in grads.items() if n.startswith("context_decoder."))
    assert any(v for n, v in grads.items() if n.startswith("backbone.vit.blocks."))
    frozen = [n for n, p in model.named_parameters() if n.startswith(("text_encoder.tower.", "backbone.initial."))]
    assert frozen and not any(dict(model.named_parameters())[n].requires_grad for n in frozen)


def test_the_queries_are_the_class_texts_in_train_id_order():
    model = _model().eval()
    image = torch.randint(0, 255, (3, 128, 128), dtype=torch.uint8)
    with torch.no_grad():
        feats, text, score_map = model._text_and_features(model._normalize(image)[None])
    assert text.shape == (1, 19, 64) and score_map.shape == (1, 19, 9, 9)  # 128 // 14 patches a side
    with torch.no_grad():
        model.gamma.zero_()  # without the visual update the queries are the text tower's embeddings
        _, plain, _ = model._text_and_features(model._normalize(image)[None])
        torch.testing.assert_close(plain[0], model.text_encoder())


def test_tqdm_trains_and_evaluates_through_train_net(synthetic_root, tmp_path):
    out = tmp_path / "run"
    train_net(["--config-file", TQDM_DEMO, f"train.output_dir={out}", "train.max_iter=3", "train.eval_period=0",
               "dataloader.test_datasets=[synthetic_source_val]"] + FAST, synthetic_root)  # fmt: skip
    logged = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert any("loss_reg_language" in row and "loss_score_map" in row for row in logged)
    table = json.loads(next(out.glob("eval/*/cross_domain.json")).read_text())
    assert table["rows"][0]["dataset"] == "synthetic_source_val"
    again = train_net(["--config-file", TQDM_DEMO, "--eval-only", f"train.init_checkpoint={out / 'model_final.pth'}",
                       f"train.output_dir={tmp_path / 'eval'}", "dataloader.test_datasets=[synthetic_source_val]"]
                      + FAST, synthetic_root)  # fmt: skip
    assert "synthetic_source_val" in again.stdout + again.stderr


def test_class_scores_are_made_at_the_mask_resolution_then_upsampled():
    """tqdm's head combines softmax(class) and sigmoid(mask) at 1/4 and its segmentor resizes the
    scores (encode_decode); upsampling the mask logits first, as Mask2Former does, differs."""
    import torch.nn.functional as F

    from vltseg_d2.modeling.inference import semantic_scores

    model = _model().eval()
    images = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model._head_outputs(images)
        low = semantic_scores(out["pred_logits"], out["pred_masks"])
        by_hand = F.interpolate(low, size=(64, 96), mode="bilinear", align_corners=False)
        mask_first = semantic_scores(
            out["pred_logits"], F.interpolate(out["pred_masks"], size=(64, 96), mode="bilinear", align_corners=False)
        )
        got = model.predict_scores(images)
    assert out["pred_masks"].shape[-2:] == (16, 24)
    torch.testing.assert_close(got, by_hand)
    assert (got - mask_first).abs().max() > 1e-4
