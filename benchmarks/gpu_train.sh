#!/usr/bin/env bash
# One-GPU fine-tune benchmark: a ~1.1B-parameter causal LM built from a config (no downloads), ZeRO-2
# bf16, the provider's trainer vs a plain DeepSpeed loop for about two minutes each; prints tokens/s,
# MFU and the ratio. Meant for a machine with no network (e.g. the device tool's H200 image: Python
# 3.12, torch 2.11, transformers 5.x, no deepspeed).
#
#   bash benchmarks/gpu_train.sh --prepare   # here, with network: wheels the GPU image lacks
#   bash benchmarks/gpu_train.sh             # there, from the repo root, with .llmops/wheels carried
#
# Environment: SECONDS_PER_RUN (default 120), PEAK_TFLOPS (default 989), MICRO (8), SEQ (2048).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WHEELS=.llmops/wheels

if [ "${1:-}" = "--prepare" ]; then
  mkdir -p "$WHEELS"
  PY=.venv/bin/python
  # deepspeed is source-only on PyPI; without its ops built ahead it is a pure-Python wheel.
  DS_BUILD_OPS=0 "$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$WHEELS" deepspeed==0.19.8
  # deepspeed's dependencies that the GPU image does not ship (it has torch, numpy, ninja, psutil, ...),
  # resolved with their own dependencies so pydantic gets the pydantic-core it pins.
  "$PY" -m pip download --quiet --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --implementation cp -d "$WHEELS" \
    hjson "pydantic>=2,<3"
  ls -la "$WHEELS"
  du -sh "$WHEELS"
  exit 0
fi

python3 -c "import torch; assert torch.cuda.is_available(), 'no GPU visible'; print('torch', torch.__version__, torch.cuda.get_device_name())"
SITE="${TMPDIR:-/tmp}/llmops-gpu-site"
if ! python3 -c "import deepspeed" 2>/dev/null; then
  [ -d "$WHEELS" ] || { echo "no $WHEELS: run 'bash benchmarks/gpu_train.sh --prepare' where there is network, and carry it" >&2; exit 2; }
  python3 -m pip install --quiet --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec python3 -m benchmarks.bench_train gpu --seconds "${SECONDS_PER_RUN:-120}" --micro "${MICRO:-8}" --seq "${SEQ:-2048}"
