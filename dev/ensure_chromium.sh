#!/usr/bin/env bash
# Debian's chromium for the browser tests (tests/system), installed with apt-get when missing.
# Playwright drives it through its executable path; Playwright's own browser download is never used
# (it cannot reach its CDN here). Needs root (CI runs as root) or passwordless sudo.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "chromium is missing: install Debian's chromium package (apt-get install chromium) as root" >&2
    exit 1
  fi
fi
echo "[ensure_chromium] installing Debian's chromium with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
chromium --version >&2
