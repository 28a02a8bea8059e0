"""tqdm's context decoder and regularisers against hand computations and the original's formulas."""

import math

import torch
import torch.nn.functional as F

from vltseg_d2.modeling.text.context_decoder import ContextDecoder, context_gamma
from vltseg_d2.modeling.text.regularisers import language_loss, vision_language_loss, vision_loss


def _original_attention(attn, q, kv):
    """tqdm's Attention.forward written out: per-head einsum, softmax, einsum, projection."""
    b, n, c = q.shape
    m, h = kv.shape[1], attn.heads
    qh = attn.q_proj(q).reshape(b, n, h, c // h)
    kh = attn.k_proj(kv).reshape(b, m, h, c // h)
    vh = attn.v_proj(kv).reshape(b, m, h, c // h)
    weights = (torch.einsum("bnkc,bmkc->bknm", qh, kh) * (c // h) ** -0.5).softmax(dim=-1)
    return attn.proj(torch.einsum("bknm,bmkc->bnkc", weights, vh).reshape(b, n, c))


def test_context_decoder_equals_the_original_layer_formula():
    torch.manual_seed(0)
    dec = ContextDecoder(transformer_width=32, transformer_heads=4, transformer_layers=2, visual_dim=24).eval()
    text, visual = torch.randn(2, 19, 24), torch.randn(2, 1 + 36, 24)
    memory, x = dec.memory_proj(visual), dec.text_proj(text)
    for layer in dec.decoder:
        q = layer.norm1(x)
        x = x + _original_attention(layer.self_attn, q, q)
        x = x + _original_attention(layer.cross_attn, layer.norm2(x), memory)
        x = x + layer.mlp(layer.norm3(x))
    torch.testing.assert_close(dec(text, visual), dec.out_proj(x), rtol=1e-5, atol=1e-6)
    names = {k.split(".weight")[0] for k in dec.state_dict()}
    assert {"decoder.0.self_attn.q_proj", "decoder.1.cross_attn.proj", "decoder.0.mlp.3", "memory_proj.2"} <= names
    assert "decoder.0.self_attn.q_proj.bias" not in dec.state_dict()  # q/k/v without bias, as there


def test_gamma_follows_the_code_re_initialisation():
    torch.manual_seed(0)
    gamma = context_gamma(768)
    assert gamma.abs().max() <= 2.0 and 0.8 < gamma.std() < 1.1  # trunc_normal_(std 1), not 1e-4


def test_language_loss_by_hand():
    # two classes whose embeddings are their templates: cosine 1 with the own template, 0 with the other
    loss = language_loss(torch.tensor([[[3.0, 0.0], [0.0, 2.0]]]), torch.eye(2))
    assert math.isclose(loss.item(), math.log(1 + math.exp(-1)), rel_tol=1e-6)  # 0.3132617
    # swapped: each class is closest to the other's template
    swapped = language_loss(torch.tensor([[[0.0, 1.0], [1.0, 0.0]]]), torch.eye(2))
    assert math.isclose(swapped.item(), math.log(1 + math.e), rel_tol=1e-6)  # 1.3132617


def test_vision_loss_by_hand():
    assert vision_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])).item() == 2.5


def test_vision_language_loss_by_hand_ignored_pixels_count_in_the_mean():
    score = torch.tensor([0.07, 0.0]).view(1, 2, 1, 1)  # logits 1 and 0 after / 0.07, on every pixel
    labels = torch.tensor([[[0, 1], [255, 0]]])
    expected = (2 * math.log(1 + math.exp(-1)) + math.log(1 + math.e)) / 4  # 0.4849452: 4 pixels, one ignored
    assert math.isclose(vision_language_loss(score, labels).item(), expected, rel_tol=1e-6)
    assert math.isclose(
        vision_language_loss(score, labels).item(),
        F.cross_entropy(torch.tensor([[1.0, 0.0]] * 3), torch.tensor([0, 1, 0])).item() * 3 / 4,
        rel_tol=1e-6,
    )


def test_fixed_matching_gives_query_k_the_target_of_class_k():
    from vltseg_d2.modeling.matcher import FixedMatcher

    targets = [{"labels": torch.tensor([3, 0, 7])}, {"labels": torch.tensor([], dtype=torch.int64)}]
    layer = {"pred_logits": torch.zeros(2, 19, 20)}
    (rows, cols), (empty_rows, empty_cols) = FixedMatcher(19)(layer, targets)
    assert rows.tolist() == [3, 0, 7] and cols.tolist() == [0, 1, 2]
    assert empty_rows.tolist() == [] and empty_cols.tolist() == []
    doubled = FixedMatcher(19)({"pred_logits": torch.zeros(1, 38, 20)}, targets[:1])[0]
    assert doubled[0].tolist() == [3, 0, 7, 22, 19, 26] and doubled[1].tolist() == [0, 1, 2, 0, 1, 2]


def test_with_fixed_matching_the_class_loss_targets_query_k_with_class_k():
    from vltseg_d2.modeling.criterion import SetCriterion
    from vltseg_d2.modeling.matcher import FixedMatcher

    torch.manual_seed(0)
    criterion = SetCriterion(4, FixedMatcher(4), num_points=16)
    logits, masks = torch.randn(1, 4, 5), torch.randn(1, 4, 8, 8)
    target = {"labels": torch.tensor([2, 0]), "masks": (torch.rand(2, 8, 8) > 0.5).float()}
    loss = criterion({"pred_logits": logits, "pred_masks": masks}, [target])["loss_ce"]
    expected_classes = torch.tensor([[0, 4, 2, 4]])  # queries 0 and 2 have their classes; 1 and 3: no object
    weight = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.1])
    expected = 2.0 * F.cross_entropy(logits.transpose(1, 2), expected_classes, weight)
    torch.testing.assert_close(loss, expected)
