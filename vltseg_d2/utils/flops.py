"""FLOP counting that includes attention on every device.

torch's ``FlopCounterMode`` has formulas for the CUDA attention kernels (flash, memory-efficient,
cuDNN) but none for the CPU flash kernel that ``scaled_dot_product_attention`` dispatches to on a
CPU (``aten._scaled_dot_product_flash_attention_for_cpu`` and its backward), so on a CPU it
counted attention as 0 FLOPs. :func:`count_cpu_attention` registers torch's own SDPA formulas
(``sdpa_flop_count``: 2 FLOPs per multiply-add of QK^T and PV; ``sdpa_backward_flop_count`` for
the backward's recomputation and gradients) for those two operators.
"""

import torch
import torch.utils.flop_counter as flop_counter

_CPU_FORWARD = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
_CPU_BACKWARD = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward


def _forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def count_cpu_attention():
    """Make ``FlopCounterMode`` count the CPU attention kernels (idempotent)."""
    if _CPU_FORWARD not in flop_counter.flop_registry:
        flop_counter.register_flop_formula(_CPU_FORWARD)(_forward)
    if _CPU_BACKWARD not in flop_counter.flop_registry:
        flop_counter.register_flop_formula(_CPU_BACKWARD)(_backward)
