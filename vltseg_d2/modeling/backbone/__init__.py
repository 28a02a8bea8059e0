from .rein import Reins  # noqa: F401
from .soma import SoMA  # noqa: F401
from .vit import ViTBackbone, build_rein, count_parameters  # noqa: F401
from .weights import WeightsMismatchError, load_vit_weights  # noqa: F401
