"""The Mask2Former head, matcher, criterion, inference modes and the sine position encoding."""

import itertools

import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from key_fixtures import read_key_shapes
from tiny_models import tiny_model, tiny_model_cfg

from vltseg_d2.data.mapper import per_class_instances
from vltseg_d2.modeling.inference import slide_inference, windows
from vltseg_d2.modeling.matcher import HungarianMatcher
from vltseg_d2.modeling.pixel_decoder.ms_deform_attn import MSDeformAttn, ms_deform_attn, softmax_last_dim
from vltseg_d2.modeling.position_encoding import PositionEmbeddingSine


def full_size_model(base):
    cfg = LazyConfig.load(f"configs/common/models/{base}.py").model
    with torch.device("meta"):
        return instantiate(cfg)


def head_shapes(model):
    return {"sem_seg_head." + k: tuple(v.shape) for k, v in model.sem_seg_head.state_dict().items()}


def test_head_has_the_official_detectron2_keys_and_shapes():
    expected = read_key_shapes("mask2former_semseg_head_keys.txt")
    assert len(expected) == 292
    assert head_shapes(full_size_model("vltseg_eva02_l")) == expected


def test_rein_linked_head_replaces_query_feat_and_embed():
    expected = read_key_shapes("mask2former_semseg_head_keys.txt")
    for k in ("sem_seg_head.predictor.query_feat.weight", "sem_seg_head.predictor.query_embed.weight"):
        del expected[k]
    expected["sem_seg_head.predictor.querys2feat.weight"] = (256, 256)
    expected["sem_seg_head.predictor.querys2feat.bias"] = (256,)
    assert head_shapes(full_size_model("rein_dinov2_l")) == expected


def test_deformable_attention_matches_a_direct_per_point_computation():
    torch.manual_seed(0)
    n, m, d, lq, p = 2, 2, 3, 5, 2
    shapes = [(4, 6), (3, 2)]
    value = torch.randn(n, sum(h * w for h, w in shapes), m, d)
    loc = torch.rand(n, lq, m, len(shapes), p, 2) * 1.2 - 0.1  # some points fall outside: zero padding
    attn = torch.rand(n, lq, m, len(shapes), p)
    out = ms_deform_attn(value, shapes, loc, attn)

    def bilinear(v, h, w, x, y):  # v: (h*w, d); x, y in [0, 1] -> pixel coords with align_corners=False
        px, py = x * w - 0.5, y * h - 0.5
        x0, y0 = int(np.floor(px)), int(np.floor(py))
        acc = torch.zeros(d)
        for xi, yi in itertools.product((x0, x0 + 1), (y0, y0 + 1)):
            if 0 <= xi < w and 0 <= yi < h:
                acc += (1 - abs(px - xi)) * (1 - abs(py - yi)) * v[yi * w + xi]
        return acc

    starts = np.cumsum([0] + [h * w for h, w in shapes])
    expected = torch.zeros(n, lq, m * d)
    for b, q, head in itertools.product(range(n), range(lq), range(m)):
        acc = torch.zeros(d)
        for lvl, (h, w) in enumerate(shapes):
            v = value[b, starts[lvl] : starts[lvl + 1], head]
            for pt in range(p):
                x, y = loc[b, q, head, lvl, pt].tolist()
                acc += attn[b, q, head, lvl, pt] * bilinear(v, h, w, x, y)
        expected[b, q, head * d : (head + 1) * d] = acc
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_deformable_attention_module_samples_at_reference_plus_offset_over_level_size():
    """Deformable DETR: location = reference + offset / (W, H) of the level, weights softmax-normalised
    over the L * P points of a head; written here with the reference's broadcasts."""
    torch.manual_seed(0)
    shapes = [(4, 6), (3, 2)]
    attn = MSDeformAttn(d_model=8, n_levels=2, n_heads=2, n_points=3)
    for param in attn.parameters():  # the init zeroes the weights: random ones exercise every term
        torch.nn.init.normal_(param, std=0.5)
    n, lq = 2, 5
    query = torch.randn(n, lq, 8, requires_grad=True)
    ref = torch.rand(n, lq, 2, 2)
    flat = torch.randn(n, sum(h * w for h, w in shapes), 8)
    out = attn(query, ref, flat, shapes)

    offsets = attn.sampling_offsets(query).view(n, lq, 2, 2, 3, 2)
    weights = attn.attention_weights(query).view(n, lq, 2, 6).softmax(-1).view(n, lq, 2, 2, 3)
    size = torch.tensor([[w, h] for h, w in shapes], dtype=torch.float32)
    loc = ref[:, :, None, :, None, :] + offsets / size[None, None, None, :, None, :]
    value = attn.value_proj(flat).view(n, flat.shape[1], 2, 4)
    expected = attn.output_proj(ms_deform_attn(value, shapes, loc, weights))
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    (grad,) = torch.autograd.grad(out.square().sum(), query)
    (expected_grad,) = torch.autograd.grad(expected.square().sum(), query)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-5)


