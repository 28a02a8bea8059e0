from .cli import load_config_for_tool  # noqa: F401
from .overrides import ConfigError, OverrideError, apply_overrides  # noqa: F401
