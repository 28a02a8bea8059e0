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
from omegaconf import DictConfig, ListConfig

OPEN_DICT_SUFFIXES = ("kwargs", "protocols")


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


def apply_overrides(cfg, overrides):
    """Validate every ``key=value`` against ``cfg``, then apply them with detectron2."""
    for item in overrides:
        if item.startswith("--"):
            raise OverrideError(f"'{item}' came after the key=value overrides: put options before them")
        if "=" not in item:
            raise OverrideError(f"override '{item}' is not of the form key=value")
        check_key(cfg, item.split("=", 1)[0].strip())
    return LazyConfig.apply_overrides(cfg, list(overrides))
