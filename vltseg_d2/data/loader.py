"""A resumable, deterministic training loader.

detectron2's training loader restarts its sample order after ``--resume`` and draws augmentation
randomness from worker state, so a resumed run sees different data than an uninterrupted one.
Here sample ``k`` of the infinite stream is a pure function of (seed, k): the epoch permutation
comes from a generator seeded with (seed, epoch) and the mapper's NumPy/PyTorch randomness is
seeded with (seed, k). ``start_iter`` (set by the trainer after loading a checkpoint) skips the
samples already consumed, so a resumed run continues exactly where the killed one stopped.
Several source datasets are mixed with given ratios by a fixed interleave (``sources.py``),
which keeps that property.
"""

import itertools
from typing import Optional, Sequence

import numpy as np
from detectron2.data import DatasetFromList
from detectron2.utils import comm
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..config import ConfigError
from ..utils.seeding import seed_torch
from .sources import SampleSchedule
from .workers import ignore_job_signals


class _BatchStream(IterableDataset):
    """Yields the batches of iterations ``start_iter, start_iter + 1, ...`` for one rank; worker
    ``w`` of ``n`` builds every n-th batch, and the DataLoader interleaves them back in order."""

    def __init__(self, sources, schedule, mapper, seed, start_iter, batch_size, rank, world_size):
        self.sources, self.schedule, self.mapper, self.seed = sources, schedule, mapper, seed
        self.start_iter, self.batch_size, self.rank, self.world_size = start_iter, batch_size, rank, world_size

    def _sample(self, position):
        source, index = self.schedule(position)
        records = self.sources[source]
        for attempt in range(len(records)):
            seed = (self.seed * 7919 + position * 31 + attempt) % 2**32
            np.random.seed(seed)
            seed_torch(seed)  # the mapper draws on the CPU
            sample = self.mapper(records[(index + attempt) % len(records)])
            if sample is not None:  # the mapper skips unreadable samples (and logs them)
                return sample
        raise RuntimeError("every training sample failed to load; see the warnings above")

    def __iter__(self):
        worker = get_worker_info()
        wid, nw = (worker.id, worker.num_workers) if worker else (0, 1)
        for it in itertools.count(self.start_iter + wid, nw):
            first = (it * self.world_size + self.rank) * self.batch_size
            yield [self._sample(first + t) for t in range(self.batch_size)]


def check_batch_split(total_batch_size: int, world: int, lr: Optional[float] = None):
    """A ConfigError naming the ways out when ``total_batch_size`` images cannot be split evenly
    over ``world`` processes (each rank loads ``total_batch_size / world``)."""
    if total_batch_size % world == 0:
        return
    fits = [n for n in range(1, total_batch_size + 1) if total_batch_size % n == 0]
    larger = -(-total_batch_size // world) * world  # the next multiple of the process count
    lr_hint = f" and optimizer.lr={lr * larger / total_batch_size:g} (lr scaled with the batch)" if lr else ""
    raise ConfigError(
        f"dataloader.train.total_batch_size={total_batch_size} is not divisible by the {world} processes: "
        f"run on {', '.join(map(str, fits))} process(es) (--num-gpus x --num-machines), or change the recipe "
        f"with dataloader.train.total_batch_size={larger}{lr_hint}, which is no longer the published recipe"
    )


class ResumableTrainLoader:
    """Iterable of batches (lists of mapped records) for one rank.

    Args:
        dataset: list of records (e.g. ``get_detection_dataset_dicts(...)``), or a list of such
            lists for multi-source training.
        ratios: with several sources, their share of the samples (e.g. ``[0.5, 0.5]``).
        mapper: record -> model input (``None`` to skip a bad sample).
        total_batch_size: images per iteration over all ranks.
        num_workers: loader worker processes per rank.
        seed: the stream's seed.
    """

    def __init__(self, dataset, mapper, total_batch_size: int, num_workers: int = 2, seed: int = 0,
                 ratios: Optional[Sequence[float]] = None):  # fmt: skip
        world = comm.get_world_size()
        check_batch_split(total_batch_size, world)
        multi = len(dataset) > 0 and isinstance(dataset[0], (list, tuple))
        sources = list(dataset) if multi else [dataset]
        ratios = list(ratios) if ratios is not None else [1.0] * len(sources)
        self.sources = [DatasetFromList(list(s), copy=False, serialize=True) for s in sources]
        self.schedule = SampleSchedule([len(s) for s in self.sources], ratios, seed)
        self.mapper, self.batch_size, self.num_workers, self.seed = mapper, total_batch_size // world, num_workers, seed
        self.start_iter = 0

    def __iter__(self):
        stream = _BatchStream(
            self.sources,
            self.schedule,
            self.mapper,
            self.seed,
            self.start_iter,
            self.batch_size,
            comm.get_rank(),
            comm.get_world_size(),
        )
        loader = DataLoader(
            stream,
            batch_size=None,
            num_workers=self.num_workers,
            collate_fn=_identity,
            worker_init_fn=ignore_job_signals,
        )
        return iter(loader)


def _identity(batch):
    return batch
