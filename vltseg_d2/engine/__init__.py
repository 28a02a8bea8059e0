from .launcher import launch  # noqa: F401
from .optimizer import param_groups  # noqa: F401
from .output_lock import lock_output_dir  # noqa: F401
from .predictor import Predictor  # noqa: F401
from .preemption import REQUEUE_EXIT_CODE, TrainingInterrupted  # noqa: F401
from .trainer import Trainer, eval_output_dir, evaluation_dataset_names, resolve_device  # noqa: F401
