from .backbone import Reins, SoMA, ViTBackbone, build_rein, count_parameters  # noqa: F401
from .backbone.clip_image import ClipImageTower  # noqa: F401
from .criterion import SetCriterion  # noqa: F401
from .matcher import FixedMatcher, HungarianMatcher  # noqa: F401
from .meta_arch import MaskFormer, MaskFormerHead  # noqa: F401
from .pixel_decoder.msdeformattn import MSDeformAttnPixelDecoder  # noqa: F401
from .text.context_decoder import ContextDecoder  # noqa: F401
from .text.prompted_text import PromptedTextEncoder  # noqa: F401
from .text_query_arch import TextQueryMaskFormer  # noqa: F401
from .transformer_decoder.mask2former_decoder import MultiScaleMaskedTransformerDecoder  # noqa: F401
