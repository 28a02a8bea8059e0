from .cli import add_override_arguments, load_config_for_tool, overrides_of, tool_parser  # noqa: F401
from .overrides import ConfigError, OverrideError, apply_overrides, load_config  # noqa: F401
