#!/usr/bin/env bash
# Install spev and what it needs on a fresh Debian machine.
#   bash scripts/install.sh          runtime only
#   bash scripts/install.sh test     + what the test suite needs (Debian tools, pytest, ruff, mypy, ray)
# Idempotent; quiet unless something fails.
set -euo pipefail
cd "$(dirname "$0")/.."
want="${1:-runtime}"

debs=()
if [ "$want" = "test" ]; then
  # fluidsynth + the dev-set soundfont for the encoder's phrase test; opus-tools + lame for the bench harness test.
  for pair in fluidsynth:fluidsynth opusenc:opus-tools lame:lame; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || debs+=("${pair#*:}")
  done
  [ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ] || debs+=(timgm6mb-soundfont)
fi
if [ "${#debs[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian packages: ${debs[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}" >/dev/null
  else
    echo "warning: not root; tests that need ${debs[*]} will be skipped" >&2
  fi
fi

# torch: take the CPU build this machine ships (plain pip, no extra index) when none is installed yet.
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==2.13.0"
if [ "$want" = "test" ]; then
  python -m pip install -q -e ".[test,ray]"
else
  python -m pip install -q -e .
fi
