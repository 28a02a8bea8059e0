from .overrides import ConfigError, OverrideError, apply_overrides  # noqa: F401
