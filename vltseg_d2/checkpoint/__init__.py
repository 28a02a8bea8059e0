from ..utils.safe_load import CheckpointError, CheckpointReadError  # noqa: F401
from .checkpointer import CheckpointMismatchError, SafeCheckpointer, load_weights  # noqa: F401
from .io import save_atomic  # noqa: F401
from .rein_mmseg import UnmappedKeyError, convert_rein_state_dict  # noqa: F401
