from pathlib import Path

import torch

from ..utils.atomic import atomic_path


def save_atomic(obj, path) -> Path:
    """``torch.save`` through :func:`atomic_path`: a crash or a full disk never leaves a truncated
    file under the final name."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)
