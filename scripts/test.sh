#!/usr/bin/env bash
# The test command: install what tests need, then lint, type-check and run the suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
ruff check .
ruff format --check .
mypy
python -m pytest -q -p no:cacheprovider "$@"
