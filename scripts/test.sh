#!/usr/bin/env bash
# The README's second command (and CI's): set everything up, lint, run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m ruff check beta_pipeline beta_pipeline_tests benchmarks
# two workers, one test file each at a time (module fixtures stay in one process)
.venv/bin/python -m pytest -n 2 --dist loadfile "$@"
