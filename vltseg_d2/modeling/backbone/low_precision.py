"""Frozen linear weights cast to the autocast precision once, not on every forward.

Under ``torch.autocast`` every ``nn.Linear`` casts its float32 weight to bf16 (or fp16) on each
call; autocast caches casts only of leaf tensors that require grad, so a frozen backbone's
weights (Rein's, SoMA's frozen ViT) are cast again in every forward: for ViT-L at 512 that was
7% of a bf16 backbone forward on the CPU (0.82 -> 0.77 s, outputs bit-identical). A
:class:`CachedCastLinear` keeps the cast copy beside the float32 master (which stays what is
trained, saved and used in float32 runs) and rebuilds it when the master changes (a loaded
checkpoint, merged adapters: the tensor's version counter or storage moves).

When: with ``"always"`` (the default) in training steps and in inference. In a training step
autocast's per-call copies are kept for the backward pass anyway, so the cache costs no peak
memory there (Rein-L bf16 step: 5.14 vs 5.15 GiB peak RSS); in inference it makes a bf16 ViT-L
forward 7% faster for half the weights' size more memory (0.6 GB for ViT-L; a 2048x1024 frame by
sliding window, one window per pass: 3.23 instead of 2.72 GiB peak RSS, still below the 3.67 GiB
of four windows per pass without it). ``"training"`` caches only while autograd records, for
memory-tight inference. A weight that requires grad (full fine-tuning) is never cached:
autocast's own cache serves it.
"""

import torch
import torch.nn.functional as F
from torch import nn


def _autocast_dtype(device_type: str):
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


class CachedCastLinear(nn.Linear):
    """An ``nn.Linear`` whose frozen weight and bias are cast to the autocast dtype once."""

    _cast = None  # (key, weight, bias) of the last cast; class defaults, so converted modules have them
    cache_without_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = _autocast_dtype(x.device.type)
        unchanging = not self.weight.requires_grad and not torch.compiler.is_compiling()  # compiled: inductor fuses
        wanted = torch.is_grad_enabled() or self.cache_without_grad
        if dtype is None or dtype == self.weight.dtype or not unchanging or not wanted:
            return F.linear(x, self.weight, self.bias)
        return F.linear(x.to(dtype), *self._cast_weights(dtype))

    def _cast_weights(self, dtype):
        w, b = self.weight, self.bias
        key = (dtype, w.device, w.data_ptr(), w._version) + ((b.data_ptr(), b._version) if b is not None else ())
        if self._cast is None or self._cast[0] != key:
            with torch.no_grad():
                self._cast = (key, w.to(dtype), b.to(dtype) if b is not None else None)
        return self._cast[1], self._cast[2]


MODES = ("training", "always", "never")


def cache_low_precision_casts(module: nn.Module, mode: str = "always") -> int:
    """Turn every plain ``nn.Linear`` of ``module`` into a :class:`CachedCastLinear` (same
    parameters, same state dict) caching in ``mode`` (see the module docstring); returns how many.
    Subclasses of ``nn.Linear`` are left alone."""
    if mode not in MODES:
        raise ValueError(f"model.backbone.cache_casts={mode!r}: choose one of {', '.join(MODES)}")
    converted = 0
    for sub in module.modules() if mode != "never" else ():
        if type(sub) in (nn.Linear, CachedCastLinear):
            sub.__class__ = CachedCastLinear
            sub.cache_without_grad = mode == "always"
            converted += 1
    return converted
