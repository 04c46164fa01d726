# strokedfc BIDS App image (docs/containers.md).
#
#   docker build -t strokedfc:0.1.0 .                                   # CUDA torch (default index)
#   docker build -t strokedfc:0.1.0-cpu \
#       --build-arg TORCH_SPEC="torch==2.13.0+cpu" \
#       --build-arg PIP_EXTRA_INDEX_URL="<the PyTorch CPU wheel index>" .
#   podman build --volume /opt/wheels:/wheels:ro --build-arg PIP_FIND_LINKS=/wheels \
#       --build-arg TORCH_SPEC="torch==2.13.0+cpu" -t strokedfc:0.1.0-cpu .  # local wheel dir
#
# Stages: builder (venv at /opt/venv with the dependencies) -> wheel (the package) and
# templateflow (TEMPLATEFLOW_HOME at /opt/templateflow) -> runtime (python3, the venv, the
# package installed from the wheel, non-root user, ENTRYPOINT strokedfc).
ARG BASE_IMAGE=debian:bookworm-slim

# --------------------------------------------------------------------------------- builder
FROM ${BASE_IMAGE} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# DL3008: the distribution's python3 (3.11 on bookworm) is what we want, at whatever patch
# level the base image's release carries; pinning Debian patch versions breaks with every
# point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# torch comes from TORCH_SPEC: "torch==2.13.0" from the default index is the CUDA build on
# Linux x86_64; "torch==2.13.0+cpu" needs a wheel dir (PIP_FIND_LINKS) or an extra index.
ARG TORCH_SPEC="torch==2.13.0"
# Optional pip sources (empty: pip's defaults). A wheel dir given in PIP_FIND_LINKS must be
# mounted at build time (podman build --volume DIR:/wheels:ro).
ARG PIP_FIND_LINKS=""
ARG PIP_INDEX_URL=""
ARG PIP_EXTRA_INDEX_URL=""
ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY requirements/constraints.txt setup.cfg pyproject.toml ./

# 1. torch alone (from TORCH_SPEC), with every other pin from the constraints file; the
#    constraints' own torch pin is dropped so that a "+cpu" or other local build can win.
# 2. the package's dependencies (install_requires from setup.cfg, torch excluded) in their own
#    layer, so that code changes do not reinstall them.
# DL3013: every version is pinned by requirements/constraints.txt (-c); TORCH_SPEC is pinned.
# hadolint ignore=DL3013
RUN python3 -m venv /opt/venv \
    && grep -v -i -E '^torch([=<>!~ ]|$)' constraints.txt > /tmp/constraints-notorch.txt \
    && python3 -c "import configparser; c = configparser.ConfigParser(); c.read('setup.cfg'); print(c['options']['install_requires'])" \
       | grep -v -i -E '^ *torch([=<>!~ ]|$)' | sed '/^ *$/d' > /tmp/requirements.txt \
    && { [ -n "$PIP_FIND_LINKS" ] || unset PIP_FIND_LINKS; } \
    && { [ -n "$PIP_INDEX_URL" ] || unset PIP_INDEX_URL; } \
    && { [ -n "$PIP_EXTRA_INDEX_URL" ] || unset PIP_EXTRA_INDEX_URL; } \
    && pip install -c /tmp/constraints-notorch.txt "${TORCH_SPEC}" \
    && pip install -c /tmp/constraints-notorch.txt -r /tmp/requirements.txt \
    && python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

# ------------------------------------------------------------------------------------ wheel
# The package itself, built as a wheel in its own stage: a code change rebuilds only this
# and the last layers of the runtime stage, never the dependency layers.
FROM builder AS wheel
# .dockerignore lets only the package sources, metadata, README and LICENSE through.
COPY . ./
RUN { [ -n "$PIP_FIND_LINKS" ] || unset PIP_FIND_LINKS; } \
    && { [ -n "$PIP_INDEX_URL" ] || unset PIP_INDEX_URL; } \
    && { [ -n "$PIP_EXTRA_INDEX_URL" ] || unset PIP_EXTRA_INDEX_URL; } \
    && pip wheel --no-deps --wheel-dir /wheelhouse .

# ----------------------------------------------------------------------------- templateflow
FROM builder AS templateflow
# 1: fetch what the app needs into TEMPLATEFLOW_HOME so the image runs with --network none.
# 0: only lay down TemplateFlow's (bundled) skeleton; the app then uses what installed
#    packages ship. Space-separated "template:resolution" pairs.
ARG TEMPLATEFLOW_FETCH=1
ARG TEMPLATEFLOW_TEMPLATES="MNI152NLin2009cAsym:2"
ENV TEMPLATEFLOW_HOME=/opt/templateflow
RUN mkdir -p /opt/templateflow \
    && python -W ignore -c "import templateflow.conf" \
    && if [ "${TEMPLATEFLOW_FETCH}" = "1" ]; then \
         for item in ${TEMPLATEFLOW_TEMPLATES}; do \
           python -c "import sys, templateflow.api as tf; t, r = sys.argv[1].split(':'); \
print(tf.get(t, resolution=int(r), suffix='T1w', desc=None, extension='.nii.gz')); \
print(tf.get(t, resolution=int(r), suffix='mask', desc='brain', extension='.nii.gz'))" "$item"; \
         done; \
       fi \
    && chmod -R a+rX /opt/templateflow

# ---------------------------------------------------------------------------------- runtime
FROM ${BASE_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG VERSION=0.1.0
ARG CONTAINER_TAG="strokedfc:${VERSION}"

LABEL org.opencontainers.image.title="strokedfc" \
      org.opencontainers.image.description="BIDS App: sliding-window seed-based dynamic FC of stroke rs-fMRI and 3D-CNN grading of upper-limb motor impairment" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/strokedfc/strokedfc" \
      org.opencontainers.image.url="https://github.com/strokedfc/strokedfc" \
      org.opencontainers.image.licenses="Apache-2.0"

# DL3008: see the builder stage (distribution python3, not pinned to a Debian patch level).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin strokedfc \
    && install -d -m 1777 /work

COPY --from=builder /opt/venv /opt/venv
COPY --from=templateflow /opt/templateflow /opt/templateflow
COPY --from=wheel /wheelhouse /tmp/wheelhouse
# DL3013: the wheel is this very build of the package (its dependencies are already pinned).
# hadolint ignore=DL3013
RUN /opt/venv/bin/pip install --no-cache-dir --no-index --no-deps /tmp/wheelhouse/*.whl \
    && /opt/venv/bin/pip check \
    && rm -rf /tmp/wheelhouse \
    && /opt/venv/bin/strokedfc --version

# Everything a run writes goes to the output/work directories or /tmp: the image works with an
# arbitrary --user, a read-only root file system and a tmpfs /tmp. One thread per process
# (nipype's --nprocs/--omp-nthreads and the CNN's --nthreads control parallelism).
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    TORCH_HOME=/tmp/torch \
    NIPYPE_NO_ET=1 \
    TEMPLATEFLOW_HOME=/opt/templateflow \
    TEMPLATEFLOW_AUTOUPDATE=0 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    STROKEDFC_CONTAINER_TAG=${CONTAINER_TAG}

USER 1000:1000
WORKDIR /work
ENTRYPOINT ["strokedfc"]
CMD ["--help"]
