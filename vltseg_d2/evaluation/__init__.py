from .cross_domain import (  # noqa: F401
    format_cross_domain_table,
    format_per_class_table,
    save_cross_domain,
    summarize_cross_domain,
)
from .sem_seg import SemSegIoUEvaluator, iou_metrics  # noqa: F401
