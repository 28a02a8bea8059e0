"""tqdm's context decoder and regularisers against hand computations and the original's formulas."""

import math

import pytest
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


def _pixel_decoder(text_dim=None, seed=0):
    from vltseg_d2.modeling.pixel_decoder.msdeformattn import MSDeformAttnPixelDecoder

    torch.manual_seed(seed)
    return MSDeformAttnPixelDecoder(in_channels=32, conv_dim=32, mask_dim=32, transformer_enc_layers=2,
                                    transformer_nheads=4, transformer_dim_feedforward=64, text_dim=text_dim,
                                    num_texts=5).eval()  # fmt: skip


def _features(seed=1):
    g = torch.Generator().manual_seed(seed)
    return {f"res{k}": torch.randn(2, 32, 64 // 2**k, 64 // 2**k, generator=g) for k in (2, 3, 4, 5)}


def test_text_to_pixel_attention_layer_equals_its_written_out_order():
    """deformable self-attention, norm, cross-attention to the texts (pixel + position as queries,
    text + learned text position as keys, text as values), norm, FFN, norm."""
    dec = _pixel_decoder(text_dim=12)
    layer = dec.transformer.encoder.layers[0]
    g = torch.Generator().manual_seed(2)
    src, pos = torch.randn(2, 21, 32, generator=g), torch.randn(2, 21, 32, generator=g)
    text, text_pos = torch.randn(2, 5, 32, generator=g), torch.randn(2, 5, 32, generator=g)
    shapes = [(1, 1), (2, 2), (4, 4)]
    ref = dec.transformer.encoder.reference_points(shapes, src.device)
    x = layer.norm1(src + layer.self_attn(src + pos, ref, src, shapes))
    attn = layer.text_attn
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    b_q, b_k, b_v = attn.in_proj_bias.chunk(3)
    split = lambda t: t.reshape(2, t.shape[1], 4, 8).transpose(1, 2)  # noqa: E731
    q, k = split((x + pos) @ w_q.T + b_q), split((text + text_pos) @ w_k.T + b_k)
    v = split(text @ w_v.T + b_v)
    heads = ((q @ k.transpose(-1, -2)) / 8**0.5).softmax(-1) @ v
    x = layer.norm_text(x + attn.out_proj(heads.transpose(1, 2).reshape(2, 21, 32)))
    expected = layer.norm2(x + layer.linear2(F.relu(layer.linear1(x))))
    torch.testing.assert_close(layer(src, pos, ref, shapes, text, text_pos), expected, rtol=1e-5, atol=1e-5)


def test_with_silent_text_attention_the_pixel_decoder_is_mask2formers():
    plain, texted = _pixel_decoder(), _pixel_decoder(text_dim=12)
    missing = texted.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted({k.split(".")[0] for k in missing}) == ["text_pos_embed", "text_proj", "transformer"]
    for layer in texted.transformer.encoder.layers:  # the attention adds nothing; its norm is the identity here
        torch.nn.init.zeros_(layer.text_attn.out_proj.weight)
        torch.nn.init.zeros_(layer.text_attn.out_proj.bias)
    feats, texts = _features(), torch.randn(2, 5, 12)
    with torch.no_grad():
        a_mask, a_levels = plain(feats)
        # norm_text(x) != x in general: compare after replacing it by the identity
        for layer in texted.transformer.encoder.layers:
            layer.norm_text = torch.nn.Identity()
        texted.transformer.encoder.post_norm = torch.nn.Identity()  # tqdm's final norm, below
        b_mask, b_levels = texted(feats, texts)
    torch.testing.assert_close(b_mask, a_mask, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="attends to class texts"):
        texted(feats)


def test_the_text_attending_encoder_ends_with_a_layer_norm():
    """mmcv's DetrTransformerDecoder (tqdm's pixel encoder) returns post_norm(last layer): every
    token's channels have mean = bias and standard deviation = weight after it."""
    texted, plain = _pixel_decoder(text_dim=12).transformer, _pixel_decoder().transformer
    assert plain.encoder.post_norm is None
    torch.nn.init.constant_(texted.encoder.post_norm.weight, 2.0)
    torch.nn.init.constant_(texted.encoder.post_norm.bias, 1.0)
    g = torch.Generator().manual_seed(4)
    srcs = [torch.randn(2, 32, s, s, generator=g) for s in (1, 2, 4)]
    with torch.no_grad():
        out, _ = texted(srcs, [torch.zeros_like(x) for x in srcs], torch.randn(2, 5, 32), torch.zeros(2, 5, 32))
    torch.testing.assert_close(out.mean(-1), torch.ones(2, 21), rtol=0, atol=1e-5)
    torch.testing.assert_close(out.var(-1, unbiased=False).sqrt(), torch.full((2, 21), 2.0), rtol=0, atol=1e-3)


def test_text_queries_are_each_images_projected_class_texts():
    from vltseg_d2.modeling.transformer_decoder.mask2former_decoder import MultiScaleMaskedTransformerDecoder

    torch.manual_seed(0)
    kw = dict(in_channels=32, num_classes=5, hidden_dim=32, num_queries=5, nheads=4, dim_feedforward=64,
              dec_layers=2, mask_dim=32)  # fmt: skip
    texted = MultiScaleMaskedTransformerDecoder(text_dim=12, **kw).eval()
    plain = MultiScaleMaskedTransformerDecoder(**kw).eval()
    plain.load_state_dict(texted.state_dict(), strict=False)
    g = torch.Generator().manual_seed(3)
    levels = [torch.randn(2, 32, s, s, generator=g) for s in (2, 4, 8)]
    mask_features, texts = torch.randn(2, 32, 16, 16, generator=g), torch.randn(2, 5, 12, generator=g)
    with torch.no_grad():
        first, second = texted.text_proj[0], texted.text_proj[2]  # tqdm_head.py: Linear, ReLU, Linear
        by_hand = torch.relu(texts @ first.weight.T + first.bias) @ second.weight.T + second.bias
        torch.testing.assert_close(texted.text_proj(texts), by_hand)
        out = texted(levels, mask_features, texts)
        for b in range(2):  # image b: a plain decoder whose learned query features are image b's texts
            plain.query_feat.weight.copy_(texted.text_proj(texts[b]))
            one = plain([lvl[b : b + 1] for lvl in levels], mask_features[b : b + 1])
            torch.testing.assert_close(out["pred_logits"][b : b + 1], one["pred_logits"], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(out["pred_masks"][b : b + 1], one["pred_masks"], rtol=1e-5, atol=1e-5)
