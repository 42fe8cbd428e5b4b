# syntax=docker/dockerfile:1.7
# PixTools service images: one Dockerfile for all five services. Build from the repository root,
# naming the service (a package under services/) with SERVICE (default gateway):
#   docker build --build-arg SERVICE=gateway -t pixtools/gateway .
#   docker build --build-arg SERVICE=denoise -t pixtools/denoise .                     # CPU torch
#   docker build --build-arg SERVICE=denoise --target gpu -t pixtools/denoise:cuda .   # CUDA torch
#
# Targets:
#   runtime (the default): any service. Only a service whose pyproject.toml depends on torch gets
#     it, and then the CPU wheel (TORCH_CPU_INDEX_URL).
#   gpu: denoise and detect, with the CUDA wheel (TORCH_CUDA_INDEX_URL, default CUDA 12.8). The CUDA
#     wheels carry their own CUDA runtime, so the slim base still works; the host only needs the
#     NVIDIA driver and container toolkit.
# TORCH_VERSION optionally pins an exact torch release, e.g. 2.7.1; empty takes the newest on the index.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# A default keeps `docker build .` valid (BuildKit's InvalidDefaultArgInFrom check); compose and docs always name one.
ARG SERVICE=gateway

# ---- builder: a compiler and the service's own pyproject.toml ----------------
FROM ${PYTHON_IMAGE} AS builder
ARG SERVICE
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# A compiler only for dependencies that ship no wheel for this platform.
# Debian package versions follow the base image's release; they are not pinned here.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The pyproject.toml alone decides whether torch is needed, so the torch layer survives source edits.
COPY services/${SERVICE}/pyproject.toml services/${SERVICE}/pyproject.toml

# ---- wheels: every wheel the service needs, torch from the CPU or CUDA index --
# torch comes first, and only for a service that depends on it. Its exact version (with the
# +cpu/+cuXXX label) then becomes a constraint, so resolving the service cannot swap in the
# default PyPI build. Every shared library under libs/ is passed by path, so no pixtools-* name
# is ever looked up on PyPI; the runtime stage installs only what the service's package requires.
FROM builder AS wheels-cpu
ARG SERVICE
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=
RUN --mount=type=cache,target=/root/.cache/pip \
    mkdir /wheels && touch /wheels/constraints.txt \
 && if grep -q '"torch[^a-z_-]' "services/${SERVICE}/pyproject.toml"; then \
      pip wheel --wheel-dir /wheels --index-url "${TORCH_CPU_INDEX_URL}" "torch${TORCH_VERSION:+==${TORCH_VERSION}}" \
      && torch_wheel="$(ls /wheels/torch-*.whl)" && torch_version="${torch_wheel##*/torch-}" \
      && echo "torch==${torch_version%%-*}" > /wheels/constraints.txt; \
    fi
COPY libs libs
COPY services/${SERVICE} services/${SERVICE}
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels --find-links /wheels --constraint /wheels/constraints.txt ./libs/* "./services/${SERVICE}"

FROM builder AS wheels-gpu
ARG SERVICE
ARG TORCH_CUDA_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG TORCH_VERSION=
RUN --mount=type=cache,target=/root/.cache/pip \
    grep -q '"torch[^a-z_-]' "services/${SERVICE}/pyproject.toml" \
      || { echo "SERVICE=${SERVICE} does not use torch: build the runtime target" >&2; exit 1; } \
 && pip wheel --wheel-dir /wheels --index-url "${TORCH_CUDA_INDEX_URL}" "torch${TORCH_VERSION:+==${TORCH_VERSION}}" \
 && torch_wheel="$(ls /wheels/torch-*.whl)" && torch_version="${torch_wheel##*/torch-}" \
 && echo "torch==${torch_version%%-*}" > /wheels/constraints.txt
COPY libs libs
COPY services/${SERVICE} services/${SERVICE}
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels --find-links /wheels --constraint /wheels/constraints.txt ./libs/* "./services/${SERVICE}"

# ---- runtime base: slim, non-root, no compilers ------------------------------
FROM ${PYTHON_IMAGE} AS runtime-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    XDG_CACHE_HOME=/tmp/.cache
# tini forwards SIGTERM to the service so it can drain, and reaps zombies.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 pixtools \
 && useradd --system --uid 10001 --gid pixtools --create-home --home-dir /home/pixtools \
      --shell /usr/sbin/nologin pixtools
WORKDIR /home/pixtools
ENTRYPOINT ["tini", "--"]

# ---- one stage per service: port, health check and command -------------------
# gateway: HTTP API on :8000 (also runs the outbox relay) and the `pixtools-admin` command
# (migrate, create-tenant, seed-dev).
FROM runtime-base AS service-gateway
ENV PIXTOOLS_HOST=0.0.0.0 \
    PIXTOOLS_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["pixtools-gateway"]

# ingest: safe URL fetching, decoding, normalising and the CPU operations. Ops endpoints
# (/healthz, /readyz, /metrics) on :9101.
FROM runtime-base AS service-ingest
ENV PIXTOOLS_OPS_PORT=9101
EXPOSE 9101
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9101/healthz', timeout=4)"]
CMD ["pixtools-ingest"]

# aggregator: job state machine, terminal events and webhooks. Ops endpoints on :9102.
FROM runtime-base AS service-aggregator
ENV PIXTOOLS_OPS_PORT=9102
EXPOSE 9102
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9102/healthz', timeout=4)"]
CMD ["pixtools-aggregator"]

# denoise and detect: model weights are mounted read-only at /models at run time. Loading them
# (and CUDA start-up) takes a while: a longer start period.
FROM runtime-base AS model-base
ENV PIXTOOLS_MODELS_DIR=/models
RUN install -d -o 10001 -g 10001 /models

# denoise: DnCNN, tiled and batched, on a GPU when one is present and on CPU otherwise.
# Ops endpoints on :9103.
FROM model-base AS service-denoise
ENV PIXTOOLS_OPS_PORT=9103
EXPOSE 9103
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9103/healthz', timeout=4)"]
CMD ["pixtools-denoise", "serve"]

# detect: YOLOX-Nano with sliced inference, on a GPU when one is present and on CPU otherwise.
# Ops endpoints on :9104.
FROM model-base AS service-detect
ENV PIXTOOLS_OPS_PORT=9104
EXPOSE 9104
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9104/healthz', timeout=4)"]
CMD ["pixtools-detect", "serve"]

# ---- targets: the service's stage plus its wheels ----------------------------
# Install from the builder's wheels without copying them into a layer; the builder resolved
# every version, and --no-index allows nothing else.
# SERVICE names one of the service-* stages above, not an image: nothing to tag.
# hadolint ignore=DL3006
FROM service-${SERVICE} AS gpu
ARG SERVICE
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility
# hadolint ignore=DL3013
RUN --mount=type=bind,from=wheels-gpu,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels --constraint /wheels/constraints.txt "pixtools-${SERVICE}"
USER 10001:10001

# The last stage is the default target.
# hadolint ignore=DL3006
FROM service-${SERVICE} AS runtime
ARG SERVICE
# hadolint ignore=DL3013
RUN --mount=type=bind,from=wheels-cpu,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels --constraint /wheels/constraints.txt "pixtools-${SERVICE}"
USER 10001:10001
