"""What produced a cross-domain table: recorded in its JSON and printed above it in the .md."""

import datetime
import hashlib
import os
import subprocess

from omegaconf import OmegaConf


def config_sha256(cfg) -> str:
    """A hash of the resolved config as evaluated (overrides included), not of the file it came from."""
    return hashlib.sha256(OmegaConf.to_yaml(cfg, resolve=False).encode()).hexdigest()


def code_commit() -> str:
    """This checkout's commit (``+dirty`` with uncommitted changes), or "unknown" outside git."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
        return commit.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(cfg, checkpoint, iteration, images: dict) -> dict:
    return {
        "config_sha256": config_sha256(cfg),
        "checkpoint": checkpoint,
        "iteration": iteration,
        "commit": code_commit(),
        "images": dict(images),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def describe_provenance(record: dict) -> str:
    images = ", ".join(f"{name} {count}" for name, count in record["images"].items())
    at = f" (iteration {record['iteration']})" if record.get("iteration") is not None else ""
    return (
        f"checkpoint {record['checkpoint']}{at}; config sha256 {record['config_sha256'][:12]}; "
        f"code {record['commit'][:12]}{'+dirty' if record['commit'].endswith('+dirty') else ''}; "
        f"images: {images}; {record['date']}"
    )
