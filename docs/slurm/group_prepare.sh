#!/bin/bash
# Group level, step 1 of 3 (CPU): cohort, the memory-mapped window cache in the shared work
# directory, demographics and lesion overlap. The fold jobs (step 2) then read the cache
# instead of all building it at once. Submitted by docs/slurm/submit_group.sh.
#
#SBATCH --job-name=strokedfc-group-prepare
#SBATCH --cpus-per-task=4
#SBATCH --mem=32G
#SBATCH --time=02:00:00
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
source "${STROKEDFC_SLURM_ENV:-$(dirname "$0")/group_env.sh}"

apptainer run --cleanenv --containall \
  -B "$STUDY:/data:ro" -B "$OUT:/out" -B "$SHARED_WORK:/work" \
  "$SIF" /data /out group -w /work --skip-cnn --skip-states "${GROUP_ARGS[@]}"
