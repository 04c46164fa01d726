#!/usr/bin/env bash
# The demo: generate the bundled synthetic dataset and run both levels of strokedfc on it.
# Usage: scripts/demo.sh VENV DEMO_DIR   (called by `make demo`)
set -euo pipefail
VENV=${1:-.venv}
DEMO=${2:-demo}
BIN="$VENV/bin"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
start=$(date +%s)
rm -rf "$DEMO"
mkdir -p "$DEMO"

echo "== 1/3 synthetic BIDS dataset with fMRIPrep derivatives -> $DEMO/bids"
"$BIN/strokedfc-demo-data" "$DEMO/bids" --participants "${DEMO_PARTICIPANTS:-20}" --random-seed 0

echo "== 2/3 participant level -> $DEMO/derivatives/strokedfc"
"$BIN/strokedfc" "$DEMO/bids" "$DEMO/derivatives/strokedfc" participant \
  --lesion-dir "$DEMO/bids/derivatives/lesions" -w "$DEMO/work" \
  --dummy-scans auto --resolution "${DEMO_RESOLUTION:-6}" --window-step "${DEMO_WINDOW_STEP:-3}" \
  --nprocs 2 --random-seed 0

echo "== 3/3 group level (CPU-sized 3D CNN, subject-level CV, states, statistics)"
"$BIN/strokedfc" "$DEMO/bids" "$DEMO/derivatives/strokedfc" group -w "$DEMO/work" \
  --width-multiplier 0.0625 --fc-width 32 --epochs "${DEMO_EPOCHS:-5}" --batch-size 32 \
  --n-folds 3 --n-permutations 200 --num-workers 0 --nthreads 2 --device cpu \
  --kmeans-replicates 3 --k-range 2 5 --cluster-size 10 --fwe-permutations 100 \
  --random-seed 0

end=$(date +%s)
echo
echo "Demo finished in $((end - start)) s. Open:"
echo "  $DEMO/derivatives/strokedfc/sub-01.html      (participant report)"
echo "  $DEMO/derivatives/strokedfc/group.html       (group report)"
