#!/bin/bash
# Participant level for a whole (small) study in ONE allocation, nipype's MultiProc plugin
# configured from a plugin file (--use-plugin) instead of --nprocs.
#
#   sbatch docs/slurm/participant_plugin.sh
#
# The plugin file (docs/slurm/multiproc.toml) holds nipype's plugin name and arguments:
#   plugin = "MultiProc"
#   [plugin_args]
#   n_procs = 16
#   memory_gb = 60
#   raise_insufficient = false
# YAML works too (plugin: MultiProc / plugin_args: {n_procs: 16, memory_gb: 60}).
#
#SBATCH --job-name=strokedfc-participants
#SBATCH --cpus-per-task=16
#SBATCH --mem=64G
#SBATCH --time=12:00:00
#SBATCH --output=logs/%x-%j.out
set -euo pipefail

STUDY=/data/study
OUT=/data/study/derivatives/strokedfc
SIF=/containers/strokedfc-0.1.0.sif
PLUGIN="$(cd "$(dirname "$0")" && pwd)/multiproc.toml"
WORK="${TMPDIR:-/tmp}/strokedfc-work-${SLURM_JOB_ID}"
mkdir -p "$WORK" "$OUT"

apptainer run --cleanenv --containall \
  -B "$STUDY:/data:ro" -B "$OUT:/out" -B "$WORK:/work" -B "$PLUGIN:/plugin.toml:ro" \
  "$SIF" /data /out participant \
  --lesion-dir /data/derivatives/lesions \
  -w /work \
  --use-plugin /plugin.toml \
  --omp-nthreads 1 --random-seed 0

rm -rf "$WORK"
