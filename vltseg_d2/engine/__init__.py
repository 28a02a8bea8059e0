from .optimizer import param_groups  # noqa: F401
from .preemption import REQUEUE_EXIT_CODE, TrainingInterrupted  # noqa: F401
from .trainer import Trainer, eval_output_dir, resolve_device, evaluation_dataset_names  # noqa: F401
