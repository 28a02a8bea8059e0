"""Training loop settings (the ``train`` group)."""

train = dict(
    output_dir="./output",
    init_checkpoint="",  # weights to start from (ignored when --resume finds a checkpoint)
    strict_load=True,  # every model weight must fit; False loads what fits (fine-tuning another head)
    max_iter="???",
    device="auto",  # "auto": cuda if available, else cpu
    seed=0,  # seeds every iteration (seed + iteration), so a resumed run repeats an uninterrupted one
    # "fp32": the reference recipes train in float32 (Rein, SoMA, VLTSeg re-implementation: mmengine's
    # plain OptimWrapper). "bf16" (GPU or CPU; 1.5-1.7x for the ViT-L recipes on a CPU with AVX512-BF16,
    # its effect on accuracy in docs/fidelity.md), "fp16" (GPU), "auto" (bf16 where the GPU supports it)
    amp=dict(enabled=True, precision="fp32"),
    clip_grad=dict(enabled=False, max_norm=0.01, norm_type=2.0),
    ema=dict(enabled=False, decay=0.9999, start_iter=0),  # average of the trained weights, used for evaluation
    # SoMA's weight decay annealed by a cosine to eta_min over train.max_iter (every group, see engine/schedule.py)
    cosine_weight_decay=dict(enabled=False, eta_min=1e-5),
    # torch.compile of backbone and head. dynamic=False (static shapes): inductor's dynamic-shape compile
    # fails on interpolate + grid_sample in torch 2.14 (pytorch/pytorch#185510), so inference pads frames
    # to multiples of size_bucket and compiles once per bucket (training crops and windows: one size)
    compile=dict(enabled=False, backend="inductor", dynamic=False, size_bucket=128),
    ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=False),
    checkpointer=dict(period=4000, max_to_keep=3),
    eval_period=4000,  # 0: evaluate only at the end (--eval-only always evaluates)
    log_period=20,
    write_predictions=None,  # "trainId" or "labelId": write PNG predictions during evaluation
)
