from .cli import load_config_for_tool  # noqa: F401
from .overrides import ConfigError, OverrideError, apply_overrides, load_config  # noqa: F401
