#!/usr/bin/env bash
# Install what the benchmark needs beyond spev itself.  Idempotent and quiet; safe to run again.
#   Debian: opus-tools (opusenc/opusdec), lame, fluidsynth + timgm6mb-soundfont (the dev-set soundfont),
#           espeak-ng (speech clips), ufoai-music + nexuiz-music (their .ogg files: music clips + long track).
#           warzone2100-music is not needed (its files are 48 kHz .opus; the dev set takes .ogg only), so the
#           whole of it stays free for training.  time (GNU /usr/bin/time: peak memory of each command).
#           timidity + freepats: the notes-fp clips (a CHECK-ONLY render of the notes phrases: never train
#           or tune on freepats).
#           fillets-ng-data-cs: the voice clips (recorded Czech dialogue, GPL-2; never trained on: training
#           speech is in training/speech_sources.txt).  codec2 (c2enc/c2dec): the Codec2 rows.
#   PyPI:   visqol-python[lattice] (ViSQOL v3) + numba (its JIT), pesq (PESQ-WB), mir_eval (note metrics).
#   basic-pitch (the transcriber row) in its OWN venv, .cache/basic-pitch-venv: basic-pitch 0.4.0 wants
#           tensorflow < 2.15.1 and the numpy that goes with it, so it is installed --no-deps with
#           onnxruntime (its wheel ships the .onnx model) and the few packages it imports; never into the
#           venv spev is measured in.  A failure here is a warning: the row then reports itself missing.
# Never installs wesnoth-*-music, asterisk-core-sounds-* or musescore-general-soundfont* (reserved, see DEVELOPERS.md).
set -euo pipefail
cd "$(dirname "$0")/.."

debs=()
for pair in /usr/bin/time:time opusenc:opus-tools opusdec:opus-tools lame:lame fluidsynth:fluidsynth \
    espeak-ng:espeak-ng c2enc:codec2 c2dec:codec2; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || debs+=("${pair#*:}")
done
[ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ] || debs+=(timgm6mb-soundfont)
command -v timidity >/dev/null 2>&1 || debs+=(timidity)
[ -f /etc/timidity/freepats.cfg ] || debs+=(freepats)
for pkg in ufoai-music nexuiz-music fillets-ng-data-cs; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || debs+=("$pkg")
done
# de-duplicate (opus-tools, codec2 may appear twice)
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

# basic-pitch, apart (see above).  Idempotent: skipped once its venv imports it.
bp_venv=.cache/basic-pitch-venv
if ! "$bp_venv/bin/python" -c "import basic_pitch.inference, onnxruntime" >/dev/null 2>&1; then
  echo "bench/setup.sh: installing basic-pitch into $bp_venv (its own venv; pip's complaint that" \
    "tensorflow is missing is expected: basic-pitch runs its .onnx model on onnxruntime)" >&2
  base_python=$(python -c "import sys; print(getattr(sys, '_base_executable', sys.executable))")
  if ! { "$base_python" -m venv --clear "$bp_venv" \
      && "$bp_venv/bin/python" -m pip install -q --no-deps "basic-pitch==0.4.0" \
      && "$bp_venv/bin/python" -m pip install -q "onnxruntime>=1.16" "librosa>=0.10,<0.12" "pretty-midi>=0.2.9" \
        "resampy>=0.2.2,<0.4.3" "mir_eval>=0.6" "scipy>=1.4.1" scikit-learn typing-extensions \
      && "$bp_venv/bin/python" -c "import basic_pitch.inference, onnxruntime" >/dev/null 2>&1; }; then
    echo "bench/setup.sh: warning: basic-pitch could not be installed; its row will be reported missing" >&2
  fi
fi
