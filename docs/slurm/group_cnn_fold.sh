#!/bin/bash
# Group level, step 2 of 3: one CNN cross-validation fold per GPU job (array task N = fold N).
# Finished folds are reused by later runs with the same configuration, so a failed task can
# simply be resubmitted. Submitted by docs/slurm/submit_group.sh as --array=1-N_FOLDS.
#
#SBATCH --job-name=strokedfc-cnn-fold
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=24:00:00
#SBATCH --output=logs/%x-%A_%a.out
set -euo pipefail
source "${STROKEDFC_SLURM_ENV:-$(dirname "$0")/group_env.sh}"

# --nv: the host's NVIDIA driver and the GPUs SLURM granted (CUDA_VISIBLE_DEVICES) go in.
apptainer run --nv --cleanenv --containall \
  -B "$STUDY:/data:ro" -B "$OUT:/out" -B "$SHARED_WORK:/work" \
  "$SIF" /data /out group -w /work \
  --folds "$SLURM_ARRAY_TASK_ID" \
  --device cuda --num-workers 4 --nthreads "${SLURM_CPUS_PER_TASK:-1}" \
  "${GROUP_ARGS[@]}"
