"""Multi-source training streams: ratios, determinism, resumability, single-source unchanged."""

import pytest
import torch

from vltseg_d2.data.loader import ResumableTrainLoader
from vltseg_d2.data.sources import SampleSchedule, interleave_cycle


def test_the_interleave_holds_the_ratios_in_every_prefix():
    assert interleave_cycle([1, 1]) == [0, 1]
    assert interleave_cycle([2, 1]) == [0, 1, 0]
    cycle = interleave_cycle([0.6, 0.3, 0.1])
    assert len(cycle) == 10 and [cycle.count(s) for s in range(3)] == [6, 3, 1]
    schedule = SampleSchedule([50, 40, 30], [0.6, 0.3, 0.1], seed=0)
    counts = [0, 0, 0]
    for k in range(1, 500):
        counts[schedule(k - 1)[0]] += 1
        assert all(abs(c - r * k) <= 1 for c, r in zip(counts, (0.6, 0.3, 0.1))), (k, counts)
    with pytest.raises(ValueError, match="positive"):
        interleave_cycle([1, 0])


def test_each_source_runs_through_a_permutation_per_epoch():
    schedule = SampleSchedule([5, 3], [0.5, 0.5], seed=3)
    picks = [schedule(k) for k in range(16)]  # 8 samples of each source
    first = [i for s, i in picks if s == 0]
    assert sorted(first[:5]) == list(range(5)) and len(set(first[5:])) == 3
    second = [i for s, i in picks if s == 1]
    assert sorted(second[:3]) == list(range(3)) and sorted(second[3:6]) == list(range(3))
    assert picks == [SampleSchedule([5, 3], [0.5, 0.5], seed=3)(k) for k in range(16)]  # a pure function
    assert picks != [SampleSchedule([5, 3], [0.5, 0.5], seed=4)(k) for k in range(16)]


def test_single_source_stream_is_the_same_as_before_multi_source():
    """Sample k of one source is still the seed's epoch permutation (recorded results unchanged)."""
    schedule = SampleSchedule([7], [1.0], seed=2)
    for k in range(20):
        epoch, offset = divmod(k, 7)
        expected = int(torch.randperm(7, generator=torch.Generator().manual_seed(2 * 1_000_003 + epoch))[offset])
        assert schedule(k) == (0, expected)


def test_a_two_source_loader_is_resumable_sample_for_sample():
    gta = [{"name": f"gta{i}"} for i in range(6)]
    synthia = [{"name": f"syn{i}"} for i in range(4)]

    def stream(start_iter, n):
        loader = ResumableTrainLoader([gta, synthia], lambda r: r["name"], total_batch_size=2, num_workers=0,
                                      seed=1, ratios=[0.5, 0.5])  # fmt: skip
        loader.start_iter = start_iter
        return [b for _, b in zip(range(n), loader)]

    full = stream(0, 6)
    assert full[3:] == stream(3, 3)
    names = [n for batch in full for n in batch]
    assert sum(n.startswith("gta") for n in names) == sum(n.startswith("syn") for n in names) == 6


def test_the_multi_source_config_builds_a_mixed_loader(use_synthetic):
    from detectron2.config import LazyConfig, instantiate

    cfg = LazyConfig.load("configs/rein/rein_dinov2_l_gtasynthia2cbm_512_bs4_40k.py").dataloader.train
    assert list(cfg.dataset.names) == ["gta5_train", "synthia_train"] and list(cfg.ratios) == [0.5, 0.5]
    cfg.dataset.names = ["synthetic_source_train", "synthetic_fog_val"]  # the data at hand
    cfg.update(num_workers=0, total_batch_size=2)
    cfg.mapper.augmentations.update(crop_size=(64, 64), short_edges=[96])
    batch = next(iter(instantiate(cfg)))
    domains = sorted("fog" in r["file_name"] for r in batch)
    assert domains == [False, True] and batch[0]["image"].shape == (3, 64, 64)
