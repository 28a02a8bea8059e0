from pathlib import Path

import torch


def save_atomic(obj, path) -> Path:
    """``torch.save`` under a temporary name in the same folder, then rename: a crash never
    leaves a truncated file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    tmp.replace(path)
    return path
