from .overrides import OverrideError, apply_overrides  # noqa: F401