def test_short_row_softmax_equals_softmax_with_its_gradient_and_large_logits():
    torch.manual_seed(0)
    x = (torch.randn(3, 7, 12) * 30 + 1e4).requires_grad_()  # exp(1e4) overflows without the max shift
    y = softmax_last_dim(x)
    torch.testing.assert_close(y, x.softmax(-1), rtol=1e-5, atol=1e-6)
    upstream = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, upstream)
    (expected,) = torch.autograd.grad(x.softmax(-1), x, upstream)
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)
    half = x.detach().bfloat16()  # bf16 in, bf16 out, rounded once like the native kernel
    assert softmax_last_dim(half).dtype == torch.bfloat16
    torch.testing.assert_close(softmax_last_dim(half).float(), half.softmax(-1).float(), rtol=0, atol=2**-8)


def test_sine_encoding_of_a_2x3_grid_equals_the_formula_without_offset():
    """y = i / H * 2pi, x = j / W * 2pi (1-based i, j; no -0.5), dim_t = (1, 1, 100, 100) for 4
    features per axis; channels sin, cos, sin, cos of y / dim_t, then the same for x."""
    pos = PositionEmbeddingSine(num_pos_feats=4)(torch.zeros(1, 7, 2, 3))
    assert pos.shape == (1, 8, 2, 3)
    y_rows = {
        1: [0.0, -1.0, 0.0314108, 0.9995066],  # y = pi
        2: [0.0, 1.0, 0.0627905, 0.9980267],
    }  # y = 2 pi
    x_cols = {
        1: [0.8660254, -0.5, 0.0209424, 0.9997807],  # x = 2 pi / 3
        2: [-0.8660254, -0.5, 0.0418757, 0.9991228],  # x = 4 pi / 3
        3: [0.0, 1.0, 0.0627905, 0.9980267],
    }  # x = 2 pi
    expected = torch.zeros(8, 2, 3)
    for i in (1, 2):
        for j in (1, 2, 3):
            expected[:4, i - 1, j - 1] = torch.tensor(y_rows[i])
            expected[4:, i - 1, j - 1] = torch.tensor(x_cols[j])
    torch.testing.assert_close(pos[0], expected, rtol=0, atol=1e-5)  # the 1e-6 of the normaliser: ~3e-6


def test_window_placement_follows_the_reference_rule():
    boxes = windows(512, 1024, (512, 512), (341, 341))  # Rein protocol: 1024x512 -> 3 windows
    assert boxes == [(0, 0, 512, 512), (0, 341, 512, 853), (0, 512, 512, 1024)]
    assert len(windows(1080, 1920, (1024, 1024), (683, 683))) == 2 * 3
    assert windows(300, 400, (512, 512), (341, 341)) == [(0, 0, 300, 400)]


def test_sliding_window_averages_by_overlap_count():
    image = torch.zeros(3, 4, 10)
    calls = []

    def predict(batch):  # score = 1 + index of the window in call order
        calls.append(batch.shape)
        start = sum(c[0] for c in calls[:-1])
        return torch.stack([torch.full((2, *batch.shape[-2:]), 1.0 + start + i) for i in range(batch.shape[0])])

    out = slide_inference(image, predict, crop=(4, 4), stride=(4, 3), batch_size=2)
    # windows [0, 4), [3, 7), [6, 10): columns 3 and 6 are covered twice
    expected = torch.tensor([1, 1, 1, 1.5, 2, 2, 2.5, 3, 3, 3])
    torch.testing.assert_close(out[0, 0], expected)
    assert [c[0] for c in calls] == [2, 1]  # windows batched


