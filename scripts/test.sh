#!/usr/bin/env bash
# The test command: install what the tests need from the lock, then lint, type-check and run the suite (CI).
#   bash scripts/test.sh [PYTEST ARGS]   in the current Python (a venv is best): the lock, then the checks
#   bash scripts/test.sh --latest        a throwaway venv with the newest versions pyproject.toml allows
#   bash scripts/test.sh --lowest        a throwaway venv with the lowest versions pyproject.toml allows
# --latest and --lowest are not run by CI; they show whether pyproject.toml's ranges are honest.  torch stays on
# the CPU build this machine's pip serves (requirements/cpu.txt) in every variant: PyPI's Linux wheels are CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."

checks() {
  ruff check .
  ruff format --check .
  # Types are checked against the annotations of the locked (and newest) releases; the lowest releases of
  # click, matplotlib and safetensors ship older or no stubs, so --lowest runs lint and the tests only.
  [ "${SPEV_ENV_VARIANT:-}" = lowest ] || mypy
  python -m pytest -q -p no:cacheprovider "$@"
}

variant="${1:-}"
case "$variant" in
  --latest | --lowest) shift ;;
  *)
    bash scripts/install.sh test
    checks "$@"
    exit
    ;;
esac

# A throwaway venv, removed on exit; needs room for torch, ray and the test tools.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/spev-${variant#--}.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
free_kb=$(df -Pk "$tmp" | awk 'NR == 2 { print $4 }')
if [ "$free_kb" -lt $((6 * 1024 * 1024)) ]; then
  echo "test.sh: need 6 GiB free under $tmp for $variant, have $((free_kb / 1024)) MiB" >&2
  exit 1
fi
python3 -m venv "$tmp/venv"
# shellcheck disable=SC1091
. "$tmp/venv/bin/activate"
bash scripts/install.sh debs-only
if [ "$variant" = --latest ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q -c requirements/cpu.txt -e ".[test,ray,bench]"
else
  # pip cannot resolve to the lowest versions; uv can (for the direct dependencies; the rest resolve normally).
  python -m pip install -q uv
  links=$(python -m pip config get global.find-links 2>/dev/null || echo /opt/wheels)
  python -m uv pip install -q --resolution lowest-direct --override requirements/cpu.txt \
    ${links:+--find-links "$links"} -e ".[test,ray,bench]"
fi
python -m pip list --format=freeze > "$tmp/versions.txt"
echo "test.sh $variant: $(grep -ciE '^(numpy|torch|click|rich|scikit-learn|matplotlib)==' "$tmp/versions.txt") key packages:" \
  "$(grep -iE '^(numpy|torch|click|rich|scikit-learn|matplotlib|soundfile|soxr|msgpack|zstandard)==' "$tmp/versions.txt" | tr '\n' ' ')" >&2
SPEV_ENV_VARIANT="${variant#--}" checks "$@"
