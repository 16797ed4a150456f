#!/usr/bin/env bash
# Install what the benchmark needs beyond spev itself.  Idempotent and quiet; safe to run again.
#   Debian: opus-tools (opusenc/opusdec), lame, fluidsynth + timgm6mb-soundfont (the dev-set soundfont),
#           espeak-ng (speech clips), ufoai-music + nexuiz-music (their .ogg files: music clips + long track).
#           warzone2100-music is not needed (its files are 48 kHz .opus; the dev set takes .ogg only), so the
#           whole of it stays free for training.  time (GNU /usr/bin/time: peak memory of each command).
#   PyPI:   visqol-python[lattice] (ViSQOL v3) + numba (its JIT), pesq (PESQ-WB), mir_eval (note F1).
# Never installs wesnoth-*-music, asterisk-core-sounds-* or musescore-general-soundfont* (reserved, see DEVELOPERS.md).
set -euo pipefail
cd "$(dirname "$0")/.."

debs=()
for pair in /usr/bin/time:time opusenc:opus-tools opusdec:opus-tools lame:lame fluidsynth:fluidsynth espeak-ng:espeak-ng; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || debs+=("${pair#*:}")
done
[ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ] || debs+=(timgm6mb-soundfont)
for pkg in ufoai-music nexuiz-music; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || debs+=("$pkg")
done
# de-duplicate (opus-tools may appear twice)
mapfile -t debs < <(printf '%s\n' "${debs[@]}" | awk 'NF && !seen[$0]++')

if [ "${#debs[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bench/setup.sh: installing Debian packages: ${debs[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${debs[@]}" >/dev/null
  else
    echo "bench/setup.sh: warning: not root; missing Debian packages: ${debs[*]}" >&2
  fi
fi

pips=()
# [lattice] pulls ai-edge-litert: speech mode then uses the C++ default (lattice) MOS mapping.
python -c "import visqol, ai_edge_litert" 2>/dev/null || pips+=("visqol-python[lattice]>=3.3")
python -c "import pesq" 2>/dev/null || pips+=("pesq>=0.0.4")
python -c "import mir_eval" 2>/dev/null || pips+=("mir_eval>=0.7")
# numba: visqol-python JIT-compiles its patch matching with it (5-10x faster, bit-exact results).
python -c "import numba" 2>/dev/null || pips+=("numba")
if [ "${#pips[@]}" -gt 0 ]; then
  echo "bench/setup.sh: installing Python packages: ${pips[*]}" >&2
  python -m pip install -q "${pips[@]}"
fi
python -c "import sparsecodec" 2>/dev/null || bash scripts/install.sh
