#!/usr/bin/env bash
# Create .venv (Python 3.11) and install beta_pipeline with its pinned dependencies.
# torch is installed first, pinned to the CPU build 2.13.0, so that lightning does not pull
# a CUDA build. Re-running is cheap: an up-to-date venv is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.beta_pipeline_installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> installing torch 2.13.0 (CPU) and beta_pipeline[dev] (a few minutes the first time)"
  .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install --quiet torch==2.13.0
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  touch "$stamp"
else
  echo "==> .venv is up to date"
fi
