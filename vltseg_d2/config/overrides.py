"""LazyConfig ``key=value`` overrides that refuse misspelled keys.

detectron2's ``LazyConfig.apply_overrides`` silently creates a field for a key that does not
exist (``train.typo=5``), so a typo trains with the default. Here a key must either exist, or be
an argument of the callable its parent node instantiates (``_target_``), or be a new entry of an
open dict (a dict whose name ends in ``kwargs`` or ``protocols``, such as
``model.backbone.model_kwargs``); otherwise the error names the key and the closest existing ones.
"""

import difflib
import inspect

from detectron2.config import LazyConfig
from detectron2.utils.registry import locate
from omegaconf import DictConfig, ListConfig, OmegaConf

OPEN_DICT_SUFFIXES = ("kwargs", "protocols")


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


class OverrideError(KeyError):
    def __str__(self):
        return self.args[0]


def _accepts(target, name: str) -> bool:
    if isinstance(target, str):
        target = locate(target)
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def check_key(cfg, key: str):
    node, path = cfg, []
    parts = key.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, ListConfig):
            if not part.isdigit() or int(part) >= len(node):
                raise OverrideError(f"override key '{key}': '{'.'.join(path)}' is a list with {len(node)} items")
            node = node[int(part)]
        elif isinstance(node, DictConfig):
            if part in node:
                node = node[part]
            else:
                is_last = i == len(parts) - 1
                target = node.get("_target_") if "_target_" in node else None
                open_dict = target is None and path and path[-1].endswith(OPEN_DICT_SUFFIXES)
                if is_last and (open_dict or target is not None and _accepts(target, part)):
                    return  # a new entry of an open dict, or an argument the callable accepts
                close = difflib.get_close_matches(part, [str(k) for k in node.keys()], n=3)
                where = ".".join(path) or "the config"
                hint = f" Did you mean {', '.join(repr('.'.join(path + [c])) for c in close)}?" if close else ""
                raise OverrideError(f"override key '{key}' does not exist: {where} has no '{part}'.{hint}")
        else:
            raise OverrideError(f"override key '{key}': '{'.'.join(path)}' is a value, not a group")
        path.append(part)


# keys whose value must be a positive number (a zero or negative one fails much later, or never)
POSITIVE_KEYS = ("train.max_iter", "optimizer.lr", "dataloader.train.total_batch_size", "train.checkpointer.period")
_NONE_WORDS = ("None", "none", "null", "~")


def _type_name(value) -> str:
    return {bool: "a boolean (True/False)", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), type(value).__name__
    )


def check_value(key: str, old, new):
    """``new`` must have the type of the value it replaces (an int may replace a float; ``None``
    and a value may replace each other); positive keys must be > 0."""
    if old is not None and new is not None and not OmegaConf.is_config(old):
        ok = (
            type(new) is type(old)
            or (isinstance(old, float) and type(new) is int)
            or (isinstance(old, (list, tuple, ListConfig)) and isinstance(new, (list, tuple, ListConfig)))
        )
        if isinstance(old, (int, float, bool, str)) and not ok:
            raise OverrideError(f"override {key}={new!r}: expected {_type_name(old)} like the config's {old!r}")
    if key in POSITIVE_KEYS and isinstance(new, (int, float)) and not isinstance(new, bool) and new <= 0:
        raise OverrideError(f"override {key}={new!r}: must be > 0")


def apply_overrides(cfg, overrides):
    """Validate every ``key=value`` against ``cfg`` (the key exists, the value has the type of
    the one it replaces), then apply them with detectron2. ``None``, ``null`` and ``~`` all mean None."""
    parsed = []
    for item in overrides:
        if item.startswith("--"):
            raise OverrideError(f"'{item}' came after the key=value overrides: put options before them")
        if "=" not in item:
            raise OverrideError(f"override '{item}' is not of the form key=value")
        key, value = (part.strip() for part in item.split("=", 1))
        check_key(cfg, key)
        parsed.append((key, "null" if value in _NONE_WORDS else value))
    for key, value in parsed:
        old = OmegaConf.select(cfg, key, default=None)
        LazyConfig.apply_overrides(cfg, [f"{key}={value}"])
        check_value(key, old, OmegaConf.select(cfg, key, default=None))
    return cfg
