"""Training loop settings (the ``train`` group)."""

train = dict(
    output_dir="./output",
    init_checkpoint="",  # weights to start from (ignored when --resume finds a checkpoint)
    strict_load=True,  # every model weight must fit; False loads what fits (fine-tuning another head)
    max_iter="???",
    device="auto",  # "auto": cuda if available, else cpu
    seed=0,  # seeds every iteration (seed + iteration), so a resumed run repeats an uninterrupted one
    amp=dict(enabled=True, precision="auto"),  # "auto": bf16 where supported, else fp16; off on CPU
    clip_grad=dict(enabled=False, max_norm=0.01, norm_type=2.0),
    ema=dict(enabled=False, decay=0.9999, start_iter=0),  # average of the trained weights, used for evaluation
    # torch.compile of backbone and head; dynamic=False: inductor's dynamic-shape compile fails on this
    # model in torch 2.14 (a sympy error), so each new input size compiles once (sliding windows share one)
    compile=dict(enabled=False, backend="inductor", dynamic=False),
    ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=False),
    checkpointer=dict(period=4000, max_to_keep=3),
    eval_period=4000,  # 0: evaluate only at the end (--eval-only always evaluates)
    log_period=20,
    write_predictions=None,  # "trainId" or "labelId": write PNG predictions during evaluation
)
