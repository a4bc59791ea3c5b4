# syntax=docker/dockerfile:1
# The training image: what DeepSpeedTrainingOperator / DeepSpeedMultiNodeTrainingOperator pods run
# (`image=`), and what `docker run` runs for one GPU. Build from the repository root:
#   docker build -f docker/trainer.Dockerfile -t llmops-trainer .
#
# The pod operators pass the whole argv as the container command (utils/training_pod.trainer_command):
# torchrun (`python -m torch.distributed.run`) or `deepspeed` over
# `-m airflow_provider_llmops.training env:LLMOPS_JOB_SPEC`. Both must be on PATH: the venv below is.
# CMD is that argv for one node and one GPU, so `docker run --gpus 1 -e LLMOPS_JOB_SPEC="$(cat spec.json)"`
# trains exactly like a one-GPU pod; tests/unit/docker/ checks the two stay equal.
#
# CUDA 13 devel: torch 2.15.0 (constraints.txt) is built for CUDA 13 and ships its own runtime
# libraries; nvcc of the same major version lets DeepSpeed JIT-compile ops when a spec asks for them.
ARG CUDA_IMAGE=nvidia/cuda:13.1.1-devel-ubuntu24.04
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

FROM ${CUDA_IMAGE}
# The Python constraints.txt is compiled for (uv installs a standalone CPython; Ubuntu's is 3.12).
ARG PYTHON_VERSION=3.11
ENV DEBIAN_FRONTEND=noninteractive \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH} \
    DS_BUILD_OPS=0

# git: DVC/transformers helpers shell out to it; ninja: DeepSpeed's JIT op builds.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git ninja-build \
    && rm -rf /var/lib/apt/lists/*

COPY --from=uv /uv /usr/local/bin/uv
RUN uv python install "${PYTHON_VERSION}" \
    && uv venv --python "${PYTHON_VERSION}" /opt/venv

# The provider with the [train] extra (and [s3]: s3:// outputs, checkpoints and data), pinned by the
# same constraints.txt the tests install with.
COPY pyproject.toml README.md constraints.txt /opt/airflow-provider-llmops/
COPY airflow_provider_llmops /opt/airflow-provider-llmops/airflow_provider_llmops
RUN uv pip install --python /opt/venv/bin/python \
        -c /opt/airflow-provider-llmops/constraints.txt "/opt/airflow-provider-llmops[train,s3]" \
    && python -c "import deepspeed, torch, transformers, airflow_provider_llmops.training.trainer"

# The pods run as uid/gid 1000 (pod_run_as_user, never root); Ubuntu's own uid-1000 user goes.
RUN (userdel -r ubuntu 2>/dev/null || true) \
    && groupadd --gid 1000 trainer \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/trainer trainer
# The same fixed environment the pod operators set (utils/training_pod.pod_operator_kwargs).
ENV HOME=/home/trainer \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TORCH_NCCL_ASYNC_ERROR_HANDLING=1 \
    TORCH_NCCL_TRACE_BUFFER_SIZE=1000 \
    NCCL_DEBUG=WARN
USER 1000:1000
WORKDIR /home/trainer

# No wrapper: the pod's command replaces ENTRYPOINT anyway, and docker run should run the same argv.
ENTRYPOINT []
CMD ["python", "-m", "torch.distributed.run", "--nproc_per_node", "1", "--standalone", "--nnodes", "1", "-m", "airflow_provider_llmops.training", "env:LLMOPS_JOB_SPEC"]