def _frames(n=2, h=64, w=64, seed=0):
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        label = np.zeros((h, w), np.int64)
        label[h // 2 :] = 0
        label[: h // 2] = 10
        label[h // 2 :, rng.integers(5, 30) : rng.integers(35, 60)] = 13
        image = np.where(
            label[..., None] == 10, [70, 130, 180], np.where(label[..., None] == 13, [0, 0, 142], [128, 64, 128])
        )
        image = (image + rng.normal(0, 10, image.shape)).clip(0, 255).astype(np.uint8)
        sem = torch.as_tensor(label)
        records.append(
            {
                "image": torch.as_tensor(image.transpose(2, 0, 1).copy()),
                "sem_seg": sem,
                "instances": per_class_instances(sem),
                "height": h,
                "width": w,
            }
        )
    return records


def test_training_step_loss_keys_and_gradients():
    torch.manual_seed(0)
    model = tiny_model().train()
    losses = model(_frames())
    assert len(losses) == 3 * (3 + 1)  # ce/mask/dice for the final and 3 auxiliary predictions
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        if name.startswith("backbone.vit."):
            assert p.grad is None, name
        elif name not in ("backbone.rein.scale",):
            assert p.grad is not None, name


def test_loss_decreases_when_overfitting_two_frames():
    torch.manual_seed(0)
    model = tiny_model().train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    frames = _frames()
    history = []
    for _ in range(60):
        loss = sum(model(frames).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert np.mean(history[-5:]) < 0.4 * np.mean(history[:5]), history
    model.eval()
    pred = model([dict(f) for f in frames])[0]["sem_seg"].argmax(0)
    assert (pred == frames[0]["sem_seg"]).float().mean() > 0.9


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_inference_returns_scores_at_the_requested_size(mode):
    cfg = tiny_model_cfg(base="vltseg_eva02_l")
    cfg.test_mode = mode
    model = instantiate(cfg).eval()
    frames = _frames(h=72, w=150)
    for f in frames:
        f.update(height=144, width=300)
    out = model(frames)
    assert [o["sem_seg"].shape for o in out] == [(19, 144, 300)] * 2
    assert torch.all(out[0]["sem_seg"] >= 0)


def test_matcher_pairs_each_target_with_its_own_prediction():
    masks = torch.zeros(3, 16, 16)
    masks[0, :8], masks[1, 8:, :8], masks[2, 8:, 8:] = 1, 1, 1
    logits = torch.full((1, 5, 20), -5.0)
    pred_masks = torch.full((1, 5, 16, 16), -10.0)
    for q, (t, cls) in zip([4, 0, 2], enumerate([3, 7, 11])):
        logits[0, q, cls] = 5.0
        pred_masks[0, q] = masks[t] * 20 - 10
    rows, cols = HungarianMatcher(num_points=200)(
        {"pred_logits": logits, "pred_masks": pred_masks}, [{"labels": torch.tensor([3, 7, 11]), "masks": masks}]
    )[0]
    assert dict(zip(cols.tolist(), rows.tolist())) == {0: 4, 1: 0, 2: 2}


def test_simple_feature_pyramid_neck_is_a_config_choice():
    cfg = LazyConfig.load("configs/common/models/vltseg_eva02_l_sfp.py").model
    vit = cfg.backbone.net
    vit.update(model_kwargs=dict(embed_dim=64, depth=4, num_heads=4), out_indices=(3,), img_size=64)
    cfg.backbone.out_channels = 64
    cfg.sem_seg_head.pixel_decoder.update(
        conv_dim=64, mask_dim=64, transformer_enc_layers=1, transformer_dim_feedforward=64
    )
    cfg.sem_seg_head.predictor.update(num_queries=10, nheads=4, dim_feedforward=64, dec_layers=2)
    cfg.criterion.num_points = 128
    model = instantiate(cfg)
    shapes = model.backbone.output_shape()
    assert {k: v.stride for k, v in shapes.items()} == {"p2": 4, "p3": 8, "p4": 16, "p5": 32}
    assert sum(model(_frames(n=1, h=64, w=96)).values()).isfinite()
    model.eval()
    assert model(_frames(n=1, h=64, w=96))[0]["sem_seg"].shape == (19, 64, 96)


def reference_costs(logits, pred_masks, labels, masks, coords, matcher):
    """One image's cost matrix written out pair by pair (Mask2Former's formula): coords (P, 2)."""
    grid = (2 * coords - 1)[None, None]
    pred = torch.nn.functional.grid_sample(
        pred_masks[:, None], grid.expand(len(pred_masks), -1, -1, -1), align_corners=False
    )
    tgt = torch.nn.functional.grid_sample(masks[:, None], grid.expand(len(masks), -1, -1, -1), align_corners=False)
    pred, tgt = pred[:, 0, 0][:, None], tgt[:, 0, 0][None]  # (Q, 1, P), (1, M, P)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        pred.expand(-1, tgt.shape[1], -1), tgt.expand(pred.shape[0], -1, -1), reduction="none"
    ).mean(-1)
    prob = pred.sigmoid()
    dice = 1 - (2 * (prob * tgt).sum(-1) + 1) / (prob.sum(-1) + tgt.sum(-1) + 1)
    cls = -logits.softmax(-1)[:, labels]
    return matcher.cost_mask * bce + matcher.cost_class * cls + matcher.cost_dice * dice


def test_batched_matching_of_all_layers_equals_per_image_costs():
    """All layers and images costed at once (images with 3, 0 and 5 targets) equal the pairwise
    formula per image and layer, and the assignment is the optimum of each of those matrices."""
    from scipy.optimize import linear_sum_assignment

    torch.manual_seed(0)
    matcher = HungarianMatcher(num_points=64)
    counts, q, size = [3, 0, 5], 6, (12, 10)
    targets = [{"labels": torch.randint(0, 19, (m,)), "masks": (torch.rand(m, *size) > 0.5).float()} for m in counts]
    layers = [
        {"pred_logits": torch.randn(len(counts), q, 20), "pred_masks": torch.randn(len(counts), q, *size) * 3}
        for _ in range(2)
    ]
    coords = torch.rand(len(layers), len(counts), matcher.num_points, 2)
    costs = matcher.costs(layers, targets, coords)
    assert costs.shape == (2, 3, q, 5)
    torch.manual_seed(1)
    matched = matcher.match_layers(layers, targets)
    torch.manual_seed(1)
    drawn = torch.rand(len(layers), len(counts), matcher.num_points, 2)  # the points match_layers draws
    for li, layer in enumerate(layers):
        for b, (t, m) in enumerate(zip(targets, counts)):
            expected = reference_costs(layer["pred_logits"][b], layer["pred_masks"][b], t["labels"], t["masks"],
                                       coords[li, b], matcher)  # fmt: skip
            torch.testing.assert_close(costs[li, b, :, :m], expected, rtol=1e-5, atol=1e-5)
            drawn_cost = reference_costs(layer["pred_logits"][b], layer["pred_masks"][b], t["labels"], t["masks"],
                                         drawn[li, b], matcher)  # fmt: skip
            rows, cols = linear_sum_assignment(drawn_cost.numpy())
            assert matched[li][b][0].tolist() == rows.tolist() and matched[li][b][1].tolist() == cols.tolist()


def test_matcher_refuses_non_finite_predictions():
    targets = [{"labels": torch.tensor([1]), "masks": torch.ones(1, 8, 8)}]
    layer = {"pred_logits": torch.randn(1, 3, 20), "pred_masks": torch.full((1, 3, 8, 8), float("nan"))}
    with pytest.raises(FloatingPointError, match="not finite"):
        HungarianMatcher(num_points=16).match_layers([layer], targets)


def test_matched_targets_are_sampled_bit_for_bit_like_gathered_masks():
    from detectron2.projects.point_rend.point_features import point_sample

    from vltseg_d2.modeling.criterion import sample_matched_targets

    torch.manual_seed(0)
    masks = (torch.rand(6, 1, 20, 24) > 0.5).float()
    matched = torch.tensor([4, 0, 5, 2])  # one-to-one; targets 1 and 3 unmatched
    coords = torch.rand(4, 50, 2)
    expected = point_sample(masks[matched], coords, align_corners=False).squeeze(1)
    assert torch.equal(sample_matched_targets(masks, matched, coords), expected)


def test_uncertain_points_are_detectron2s_points_as_a_set_with_the_same_random_tail():
    from detectron2.projects.point_rend.point_features import get_uncertain_point_coords_with_randomness

    from vltseg_d2.modeling.criterion import uncertain_point_coords

    logits = torch.randn(5, 1, 12, 16) * 3
    torch.manual_seed(1)
    expected = get_uncertain_point_coords_with_randomness(logits, lambda x: -x.abs(), 40, 3.0, 0.75)
    torch.manual_seed(1)
    coords = uncertain_point_coords(logits, 40, 3.0, 0.75)
    assert coords.shape == expected.shape == (5, 40, 2)
    assert torch.equal(coords[:, 30:], expected[:, 30:])  # the uniform tail: the same draws
    for mask in range(5):  # the 30 most uncertain of 120 points: the same set, maybe in another order
        ours, theirs = (sorted(map(tuple, c[mask, :30].tolist())) for c in (coords, expected))
        assert ours == theirs


def test_class_map_is_argmax_with_the_first_class_on_ties():
    from vltseg_d2.modeling.inference import class_map

    scores = torch.tensor([[[0.1, 0.5], [0.7, 0.2]], [[0.3, 0.5], [0.7, 0.1]], [[0.2, 0.4], [0.1, 0.2]]])
    assert class_map(scores).tolist() == [[1, 0], [0, 0]]  # ties 0.5/0.5, 0.7/0.7, 0.2/0.2 -> first
    ties = torch.randint(0, 3, (19, 32, 48)).float()
    assert torch.equal(class_map(ties), ties.argmax(0))
