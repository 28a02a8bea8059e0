#!/usr/bin/env python
"""Released models by name: the pretrained backbones and the authors' trained checkpoints.

    python tools/zoo.py list                      # every file: what it is, configs, published mIoU
    python tools/zoo.py get rein_dinov2_l_gta     # download, check, convert; print the commands

`get` puts backbones in pretrained/ (the paths the configs name) and releases in
checkpoints/<name>/, converted to this project's layout as checkpoints/<name>.pth; a release
also gets the backbone it needs (--no-backbone to skip). It reuses a file that torch.hub or the
Hugging Face cache already holds (a symlink, no second copy), shows progress, continues an
interrupted download where it stopped (run the same command again), records the file's sha256
beside it after the first download (<file>.sha256) and checks it on every later `get`. Files
without a public link (DINOv3 is gated) take --url with the link you were sent, or --file with
a file you downloaded. Everything is read as tensors only.
"""

import vltseg_d2  # noqa: F401  (first: it silences detectron2's import-time torch.jit warnings)

# isort: split

import argparse
import sys
from pathlib import Path

from vltseg_d2.checkpoint import CheckpointError, UnmappedKeyError
from vltseg_d2.config.cli import tool_logging, tool_parser
from vltseg_d2.zoo.catalog import ZOO
from vltseg_d2.zoo.download import DownloadError
from vltseg_d2.zoo.fetch import get, usage_commands


def list_entries(pretrained_dir, checkpoint_dir) -> str:
    """One block per entry (a table of six columns does not fit a terminal)."""
    blocks = []
    for entry in ZOO.values():
        if entry.kind == "backbone":
            present = (Path(pretrained_dir) / entry.file_name).exists()
        else:
            present = (Path(checkpoint_dir) / f"{entry.name}.pth").exists()
        lines = [f"{entry.name}  ({entry.kind}{', here' if present else ''})", f"  {entry.what}"]
        lines += [f"  published: {entry.published}"] if entry.published else []
        lines += [f"  config: {c}" for c in entry.configs]
        lines += [f"  source: {entry.url}" if entry.url else f"  source: {entry.how_to_get}"]
        lines += [f"  note: {entry.notes}"] if entry.notes else []
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def main(argv=None):
    parser = tool_parser(__doc__)
    folders = argparse.ArgumentParser(add_help=False)
    folders.add_argument(
        "--pretrained-dir", default="pretrained", help="where backbones go (default: %(default)s, as the configs say)"
    )
    folders.add_argument(
        "--checkpoint-dir", default="checkpoints", help="where releases and their conversions go (default: %(default)s)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,get}")
    commands.add_parser("list", parents=[folders], help="every entry: what it is, configs, published numbers, source")
    get_parser = commands.add_parser(
        "get", parents=[folders], help="fetch, check and convert one entry; print the commands that use it"
    )
    get_parser.add_argument("name", help="an entry of `list`")
    get_parser.add_argument("--url", help="download from this link instead (e.g. the signed DINOv3 link)")
    get_parser.add_argument("--file", help="use this local file instead of downloading")
    get_parser.add_argument("--no-backbone", action="store_true", help="do not fetch the backbone a release needs")
    args = parser.parse_args(argv)
    tool_logging(format="%(message)s")
    if args.command == "list":
        print(list_entries(args.pretrained_dir, args.checkpoint_dir))
        return
    try:
        fetched = get(
            args.name,
            args.pretrained_dir,
            args.checkpoint_dir,
            url=args.url,
            local_file=args.file,
            with_backbone=not args.no_backbone,
        )
    except (DownloadError, CheckpointError, UnmappedKeyError, OSError) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted: the partial download is kept; run the same command again to resume")
    for part in (fetched.backbone, fetched):
        for message in part.messages if part else ():
            print(message)
    entry = fetched.entry
    if entry.published:
        print(f"published: {entry.published}")
    if entry.notes:
        print(f"note: {entry.notes}")
    commands_text = usage_commands(fetched, args.pretrained_dir)
    if commands_text:
        print("use it:\n" + "\n".join(f"  {c}" for c in commands_text))
    return fetched


if __name__ == "__main__":
    main()
