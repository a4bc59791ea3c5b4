# syntax=docker/dockerfile:1
# Triton Inference Server 2.51 (NGC 24.10: the release the test harness runs from the nvidia-pytriton
# 0.7.0 wheel) with what the python-backend models of airflow_provider_llmops.serving need.
# Build from the repository root:  docker build -f docker/triton.Dockerfile -t llmops-triton .
#
# TritonDeployOperator publishes models into /models (a volume shared with Airflow, or use an
# s3://... model repository) and loads them itself: the server runs in explicit model-control mode.
#
# The models run on Python 3.11 in a venv (/opt/llmops/model-env) with numpy 1.26, onnxruntime and
# tokenizers at the project's pins; the NGC image's own Python is 3.10, older than those wheels
# support, so the Python 3.11 backend stub comes from the nvidia-pytriton wheel (docker/triton_stub.py),
# exactly as in dev/harness/triton.py. The stub finds the venv through `python3` on PATH.
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3
FROM ${TRITON_IMAGE}
ARG PYTHON_VERSION=3.11
ARG PYTRITON_VERSION=0.7.0
ARG PYTRITON_SHA256=21f063ff93bb426d0c06b7a55e7eb9efcfe62c0dddd9a908e9877e18710128df
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive

# Python 3.11 with its shared libpython (the stub links it) from the deadsnakes PPA for Ubuntu 22.04.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates gnupg software-properties-common \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        "python${PYTHON_VERSION}" "python${PYTHON_VERSION}-venv" "libpython${PYTHON_VERSION}" \
    && rm -rf /var/lib/apt/lists/*

COPY docker/triton-requirements.txt docker/triton_stub.py /opt/llmops/
RUN "python${PYTHON_VERSION}" -m venv /opt/llmops/model-env \
    && /opt/llmops/model-env/bin/python -m pip install --no-cache-dir -r /opt/llmops/triton-requirements.txt

# The stub for Python 3.11, linked into /opt/tritonserver/backends/python.
RUN /opt/llmops/model-env/bin/python -m pip download --no-cache-dir --no-deps --only-binary=:all: \
        -d /tmp/pytriton "nvidia-pytriton==${PYTRITON_VERSION}" \
    && echo "${PYTRITON_SHA256}  /tmp/pytriton/nvidia_pytriton-${PYTRITON_VERSION}-py3-none-manylinux_2_35_x86_64.whl" \
        | sha256sum -c - \
    && python3 /opt/llmops/triton_stub.py \
        "/tmp/pytriton/nvidia_pytriton-${PYTRITON_VERSION}-py3-none-manylinux_2_35_x86_64.whl" \
        "/opt/pytriton-${PYTRITON_VERSION}" /opt/tritonserver/backends/python "${PYTHON_VERSION}" \
    && rm -rf /tmp/pytriton

ENV PATH=/opt/llmops/model-env/bin:${PATH}
# Group-0 writable, like the Airflow image's /models: either image may initialise the shared volume.
RUN mkdir -p /models && chgrp 0 /models && chmod 2775 /models
EXPOSE 8000 8001 8002
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit", "--strict-readiness=true"]
