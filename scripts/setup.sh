#!/usr/bin/env bash
# One-time (idempotent) set-up: the CPU build of torch where no torch is present, then this project.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
    # an unpinned `torch` would pull the multi-GB CUDA build; 2.13.0 resolves to the CPU wheel here
    "$PY" -m pip install -q "torch==2.13.0"
fi
"$PY" -m pip install -q -e ".[test]"
