"""FLOP counts include attention on the CPU (torch's counter has no formula for its kernel)."""

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from vltseg_d2.utils.flops import count_cpu_attention


def test_cpu_attention_is_counted_as_two_matmuls_forward_and_five_backward():
    count_cpu_attention()
    count_cpu_attention()  # idempotent
    b, h, s, d = 2, 4, 64, 32
    q = torch.randn(b, h, s, d, requires_grad=True)
    k, v = torch.randn(b, h, s, d), torch.randn(b, h, s, d)
    with FlopCounterMode(display=False) as forward:
        out = F.scaled_dot_product_attention(q, k, v)
    one_matmul = 2 * b * h * s * s * d  # QK^T or PV: 2 FLOPs per multiply-add
    assert forward.get_total_flops() == 2 * one_matmul
    with FlopCounterMode(display=False) as backward:
        out.sum().backward()
    # QK^T recomputed, then dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q
    assert backward.get_total_flops() == 5 * one_matmul
