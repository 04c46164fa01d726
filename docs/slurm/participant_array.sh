#!/bin/bash
# Participant level as a SLURM job array: one participant per array task.
# Task N processes the participant on line N+1 of participants.tsv (line 1 is the header).
#
#   n=$(($(wc -l < /data/study/participants.tsv) - 1))
#   sbatch --array=1-"$n"%50 docs/slurm/participant_array.sh
#
#SBATCH --job-name=strokedfc-participant
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=02:00:00
#SBATCH --output=logs/%x-%A_%a.out
set -euo pipefail

STUDY=/data/study                                  # raw BIDS (participants.tsv at the root)
OUT=/data/study/derivatives/strokedfc              # shared by all tasks
SIF=/containers/strokedfc-0.1.0.sif
WORK="${TMPDIR:-/tmp}/strokedfc-work-${SLURM_ARRAY_JOB_ID}-${SLURM_ARRAY_TASK_ID}"  # node-local

LABEL=$(awk -F'\t' -v n="$((SLURM_ARRAY_TASK_ID + 1))" 'NR == n {print $1}' \
  "$STUDY/participants.tsv")
LABEL=${LABEL#sub-}
[ -n "$LABEL" ] || { echo "no participant on line $((SLURM_ARRAY_TASK_ID + 1))" >&2; exit 1; }
mkdir -p "$WORK" "$OUT"

# --cleanenv: host variables (PYTHONPATH, OMP_NUM_THREADS ...) do not leak in; the image sets
# its own. The input is bound read-only.
apptainer run --cleanenv --containall \
  -B "$STUDY:/data:ro" -B "$OUT:/out" -B "$WORK:/work" \
  "$SIF" /data /out participant \
  --participant-label "$LABEL" \
  --lesion-dir /data/derivatives/lesions \
  -w /work \
  --nprocs "${SLURM_CPUS_PER_TASK:-1}" --omp-nthreads 1 \
  --random-seed 0

rm -rf "$WORK"
