"""LazyConfig ``key=value`` overrides that refuse misspelled keys.

detectron2's ``LazyConfig.apply_overrides`` silently creates a field for a key that does not
exist (``train.typo=5``), so a typo trains with the default. Here a key must either exist, or be
an argument of the callable its parent node instantiates (``_target_``), or be a new entry of an
open dict (a dict whose name ends in ``kwargs`` or ``protocols``, such as
``model.backbone.model_kwargs``); otherwise the error names the key and the closest existing ones.
"""

import builtins
import difflib
import inspect
import os

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
POSITIVE_KEYS = (
    "train.max_iter",
    "optimizer.lr",
    "dataloader.train.total_batch_size",
    "train.checkpointer.period",
    "train.log_period",
    "model.window_batch",
    "train.compile.size_bucket",
)
COUNT_KEYS = (  # 0 is meaningful (no workers, no periodic evaluation, no clipping, EMA from the start)
    "dataloader.train.num_workers",
    "dataloader.test.num_workers",
    "train.eval_period",
    "optimizer.weight_decay",
    "train.ema.start_iter",
    "dataloader.train.mapper.cache_mb",
)
FRACTION_KEYS = ("train.ema.decay",)
_NONE_WORDS = ("None", "none", "null", "~")


def _type_name(value) -> str:
    return {bool: "a boolean (True/False)", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), type(value).__name__
    )


def check_value(key: str, old, new):
    """``new`` must have the type of the value it replaces (an int may replace a float; ``None``
    and a value may replace each other; a group of settings only by a dict, a list only by a list);
    positive keys must be > 0, counts >= 0."""
    if isinstance(old, DictConfig) and new is not None and not isinstance(new, (dict, DictConfig)):
        raise OverrideError(
            f"override {key}={new!r}: {key} is a group of settings, not a value; set one of its keys ({key}.<name>=...)"
        )
    if isinstance(old, ListConfig) and new is not None and not isinstance(new, (list, tuple, ListConfig)):
        raise OverrideError(f"override {key}={new!r}: expected a list like the config's {list(old)!r}")
    if old is not None and new is not None and not OmegaConf.is_config(old):
        ok = (
            type(new) is type(old)
            or (isinstance(old, float) and type(new) is int)
            or (isinstance(old, (list, tuple, ListConfig)) and isinstance(new, (list, tuple, ListConfig)))
        )
        if isinstance(old, (int, float, bool, str)) and not ok:
            raise OverrideError(f"override {key}={new!r}: expected {_type_name(old)} like the config's {old!r}")
    number = isinstance(new, (int, float)) and not isinstance(new, bool)
    if key in POSITIVE_KEYS and number and not new > 0:  # "not >": NaN too
        raise OverrideError(f"override {key}={new!r}: must be > 0")
    if key in COUNT_KEYS and number and not new >= 0:
        raise OverrideError(f"override {key}={new!r}: must be >= 0")
    if key in FRACTION_KEYS and number and not 0 < new < 1:
        raise OverrideError(f"override {key}={new!r}: must be between 0 and 1 (exclusive)")


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
        try:
            LazyConfig.apply_overrides(cfg, [f"{key}={value}"])
        except Exception as e:  # hydra's grammar (spaces, some characters), omegaconf's type checks
            if not isinstance(old, str):
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise OverrideError(f"override {key}={value}: cannot be applied ({first})") from None
            # a string value: taken as written (a path with spaces or non-ASCII letters)
            OmegaConf.update(cfg, key, value, merge=False)
        check_value(key, old, OmegaConf.select(cfg, key, default=None))
    return cfg


def load_config(config_file: str, overrides=()):
    """``LazyConfig.load`` and :func:`apply_overrides`, every failure one line: a file that does
    not exist, has a syntax error or raises; a bad override; keys left without a value (``???``)."""
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"{config_file} does not exist")
    original_import = builtins.__import__
    try:
        cfg = LazyConfig.load(config_file)
    except SyntaxError as e:
        cause = e.__cause__ if isinstance(e.__cause__, SyntaxError) else e
        where = f"{config_file} has a syntax error at line {cause.lineno}"
        raise ConfigError(f"config file {where}: {cause.msg}") from None
    except Exception as e:
        reason = f"{type(e).__name__}: {str(e).strip()[:200]}"
        raise ConfigError(f"config file {config_file} failed to load: {reason}") from None
    finally:  # detectron2 patches __import__ while a config runs, and leaves it patched if the config raises
        builtins.__import__ = original_import
    cfg = apply_overrides(cfg, overrides or [])
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            f"{', '.join(missing[:5])} {'has' if len(missing) == 1 else 'have'} no value (???) in {config_file}: "
            "set them with key=value"
        )
    return cfg
