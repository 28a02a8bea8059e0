"""Decoded training files kept in memory, for datasets small enough to fit (``cache_mb``)."""

from collections import OrderedDict
from typing import Callable, Hashable, Tuple


class DecodedCache:
    """Least-recently-used arrays by key, up to ``max_bytes`` in all.

    Each loader worker holds its own cache (a worker is a process), so the memory used is
    ``max_bytes`` times ``num_workers`` at most. Cached arrays are made read-only: the augmentations
    return new arrays, and one that wrote into its input would raise instead of changing the file's
    pixels for every later epoch. PyTorch has no such cache and detectron2's loader re-reads every
    file every epoch, hence this class.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes, self.bytes = max_bytes, 0
        self._entries: "OrderedDict[Hashable, Tuple]" = OrderedDict()

    def get_or_load(self, key: Hashable, load: Callable[[], Tuple]) -> Tuple:
        """The cached arrays of ``key``, else ``load()`` (a tuple of arrays or None), kept if it fits."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key][0]
        arrays = load()
        size = sum(a.nbytes for a in arrays if a is not None)
        if size > self.max_bytes:
            return arrays
        for a in arrays:
            if a is not None:
                a.flags.writeable = False
        while self.bytes + size > self.max_bytes:
            self.bytes -= self._entries.popitem(last=False)[1][1]
        self._entries[key] = (arrays, size)
        self.bytes += size
        return arrays

    def __len__(self) -> int:
        return len(self._entries)
