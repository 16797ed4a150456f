#!/usr/bin/env bash
# Install spev and run a demo: synthesise a short clip, encode it, inspect the .spev, decode it back.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
out=.cache/demo
mkdir -p "$out"
python scripts/make_demo_clip.py "$out/demo.wav"
echo "== spev encode $out/demo.wav $out/demo.spev"
spev encode --force "$out/demo.wav" "$out/demo.spev"
echo "== spev inspect $out/demo.spev"
spev inspect "$out/demo.spev"
echo "== spev decode $out/demo.spev $out/demo.decoded.wav"
spev decode --force "$out/demo.spev" "$out/demo.decoded.wav"
python - "$out/demo.wav" "$out/demo.spev" "$out/demo.decoded.wav" <<'PY'
import os, sys
import soundfile as sf
src, enc, dec = sys.argv[1:]
info = sf.info(src)
print(f"demo: {info.duration:.2f} s of {info.samplerate} Hz audio ({os.path.getsize(src)} bytes) -> "
      f"{os.path.getsize(enc)} bytes of .spev ({os.path.getsize(enc) * 8 / info.duration / 1000:.2f} kbps) -> "
      f"{dec} ({sf.info(dec).duration:.2f} s)")
PY
