#!/usr/bin/env bash
# Provider load, example-DAG parse and one dag.test() on the oldest supported Airflow.
# A second venv (.venv-floor) pinned by dev/floor/constraints.txt; reinstalled only when the
# pins or the project metadata change. Regenerate the pins with:
#   .venv/bin/uv pip compile pyproject.toml dev/floor/requirements.in -o dev/floor/constraints.txt \
#     --python-version 3.11 --no-header --exclude-newer 2026-06-01T00:00:00Z \
#     --exclude-newer-package apache-airflow-providers-elasticsearch=2026-11-01T00:00:00Z
set -euo pipefail
cd "$(dirname "$0")/../.."
source dev/bootstrap.sh
FLOOR="$REPO_ROOT/.venv-floor"
if [ ! -x "$FLOOR/bin/python" ]; then
  "$PYTHON" -m venv "$FLOOR"
fi
stamp="$FLOOR/.llmops-install-stamp"
want="$(cat dev/floor/constraints.txt dev/floor/requirements.in pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing the provider on the floor Airflow into $FLOOR"
  uv pip install --quiet --python "$FLOOR/bin/python" -c dev/floor/constraints.txt -r dev/floor/requirements.in -e .
  "$FLOOR/bin/python" -m compileall -q -j 0 "$FLOOR/lib" >/dev/null || true
  echo "$want" > "$stamp"
fi
# The floor venv's own `airflow` and `dvc` come first; the harness runs them by name.
PATH="$FLOOR/bin:$PATH" LLMOPS_WORK_DIR="$REPO_ROOT/.llmops/floor" "$FLOOR/bin/python" -m dev.floor.smoke
