"""The one way this project writes a file: under a temporary name beside it, then a rename.

A crash, SIGKILL or a full disk never leaves a truncated file under the final name. The temporary
name (``.<stem>.<pid>.tmp<suffix>``) keeps the suffix, so writers that pick the format from it
(OpenCV, PIL) still work, and is unique per process, so parallel writers never collide.
"""

import contextlib
import os
from pathlib import Path
from typing import Iterator, List

TMP_GLOB = ".*.tmp*"


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``. On failure it is removed
    and an ``OSError`` names ``path`` (the original error is chained)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(e.errno, f"cannot create the folder {path.parent} for {path.name}: {e.strerror}") from None
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch.save reports a full disk as a RuntimeError
        tmp.unlink(missing_ok=True)
        reason = getattr(e, "strerror", None) or str(e).splitlines()[0]
        raise OSError(getattr(e, "errno", None), f"could not write {path}: {reason}") from e
    except BaseException:  # Ctrl-C, SystemExit: leave nothing behind, change nothing
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def remove_stale_temporaries(folder) -> List[Path]:
    """Delete temporaries that interrupted writes left in ``folder``; returns what was removed."""
    removed = []
    for tmp in Path(folder).glob(TMP_GLOB):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
