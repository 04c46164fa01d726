#!/bin/bash
# Group level, step 3 of 3: aggregate the finished folds (no --folds), then connectivity
# states, statistics and group.html. Runs after all fold jobs succeeded (afterok).
#
#SBATCH --job-name=strokedfc-group-aggregate
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=12:00:00
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
source "${STROKEDFC_SLURM_ENV:-$(dirname "$0")/group_env.sh}"

apptainer run --cleanenv --containall \
  -B "$STUDY:/data:ro" -B "$OUT:/out" -B "$SHARED_WORK:/work" \
  "$SIF" /data /out group -w /work \
  --device cpu --nthreads "${SLURM_CPUS_PER_TASK:-1}" \
  "${GROUP_ARGS[@]}"
