#!/usr/bin/env bash
# Refresh the lock files from pyproject.toml with pip-compile (pip-tools), following this machine's pip
# configuration, so torch is the CPU build pip serves here (pinned by requirements/cpu.txt).
#   bash scripts/lock.sh              keep every pin that pyproject.toml still allows; add or drop what changed
#   bash scripts/lock.sh --upgrade    move every pin to the newest allowed version
# Writes requirements/runtime.txt (what `spev` needs) and requirements/dev.txt (+ tests, ray, bench), both with
# hashes and with pip/setuptools pinned; dev.txt is resolved within runtime.txt so the two never disagree.
# tests/test_lock.py re-resolves both and fails when they and pyproject.toml disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import piptools" 2>/dev/null || { echo "lock.sh: needs pip-tools (bash scripts/install.sh test)" >&2; exit 1; }
compile() {
  local log
  log=$(mktemp)
  if ! python -m piptools compile --quiet --generate-hashes --allow-unsafe --strip-extras \
    --no-emit-index-url --no-emit-find-links -c requirements/cpu.txt "$@" pyproject.toml >"$log" 2>&1; then
    grep -v "is ignored: it is neither" "$log" >&2
    rm -f "$log"
    echo "lock.sh: pip-compile $* failed" >&2
    exit 1
  fi
  rm -f "$log"
}
compile "$@" -o requirements/runtime.txt
compile "$@" --extra test --extra ray --extra bench -c requirements/runtime.txt -o requirements/dev.txt
echo "lock.sh: requirements/runtime.txt ($(grep -c '^[a-z]' requirements/runtime.txt) packages)," \
  "requirements/dev.txt ($(grep -c '^[a-z]' requirements/dev.txt) packages)"
