"""Does a tensor from a file fit the model's tensor of the same name?

``Module.load_state_dict`` and ``Tensor.copy_`` broadcast (a 0-d value fills a whole weight) and
cast (an int8 or int64 tensor lands in a float weight, silently wrong), so every loader of ours
asks this first: the shape must be equal, and the kind of number (floating point, complex,
integer, bool) the same. Floating-point precisions may differ (a bfloat16 file loads into a
float32 model exactly as its values are).
"""

from typing import List, Mapping

import torch


def number_kind(dtype: torch.dtype) -> str:
    if dtype.is_floating_point:
        return "floating point"
    if dtype.is_complex:
        return "complex"
    return "bool" if dtype == torch.bool else "integer"


def misfits(own: Mapping[str, torch.Tensor], given: Mapping[str, object], source: str = "checkpoint") -> List[str]:
    """One line per tensor of ``given`` (names shared with ``own``) that is not a tensor of the same
    shape and kind of number as the model's, e.g. ``w: checkpoint (2,) int8 vs model (2,) float32``."""
    lines = []
    for name in sorted(own.keys() & given.keys()):
        mine, theirs = own[name], given[name]
        if not isinstance(theirs, torch.Tensor):
            lines.append(f"{name}: {source} holds a {type(theirs).__name__}, not a tensor")
        elif tuple(theirs.shape) != tuple(mine.shape) or number_kind(theirs.dtype) != number_kind(mine.dtype):
            lines.append(
                f"{name}: {source} {tuple(theirs.shape)} {str(theirs.dtype)[6:]} vs model "
                f"{tuple(mine.shape)} {str(mine.dtype)[6:]}"
            )
    return lines
