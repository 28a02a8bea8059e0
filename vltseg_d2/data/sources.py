"""Which record sample ``k`` of the training stream is, for one or several source datasets.

Multi-source training (GTA + SYNTHIA, ...) mixes sources with given ratios. The mix must stay a
pure function of (seed, k), like the single-source stream, so that ``--resume`` continues it
exactly; random source draws would need the whole history to know how far each source got. So
the sources are interleaved by a fixed smooth weighted round robin over a cycle: ratios 1:1 give
A B A B ..., 2:1 give A B A A B A ..., and any prefix of the stream holds the sources in the
given proportions to within one sample per source. Within a source, its own samples run through
one random permutation per epoch of that source, seeded by (seed, source, epoch).
"""

from fractions import Fraction
from typing import List, Sequence, Tuple

import torch


def interleave_cycle(ratios: Sequence[float], max_cycle: int = 1000) -> List[int]:
    """One cycle of the smooth weighted round robin: source indices in order."""
    if not ratios or any(r <= 0 for r in ratios):
        raise ValueError(f"source ratios must be positive numbers, got {list(ratios)}")
    fractions = [Fraction(r / sum(ratios)).limit_denominator(max_cycle) for r in ratios]
    denominator = 1
    for f in fractions:
        denominator = denominator * f.denominator // _gcd(denominator, f.denominator)
    weights = [max(int(f * denominator), 1) for f in fractions]
    credit, cycle = [0] * len(weights), []
    for _ in range(sum(weights)):
        credit = [c + w for c, w in zip(credit, weights)]
        pick = max(range(len(weights)), key=lambda i: (credit[i], -i))
        credit[pick] -= sum(weights)
        cycle.append(pick)
    return cycle


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


class SampleSchedule:
    """Maps a stream position to (source index, record index within that source)."""

    def __init__(self, sizes: Sequence[int], ratios: Sequence[float], seed: int):
        if len(sizes) != len(ratios):
            raise ValueError(f"{len(sizes)} source datasets but {len(ratios)} ratios")
        empty = [i for i, n in enumerate(sizes) if n == 0]
        if empty:
            raise ValueError(f"source dataset(s) {empty} have no records")
        self.sizes, self.seed = list(sizes), seed
        self.cycle = interleave_cycle(ratios)
        self.per_cycle = [self.cycle.count(s) for s in range(len(sizes))]
        # how many samples of the cycle's own source come before each slot
        self.before = [self.cycle[:i].count(s) for i, s in enumerate(self.cycle)]

    def __call__(self, position: int) -> Tuple[int, int]:
        cycles, slot = divmod(position, len(self.cycle))
        source = self.cycle[slot]
        within = cycles * self.per_cycle[source] + self.before[slot]
        epoch, offset = divmod(within, self.sizes[source])
        # source 0 keeps the single-source stream's seeds, so adding sources changes nothing for it
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch + source * 2**40)
        return source, int(torch.randperm(self.sizes[source], generator=g)[offset])


def source_datasets(names: Sequence[str]) -> List[list]:
    """The records of each named dataset, one list per source (for ``ResumableTrainLoader``)."""
    from detectron2.data import get_detection_dataset_dicts

    return [get_detection_dataset_dicts(name, filter_empty=False) for name in names]
