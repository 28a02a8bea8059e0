"""The built-in synthetic benchmark (vltseg_d2.data.synthetic), registered like the real datasets."""

from ..synthetic_domains import DOMAINS, TARGET_DOMAINS  # noqa: F401
from .register import FolderPairs, register_all

_HINT = "Generate it with `python -m vltseg_d2.data.synthetic` (or `make demo`)."


def _split(domain, split):
    return FolderPairs(
        f"synthetic/{domain}/{split}/images",
        ".png",
        f"synthetic/{domain}/{split}/labels",
        (".png",),
        fix_hint=_HINT,
        extra_metadata={"domain": domain},
    )


SPLITS = {"synthetic_source_train": _split("source", "train")}
SPLITS.update({f"synthetic_{d}_val": _split(d, "val") for d in DOMAINS})
register_all(SPLITS)
