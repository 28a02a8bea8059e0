"""``torch.compile`` of the model's heavy parts: the backbone (ViT blocks with Rein or SoMA), the
pixel decoder and the transformer decoder, each compiled in place (``nn.Module.compile``, so
state-dict keys and checkpoints are unchanged). Each compiles as one graph (no graph breaks;
tested with ``torch._dynamo.explain``) and traces with dynamic shapes (``dynamic=True``: no
recompile for new sizes, tested with the aot_eager backend). The recipes' default is
``dynamic=False`` with padding buckets: inductor's dynamic-shape code generation fails on
interpolate + grid_sample in torch 2.14 (a sympy "cannot determine truth value of Relational"
error, pytorch/pytorch#185510), so inference pads every frame to multiples of
``train.compile.size_bucket`` (``MaskFormer.size_bucket``) and compiles once per bucket; training
crops and sliding windows have one size. The matcher (scipy) and the loss stay eager. On a GPU
the same code path generates fused kernels, the pure-PyTorch deformable attention included.
"""

import logging

from torch import nn

logger = logging.getLogger(__name__)

HEAVY_PARTS = ("backbone", "sem_seg_head.pixel_decoder", "sem_seg_head.predictor")


def compile_heavy_parts(
    model: nn.Module, backend: str = "inductor", dynamic: bool = False, mode=None, size_bucket=None
) -> list:
    """Compile each part of :data:`HEAVY_PARTS` the model has; returns their names. With static
    shapes, ``size_bucket`` becomes the model's inference padding bucket (``MaskFormer.size_bucket``)."""
    compiled = []
    for name in HEAVY_PARTS:
        try:
            part = model.get_submodule(name)
        except AttributeError:
            continue
        part.compile(backend=backend, dynamic=dynamic, mode=mode)
        compiled.append(name)
    if not dynamic and hasattr(model, "size_bucket"):
        model.size_bucket = size_bucket
    logger.info(f"torch.compile ({backend}, dynamic={dynamic}): {', '.join(compiled)}")
    return compiled
