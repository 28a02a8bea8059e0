"""``get``: a zoo entry's file in place (cache, local file or download), checked, converted, and
the commands that use it.

Layout: backbones in ``pretrained/<original name>`` (the path the configs name); a release's
original file in ``checkpoints/<entry>/<original name>`` (Rein's GTA5, ViT-S and ViT-B files
share one name) and its conversion in ``checkpoints/<entry>.pth``.
"""

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from ..utils.suggest import did_you_mean
from .catalog import ZOO, ZooEntry
from .download import DownloadError, check_or_record_sha256, download, hash_prefix_of

logger = logging.getLogger(__name__)


@dataclass
class Fetched:
    entry: ZooEntry
    original: Path  # the file as its authors released it
    converted: Optional[Path] = None  # this project's layout (releases)
    backbone: Optional["Fetched"] = None
    messages: List[str] = field(default_factory=list)


def zoo_entry(name: str) -> ZooEntry:
    if name not in ZOO:
        hint = did_you_mean(name, ZOO)
        raise DownloadError(f"no zoo entry named '{name}'{hint}; `python tools/zoo.py list` shows them")
    return ZOO[name]


def cached_copy(entry: ZooEntry) -> Optional[Path]:
    """The file where ``torch.hub`` or the Hugging Face cache already holds it, if it does."""
    if entry.torch_hub:
        import torch.hub

        hub_file = Path(torch.hub.get_dir()) / "checkpoints" / entry.file_name
        if hub_file.is_file():
            return hub_file
    if entry.hf_repo:
        from huggingface_hub import try_to_load_from_cache

        hf_file = try_to_load_from_cache(entry.hf_repo, entry.file_name)
        if isinstance(hf_file, str) and os.path.isfile(hf_file):
            return Path(hf_file)
    return None


def _place(source: Path, target: Path, how: str, messages: list):
    """A symlink to a cache entry (no second copy of a large file), a copy of a user's file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if how == "link":
        os.symlink(source.resolve(), target)
        messages.append(f"linked {target} -> {source.resolve()} (already in the cache)")
    else:
        tmp = target.with_name(target.name + ".copying")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        messages.append(f"copied {source} to {target}")


def _check_readable(path: Path):
    """A file that does not open as tensors (an HTML error page, a truncated upload) is refused
    before its sha256 is recorded as the good one."""
    from ..utils.safe_load import CheckpointReadError, load_state_dict

    try:
        if not load_state_dict(path):
            raise CheckpointReadError(f"{path}: holds no tensors")
    except CheckpointReadError as e:
        raise DownloadError(f"{e}; not the released file: delete it and get it again (check the URL)") from None


def obtain(entry: ZooEntry, target: Path, url: Optional[str] = None, local_file: Optional[str] = None) -> Fetched:
    """``target`` in place and checked: reused, linked from a cache, copied from ``local_file``
    or downloaded from ``url`` (default: the entry's)."""
    fetched = Fetched(entry, target)
    prefix = hash_prefix_of(entry.file_name)
    if local_file and not target.exists():
        if not Path(local_file).is_file():
            raise DownloadError(f"--file {local_file}: no such file")
        _place(Path(local_file), target, "copy", fetched.messages)
    elif not target.exists() and (cached := cached_copy(entry)) is not None:
        _place(cached, target, "link", fetched.messages)
    elif not target.exists():
        source = url or entry.url
        if not source:
            raise DownloadError(f"{entry.name} has no public download link: {entry.how_to_get}")
        download(source, target)
        fetched.messages.append(f"downloaded {source} to {target}")
        try:
            _check_readable(target)
        except DownloadError:
            os.replace(target, target.with_name(target.name + ".invalid"))  # kept for a look, never used
            raise
    else:
        fetched.messages.append(f"found {target}")
    digest = check_or_record_sha256(target, prefix)
    fetched.messages.append(f"sha256 {digest} (recorded in {target.name}.sha256)")
    return fetched


def get(
    name: str,
    pretrained_dir="pretrained",
    checkpoint_dir="checkpoints",
    url: Optional[str] = None,
    local_file: Optional[str] = None,
    with_backbone: bool = True,
) -> Fetched:
    """Fetch entry ``name`` (and, for a release, the backbone it needs), convert a release."""
    entry = zoo_entry(name)
    if entry.kind == "backbone":
        return obtain(entry, Path(pretrained_dir) / entry.file_name, url, local_file)
    original_name = Path(local_file).name if local_file and not entry.url else entry.file_name
    fetched = obtain(entry, Path(checkpoint_dir) / entry.name / original_name, url, local_file)
    converted = Path(checkpoint_dir) / f"{entry.name}.pth"
    if not converted.exists():
        from ..checkpoint.convert_files import convert_rein_file, convert_soma_file, convert_tqdm_file

        convert = {"rein": convert_rein_file, "soma": convert_soma_file, "tqdm": convert_tqdm_file}[entry.converter]
        config = entry.configs[0] if entry.configs else None
        fetched.messages.append(convert(fetched.original, converted, config))
    else:
        fetched.messages.append(f"found {converted} (converted before)")
    fetched.converted = converted
    if entry.backbone and with_backbone:
        fetched.backbone = get(entry.backbone, pretrained_dir, checkpoint_dir)
    return fetched


def usage_commands(fetched: Fetched, pretrained_dir="pretrained") -> List[str]:
    """The exact commands that use what was fetched (evaluation and demo for a release; training
    for a backbone)."""
    entry = fetched.entry
    if entry.kind == "backbone":
        weights = f"model.backbone.pretrained={fetched.original}"
        return [f"python tools/train_net.py --config-file {c} --num-gpus 1 {weights}" for c in entry.configs]
    if not entry.configs:
        return []
    backbone = Path(pretrained_dir) / ZOO[entry.backbone].file_name if entry.backbone else None
    weights = f"train.init_checkpoint={fetched.converted}" + (
        f" model.backbone.pretrained={backbone}" if backbone else ""
    )
    extra = "".join(f" {o}" for o in entry.eval_overrides)
    config = entry.configs[0]
    return [
        f"python tools/train_net.py --config-file {config} --eval-only {weights}{extra}",
        f"python tools/demo.py --config-file {config} --input path/to/frames/ --output out/{entry.name} {weights}"
        + "".join(f" {o}" for o in entry.eval_overrides if not o.startswith("dataloader.")),
    ]
