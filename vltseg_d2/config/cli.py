"""What every command-line tool does with ``--config-file`` and ``key=value`` overrides."""

import logging

from detectron2.config import LazyConfig

from .overrides import OverrideError, apply_overrides


def load_config_for_tool(parser, config_file: str, overrides):
    """The config with validated overrides; a bad file or key is the parser's usage error (exit 2,
    one line). Also turns on INFO logging, so the library's progress lines are seen."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        return apply_overrides(LazyConfig.load(config_file), overrides or [])
    except OverrideError as e:
        parser.error(str(e))
    except FileNotFoundError as e:
        parser.error(f"config file: {e}")
