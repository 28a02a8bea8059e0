from .backbone import Reins, ViTBackbone, build_rein, count_parameters  # noqa: F401
