#!/usr/bin/env bash
# The README's first command: set everything up, then materialize the whole pipeline over
# the embedded real data (S&P 500 stocks, index and factors shipped in PyPI packages).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export BETA_PIPELINE_HOME="${BETA_PIPELINE_HOME:-$PWD/.beta_pipeline}"
.venv/bin/beta-pipeline run "$@"
echo
echo "Done. Open the UI:      .venv/bin/beta-pipeline ui      (http://127.0.0.1:3000)"
echo "Query the warehouse:    .venv/bin/beta-pipeline query \"SELECT * FROM returns.monthly LIMIT 5\""
