#!/usr/bin/env bash
# The test command (README; .ci/run calls it): set-up, lint, the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 -m ruff check .
python3 -m pytest -q -p no:cacheprovider "$@"
