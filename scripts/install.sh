#!/usr/bin/env bash
# Install spev and what it needs on a fresh Debian machine, from the lock files (exact versions + hashes).
#   bash scripts/install.sh          runtime: requirements/runtime.txt, then spev itself (editable, no deps)
#   bash scripts/install.sh test     + Debian tools the tests need, and requirements/dev.txt (pytest, ruff, mypy,
#                                      pip-tools, ray, the bench's metrics)
#   bash scripts/install.sh debs-only     only the Debian tools the tests need (scripts/test.sh --latest/--lowest)
# Installs into the Python that runs it (activate a venv first to keep it apart).  Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
want="${1:-runtime}"

debs=()
if [ "$want" != runtime ]; then
  # fluidsynth + soundfonts (encoder phrase test, training data test); opus-tools + lame (bench harness test);
  # chromium (spev view's page, loaded headless in tests/test_view.py over the DevTools pipe: no driver needed).
  for pair in fluidsynth:fluidsynth opusenc:opus-tools lame:lame chromium:chromium; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || debs+=("${pair#*:}")
  done
  [ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ] || debs+=(timgm6mb-soundfont)
  [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || debs+=(fluid-soundfont-gm)
fi
if [ "${#debs[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian packages: ${debs[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}" >/dev/null
  else
    echo "warning: not root; tests that need ${debs[*]} will be skipped (and fail under CI=true)" >&2
  fi
fi

[ "$want" = debs-only ] && exit 0

pip_install() {  # quiet pip install; prints pip's output only when it fails
  local log
  log=$(mktemp)
  if ! python -m pip install -q "$@" >"$log" 2>&1; then
    grep -v "is ignored: it is neither" "$log" >&2
    rm -f "$log"
    echo "install.sh: pip install $* failed" >&2
    exit 1
  fi
  rm -f "$log"
}

lock=requirements/runtime.txt
[ "$want" = "test" ] && lock=requirements/dev.txt
# The lock pins every package (pip and setuptools included) with its hashes; spev itself goes on top
# without resolving anything again.
pip_install --require-hashes -r "$lock"
pip_install --no-deps --no-build-isolation -e .
