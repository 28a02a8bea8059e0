from .cross_domain import format_cross_domain_table, save_cross_domain, summarize_cross_domain  # noqa: F401
from .sem_seg import SemSegIoUEvaluator, iou_metrics  # noqa: F401
