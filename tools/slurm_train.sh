#!/usr/bin/env bash
# Train on a SLURM cluster: one task per node, each launching one process per GPU.
#
#   sbatch --nodes=1 --ntasks-per-node=1 --gres=gpu:4 --cpus-per-task=32 --time=24:00:00 \
#       --requeue --signal=TERM@300 \
#       tools/slurm_train.sh configs/rein/rein_dinov2_l_citys2acdc_1024_bs8_40k.py train.output_dir=output/acdc
#
# nodes x GPUs per node must divide the recipe's total batch (here 8, trained by Rein as 4 x 2).
#
# --signal=TERM@300 has SLURM send SIGTERM 5 minutes before the time limit (preemption sends it
# too): train_net.py finishes the iteration, writes a checkpoint and exits with status 75, and this
# script requeues the job (--requeue allows that). Every run passes --resume, so a requeued or
# restarted job continues from the last checkpoint. GPUS_PER_NODE and MASTER_PORT may be set in
# the environment.
set -uo pipefail
REQUEUE_EXIT_CODE=75
if [ $# -lt 1 ]; then
  echo "usage: sbatch [slurm options] tools/slurm_train.sh CONFIG [key=value ...]" >&2
  exit 2
fi
CONFIG=$1
shift
export GPUS_PER_NODE=${GPUS_PER_NODE:-$(nvidia-smi -L | wc -l)}
export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export MASTER_PORT=${MASTER_PORT:-29500}
export CONFIG
# $SLURM_NODEID must be read inside each task, hence the single quotes.
srun --kill-on-bad-exit=1 bash -c 'python tools/train_net.py --config-file "$CONFIG" --resume \
  --num-gpus "$GPUS_PER_NODE" --num-machines "$SLURM_JOB_NUM_NODES" --machine-rank "$SLURM_NODEID" \
  --dist-url "tcp://$MASTER_ADDR:$MASTER_PORT" "$@"' _ "$@"
status=$?
if [ "$status" -eq "$REQUEUE_EXIT_CODE" ]; then
  echo "training interrupted after a checkpoint: requeueing job $SLURM_JOB_ID"
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
fi
exit "$status"
