# The taiyi-ray image: CUDA devel (nvcc) plus a C compiler, which Triton needs at run time (torch.compile,
# liger-kernel), CPython 3.11, this package with its `gpu` extra (liger-kernel, bitsandbytes) and exact
# pins (constraints.txt), a CUDA build of torch, flash-attn compiled against it (build argument
# WITH_FLASH_ATTN=0 leaves it out: its build takes long), running as the non-root user `ray` (uid 1000).
# It serves as head, worker, job submitter and Serve replica alike (k8s/), with the repo's jobs/ and configs/ in
# the working directory /app, where the RayJob entrypoints `python jobs/<job>.py --config configs/...` run.
#
#   docker build -t taiyi-ray:0.1.0-cu130 .        (tag: <package version>-<CUDA variant>)
#   docker build --build-arg WITH_FLASH_ATTN=0 -t taiyi-ray:0.1.0-cu130-noflash .
#
# This image has never been built by the project's CI (no Docker engine there): only the offline rules of
# taiyi_ray/deploy/dockerfile.py check it.
#
# No secrets go into the image: S3 keys and the Serve API key come from Kubernetes Secrets at run time.
FROM ghcr.io/astral-sh/uv:0.11.7 AS uv

FROM nvidia/cuda:13.0.1-cudnn-devel-ubuntu24.04

ARG PYTHON_VERSION=3.11.14
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
ARG WITH_FLASH_ATTN=1
ARG FLASH_ATTN_VERSION=2.8.3.post2

ENV DEBIAN_FRONTEND=noninteractive \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    AWS_EC2_METADATA_DISABLED=true \
    DS_BUILD_OPS=0

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini build-essential \
    && rm -rf /var/lib/apt/lists/*

COPY --from=uv /uv /usr/local/bin/uv
RUN uv venv --python "${PYTHON_VERSION}" /opt/venv

# torch first, from the CUDA index: constraints.txt pins the same version (its CPU build for CI).
RUN uv pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

WORKDIR /app
# Dependencies before the code, so editing the code does not re-install them.
COPY pyproject.toml constraints.txt README.md ./
COPY taiyi_ray ./taiyi_ray
# jobs/ is part of the build: pyproject.toml installs the recipes as taiyi_ray.jobs (`taiyi-ray <job>`).
COPY jobs ./jobs
RUN uv pip install --constraint constraints.txt ".[gpu]"
# flash-attn builds against the torch above (no build isolation), or takes its release's prebuilt wheel.
RUN if [ "${WITH_FLASH_ATTN}" = "1" ]; then \
      uv pip install --constraint constraints.txt ninja packaging psutil \
      && MAX_JOBS=8 uv pip install --no-build-isolation --constraint constraints.txt "flash-attn==${FLASH_ATTN_VERSION}"; \
    fi

COPY configs ./configs

# Ubuntu 24.04 images ship a user `ubuntu` with uid 1000: it becomes `ray`, the uid the manifests run as.
RUN usermod --login ray --home /home/ray --move-home ubuntu \
    && groupmod --new-name ray ubuntu \
    && mkdir -p /app/runs /tmp/ray \
    && chown -R ray:ray /app/runs /tmp/ray
USER 1000:1000
ENV HOME=/home/ray

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "jobs/pipeline.py", "--config", "configs/demo.yaml"]
