from .optimizer import param_groups  # noqa: F401
from .trainer import Trainer, resolve_device  # noqa: F401
