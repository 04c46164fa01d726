#!/bin/bash
# Group level CNN on several GPUs of one node with torchrun (DistributedDataParallel: one
# process per GPU, NCCL; evaluation is sharded over the processes, rank 0 writes the outputs).
# All folds run in this job; add --folds K to spread folds over jobs as in group_cnn_fold.sh.
#
#   sbatch docs/slurm/group_torchrun.sh
#
#SBATCH --job-name=strokedfc-cnn-ddp
#SBATCH --nodes=1
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=32
#SBATCH --mem=128G
#SBATCH --time=24:00:00
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
source "${STROKEDFC_SLURM_ENV:-$(dirname "$0")/group_env.sh}"
NGPU=${SLURM_GPUS_ON_NODE:-4}

# torchrun is installed in the image next to strokedfc (/opt/venv/bin); it sets RANK,
# LOCAL_RANK and WORLD_SIZE, which strokedfc reads. --nthreads: CPU threads per process.
apptainer exec --nv --cleanenv --containall \
  -B "$STUDY:/data:ro" -B "$OUT:/out" -B "$SHARED_WORK:/work" \
  "$SIF" torchrun --standalone --nnodes 1 --nproc-per-node "$NGPU" /opt/venv/bin/strokedfc \
  /data /out group -w /work \
  --device cuda --num-workers 4 --nthreads 4 \
  "${GROUP_ARGS[@]}"
