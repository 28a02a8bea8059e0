"""Frozen linear weights cast once under autocast: the same numbers, recast when the weight changes."""

import copy

import torch
from torch import nn

from vltseg_d2.modeling.backbone.low_precision import CachedCastLinear, cache_low_precision_casts


def _pair():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)).requires_grad_(False)
    cached = copy.deepcopy(plain)
    assert cache_low_precision_casts(cached, "always") == 2 and isinstance(cached[0], CachedCastLinear)
    return plain, cached


def test_bf16_outputs_equal_autocasts_own_casts_and_the_copy_is_made_once():
    plain, cached = _pair()
    x = torch.randn(5, 8)
    with torch.autocast("cpu", torch.bfloat16):
        expected, got = plain(x), cached(x)
        first = cached[0]._cast[1]
        cached(x)
        assert cached[0]._cast[1] is first and first.dtype == torch.bfloat16  # reused, not cast again
    assert got.dtype == torch.bfloat16 and torch.equal(got, expected)
    assert cached[0].weight.dtype == torch.float32  # the master stays float32
    assert torch.equal(cached(x), plain(x))  # float32 runs use the master
    assert set(cached.state_dict()) == set(plain.state_dict())


def test_a_changed_weight_is_cast_again_and_a_trained_weight_never_cached():
    plain, cached = _pair()
    x = torch.randn(5, 8)
    with torch.autocast("cpu", torch.bfloat16):
        cached(x)
        with torch.no_grad():
            plain[0].weight.mul_(2)
        cached.load_state_dict(plain.state_dict())  # an in-place copy: the version counter moves
        assert torch.equal(cached(x), plain(x))
        cached[2].weight.requires_grad_(True)
        cached[2]._cast = None
        out = cached(x)
        assert cached[2]._cast is None  # trainable: autocast's own cache serves it
        out.float().sum().backward()
        assert cached[2].weight.grad is not None and cached[0].weight.grad is None


def test_in_training_mode_the_copy_is_made_only_while_autograd_records():
    plain, cached = _pair()
    cache_low_precision_casts(cached, "training")
    x = torch.randn(5, 8)
    with torch.autocast("cpu", torch.bfloat16):
        with torch.no_grad():
            assert torch.equal(cached(x), plain(x))
        assert cached[0]._cast is None  # inference: autocast's per-call casts, no resident copy
        assert torch.equal(cached(x), plain(x))
        assert cached[0]._cast is not None  # a training forward: the copy autocast would keep anyway
    assert cache_low_precision_casts(copy.deepcopy(plain), "never") == 0
