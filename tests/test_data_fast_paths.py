"""The data pipeline's faster paths give exactly what the reference code gives."""

import numpy as np
import pytest
import torch
from PIL import Image

from vltseg_d2.data.decoded_cache import DecodedCache
from vltseg_d2.data.mapper import SemSegDatasetMapper, train_augmentations
from vltseg_d2.utils.seeding import seed_torch


def test_seed_torch_gives_torch_manual_seeds_cpu_draws():
    torch.manual_seed(7)
    expected = torch.rand(5), torch.randint(0, 100, (3,))
    torch.manual_seed(0)
    seed_torch(7)
    assert torch.equal(torch.rand(5), expected[0]) and torch.equal(torch.randint(0, 100, (3,)), expected[1])


def test_decoded_cache_evicts_least_recently_used_and_freezes_arrays():
    cache, loads = DecodedCache(max_bytes=250), []

    def loader(key, nbytes=100):
        return lambda: loads.append(key) or (np.zeros(nbytes, np.uint8), None)

    a = cache.get_or_load("a", loader("a"))
    cache.get_or_load("b", loader("b"))
    assert cache.get_or_load("a", loader("a")) is a and loads == ["a", "b"]  # a hit: loaded once
    cache.get_or_load("c", loader("c"))  # 300 bytes > 250: evicts b, the least recently used
    cache.get_or_load("a", loader("a"))
    cache.get_or_load("b", loader("b"))
    assert loads == ["a", "b", "c", "b"] and len(cache) == 2 and cache.bytes == 200
    with pytest.raises(ValueError, match="read-only"):
        a[0][0] = 1
    big = cache.get_or_load("big", loader("big", 300))  # larger than the cache: returned, not kept
    assert big[0].flags.writeable and "big" not in cache._entries


def test_cached_mapper_gives_the_same_samples_without_rereading(tmp_path):
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)).save(tmp_path / "img.png")
    Image.fromarray(rng.choice([1, 5, 9, 255], size=(80, 100)).astype(np.uint8)).save(tmp_path / "lab.png")
    record = {"file_name": str(tmp_path / "img.png"), "sem_seg_file_name": str(tmp_path / "lab.png")}

    def mapper(cache_mb):
        return SemSegDatasetMapper(
            train_augmentations((64, 64), [48, 64, 96], max_size=256), pad_to=(64, 64), cache_mb=cache_mb
        )

    plain, cached = mapper(0), mapper(1)
    expected = []
    for seed in range(4):
        np.random.seed(seed)
        expected.append(plain(dict(record)))
    got = []
    for seed in range(4):
        np.random.seed(seed)
        got.append(cached(dict(record)))
        if seed == 0:  # decoded once: the later samples come from memory
            (tmp_path / "img.png").unlink()
            (tmp_path / "lab.png").unlink()
    for e, g in zip(expected, got):
        for key in ("image", "sem_seg"):
            assert torch.equal(e[key], g[key])
        assert torch.equal(e["instances"].gt_masks, g["instances"].gt_masks)
