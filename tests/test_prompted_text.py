"""tqdm's text side: class names through CLIP's text tower (open_clip) with learned context."""

import pytest
import torch
from torch import nn

from vltseg_d2.data.datasets.classes import CLASS_NAMES
from vltseg_d2.modeling.text.prompted_text import ClassNameTooLong, PromptedTextEncoder, load_text_tower

TINY = dict(width=32, heads=4, layers=2, output_dim=16)  # vocabulary and 13 positions as the real tower


def _encoder(names=CLASS_NAMES, seed=0):
    torch.manual_seed(seed)
    return PromptedTextEncoder(names, tower=TINY).eval()


def test_learned_context_goes_after_the_start_token_and_the_end_token_is_read():
    """With the template's words as the 'learned' context, a class name gives exactly the plain
    embedding of the whole sentence: the context sits after the start token, and the output is
    read at the end token shifted by the context's length."""
    import open_clip

    enc = _encoder()
    prompt = open_clip.tokenize(["a clean origami of a"], context_length=13)[0]
    words = prompt[1 : int((prompt != 0).sum()) - 1]  # the 5 word tokens, no start / end
    padded = torch.cat([words, torch.zeros(8 - len(words), dtype=torch.long)])  # 8 context slots
    with torch.no_grad():
        enc.contexts.copy_(enc.tower.token_embedding(padded)[None])
        enc.contexts[0, len(words) :] = enc.tower.token_embedding(torch.zeros(1, dtype=torch.long))
    tokens = open_clip.tokenize(["car"], context_length=5)
    with torch.no_grad():
        prompted = enc.encode(tokens, enc.contexts)
        # the same sequence written out: start, the 5 words, the 3 pad embeddings, "car", end
        sentence = torch.cat([prompt[:1], padded, tokens[0, 1:]])[None]
        plain = enc.encode(sentence)
    torch.testing.assert_close(prompted, plain, rtol=0, atol=0)
    assert sentence.shape == (1, 13) and int(sentence.argmax()) == 1 + 8 + 1  # start, 8 context, "car", then the end


def test_the_queries_follow_the_class_names_renamed_or_reordered():
    enc = _encoder()
    with torch.no_grad():
        base = enc()
    order = list(reversed(range(len(CLASS_NAMES))))
    reordered = _encoder([CLASS_NAMES[i] for i in order])
    renamed = _encoder(["pavement" if n == "sidewalk" else n for n in CLASS_NAMES])
    with torch.no_grad():
        torch.testing.assert_close(reordered(), base[order], rtol=0, atol=0)
        moved = renamed()
    assert base.shape == (19, 16)
    changed = [k for k in range(19) if not torch.equal(moved[k], base[k])]
    assert changed == [CLASS_NAMES.index("sidewalk")]


def test_a_class_name_too_long_for_its_tokens_is_named():
    with pytest.raises(ClassNameTooLong, match="'motorcycle with sidecar extra' is 5 tokens; at most 3 fit") as info:
        _encoder(["road", "motorcycle with sidecar extra"])
    assert "model.text.name_length" in str(info.value)


def test_the_context_init_follows_tqdms_code_and_only_the_context_learns():
    enc = _encoder()
    assert enc.contexts.shape == (1, 8, 32) and enc.contexts.abs().max() <= 2.0  # trunc_normal_: std 1, cut at 2
    assert [n for n, p in enc.named_parameters() if p.requires_grad] == ["contexts"]
    enc().sum().backward()
    assert enc.contexts.grad is not None and enc.contexts.grad.abs().sum() > 0


def test_template_embeddings_are_the_plain_sentences_normalised():
    import open_clip

    enc = _encoder()
    targets = enc.template_embeddings()
    with torch.no_grad():
        road = enc.encode(open_clip.tokenize(["a clean origami of a road"], context_length=13))
    torch.testing.assert_close(targets[0], nn.functional.normalize(road[0], dim=-1))
    torch.testing.assert_close(targets.norm(dim=-1), torch.ones(19))


def test_the_text_tower_loads_from_an_eva_clip_file_with_positions_cut_to_13(tmp_path):
    source = _encoder(seed=1)
    state = {f"text.{k}": torch.randn_like(v) for k, v in source.tower.state_dict().items()}
    state["text.positional_embedding"] = torch.randn(77, 32)  # the released tower has 77 positions
    state["visual.cls_token"], state["logit_scale"] = torch.randn(1, 1, 8), torch.tensor(4.6)
    torch.save({"state_dict": state}, tmp_path / "eva_clip.pt")
    enc = _encoder()
    loaded, dropped = load_text_tower(enc, tmp_path / "eva_clip.pt")
    own = enc.tower.state_dict()
    assert len(loaded) == len(own)
    for k in own:
        expected = state[f"text.{k}"][:13] if k == "positional_embedding" else state[f"text.{k}"]
        assert torch.equal(own[k], expected), k
    assert sorted(d.split(":")[0] for d in dropped) == ["logit_scale", "visual.cls_token"]
    state["text.ln_final.weight"] = torch.randn(31)
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"ln_final.weight: .* \(31,\) float32 vs model \(32,\) float32"):
        load_text_tower(enc, tmp_path / "other.pt")


def test_template_embeddings_are_computed_once_and_again_after_the_tower_changes():
    enc = _encoder()
    first = enc.template_embeddings()
    assert enc.template_embeddings() is first  # cached: the tower is frozen
    with torch.no_grad():
        enc.tower.token_embedding.weight.mul_(2)  # a loaded file changes it in place
    again = enc.template_embeddings()
    assert again is not first and not torch.allclose(again, first)
