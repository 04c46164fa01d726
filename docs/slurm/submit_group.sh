#!/bin/bash
# Submit the group level as three dependent steps:
#   prepare (CPU) -> N_FOLDS GPU fold jobs (array) -> aggregate (CPU), each afterok.
#
#   bash docs/slurm/submit_group.sh
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p logs
source ./group_env.sh

prep=$(sbatch --parsable group_prepare.sh)
folds=$(sbatch --parsable --dependency=afterok:"$prep" --array=1-"$N_FOLDS" group_cnn_fold.sh)
agg=$(sbatch --parsable --dependency=afterok:"$folds" group_aggregate.sh)
echo "prepare $prep -> folds $folds (array 1-$N_FOLDS) -> aggregate $agg"
