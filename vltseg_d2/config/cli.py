"""What every command-line tool does with ``--config-file`` and ``key=value`` overrides."""

import argparse
import logging

from detectron2.config import LazyConfig

from .overrides import ConfigError, OverrideError, load_config


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every tool's ``--help``: the module docstring as written, and "(default: X)" after each
    option whose default is a value (not None or False) unless its help already names it."""

    def _get_help_string(self, action):
        text = action.help or ""
        unset = any(action.default is none for none in (None, False, argparse.SUPPRESS)) or action.default == []
        if action.option_strings and not unset and "(default" not in text:  # "is": 0 is a value, False is not
            text += " (default: %(default)s)"
        return text


def tool_parser(doc: str, **kwargs) -> argparse.ArgumentParser:
    """The parser every tool starts from: its docstring as the description, our help format."""
    return argparse.ArgumentParser(description=doc, formatter_class=HelpFormatter, **kwargs)


def tool_logging(format="%(levelname)s %(message)s"):
    """This package's INFO lines (progress, what was loaded or dropped) on the console; other
    libraries only from WARNING (onnx's exporter alone logs hundreds of "Replaced initializer")."""
    logging.basicConfig(level=logging.WARNING, format=format)
    logging.getLogger("vltseg_d2").setLevel(logging.INFO)


def add_override_arguments(parser, positional: bool = True, what: str = "config overrides key=value"):
    """Overrides in both syntaxes of every tool: trailing ``key=value`` (detectron2's tools) and
    ``--opts key=value`` (detectron2's demo); :func:`overrides_of` joins them."""
    if positional:
        parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help=f"{what} (or after --opts)")
    parser.add_argument("--opts", dest="opts_after_flag", nargs=argparse.REMAINDER, default=[], help=argparse.SUPPRESS)


def overrides_of(args) -> list:
    return list(getattr(args, "opts", None) or []) + list(getattr(args, "opts_after_flag", None) or [])


def load_config_for_tool(parser, config_file: str, overrides):
    """The config with validated overrides; a bad file or key is the parser's usage error (exit 2,
    one line). Also sets up :func:`tool_logging`."""
    tool_logging()
    try:
        return load_config(config_file, overrides or [])
    except (OverrideError, ConfigError) as e:
        parser.error(str(e))
    except FileNotFoundError as e:
        parser.error(f"config file: {e}")


def meta_vit(config_file: str):
    """The config's timm ViT on the meta device: key names and shapes, no memory, no file read
    (what converters need to fit a file's backbone to the config's patch size and grid)."""
    import torch
    from detectron2.config import instantiate

    cfg = LazyConfig.load(config_file).model.backbone
    cfg.pretrained = None
    with torch.device("meta"):
        return instantiate(cfg).vit


def run_converter(argv, doc: str, source: str, default_config: str, backbone_form: str, convert):
    """A checkpoint converter's command line: ``convert(input, output, config_file)`` prints its
    summary; a missing, unreadable or foreign file ends in one line naming it."""
    import sys

    from ..checkpoint.rein_mmseg import UnmappedKeyError
    from ..modeling.backbone.weights import WeightsMismatchError
    from ..utils.safe_load import CheckpointReadError

    args = converter_arguments(doc, source, default_config, backbone_form).parse_args(argv)
    tool_logging(format="%(message)s")
    try:
        print(convert(args.input, args.output, args.config_file))
    except (FileNotFoundError, CheckpointReadError, WeightsMismatchError, ValueError) as e:
        sys.exit(f"error: {e}")
    except (KeyError, UnmappedKeyError) as e:
        sys.exit(f"error: {args.input}: {e.args[0]}")


def converter_arguments(doc: str, source: str, default_config: str, backbone_form: str):
    """The argument parser of a checkpoint converter: ``input output [--config-file]``."""
    parser = tool_parser(doc)
    parser.add_argument("input", help=f"{source} checkpoint (.pth, mmsegmentation layout)")
    parser.add_argument("output", help="converted checkpoint to write (detectron2 format)")
    parser.add_argument(
        "--config-file",
        default=default_config,
        help=f"config whose ViT receives {backbone_form} (default: %(default)s)",
    )
    return parser
