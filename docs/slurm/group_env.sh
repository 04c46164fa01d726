#!/bin/bash
# Settings shared by the group-level jobs (sourced by group_*.sh). The CNN options must be the
# same in every job: finished folds are matched to the run by a hash of the configuration.
STUDY=/data/study
OUT=/data/study/derivatives/strokedfc
SIF=/containers/strokedfc-0.1.0.sif
SHARED_WORK=/scratch/$USER/strokedfc-work     # shared file system: holds the group cache
N_FOLDS=10
mkdir -p "$OUT" "$SHARED_WORK"

GROUP_ARGS=(--n-folds "$N_FOLDS" --cv-unit subject --epochs 50 --batch-size 32
  --n-permutations 1000 --fwe-permutations 1000 --random-seed 0)
