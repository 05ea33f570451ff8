# The production image of the docker executor, for GPU hosts and RunPod pods: a CUDA runtime base,
# Python 3.11 and the project's locked environment with the gpu extra (unsloth, vllm) under /opt/w2s.
#
#   w2s image build --tag registry.example.com/team/w2s:2026-11     # or: docker build -t ... .
#   w2s image push registry.example.com/team/w2s:2026-11
#   W2S_DOCKER_IMAGE=registry.example.com/team/w2s:2026-11 W2S_DOCKER_PYTHON=/opt/w2s/.venv/bin/python \
#       w2s serve --executor docker
#
# With W2S_DOCKER_PYTHON set, the sandbox runs the idea with this image's interpreter and does not
# mount the host's Python; the library code (core/, ideas/) and the run's inputs are still mounted
# read-only from the host, so the trusted side and the container run the same code.
#
# UNVERIFIED: the development machines reach no registry (the CUDA base image cannot be pulled) and
# have no GPU, so this file has never been built there. The offline image (`w2s image build
# --offline`) is the tested one. No data, labels, results or state are copied in (.dockerignore).
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}

# build-time settings only (ARG, not ENV): the sandbox's environment is exactly what the runner gives it
ARG DEBIAN_FRONTEND=noninteractive
ARG UV_PYTHON_INSTALL_DIR=/opt/python
ARG UV_LINK_MODE=copy
ARG UV_COMPILE_BYTECODE=1
ARG UV_PROJECT_ENVIRONMENT=/opt/w2s/.venv
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /usr/local/bin/uv

WORKDIR /opt/w2s
# dependencies first (cached while only the code changes), then the project itself
COPY pyproject.toml uv.lock README.md ./
RUN uv python install 3.11 \
 && uv sync --frozen --extra gpu --no-dev --no-install-project
COPY core ./core
COPY executors ./executors
COPY ideas ./ideas
COPY cli ./cli
COPY tui ./tui
COPY web ./web
RUN uv sync --frozen --extra gpu --no-dev \
 && chmod -R a+rX /opt/w2s /opt/python

# the sandbox runs every container as a non-root user (the operator's uid, or 65534 for root)
USER 65534:65534
