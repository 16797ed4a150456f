"""Transcribe WAV files with basic-pitch at its default thresholds; write the notes as JSON.

Runs inside basic-pitch's own venv (``.cache/basic-pitch-venv``, made by ``bench/setup.sh``), started by
:mod:`bench.transcribe` as ``python bench/basic_pitch_worker.py OUT.json IN.wav [IN.wav ...]``: it imports
nothing from spev or the bench.  ``OUT.json``: ``{"basic_pitch": version, "onnxruntime": version or null,
"model": file name, "clips": {IN.wav: [{"onset": s, "offset": s, "pitch": midi, "amplitude": 0-1,
"velocity": 0-127}, ...]}}`` (``basic_pitch.inference.predict``'s note events; ``velocity`` is
``round(127 × amplitude)``, as its MIDI output writes it).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, paths = Path(argv[0]), argv[1:]
    logging.disable(logging.WARNING)  # basic-pitch warns about every runtime it does not find
    from basic_pitch import ICASSP_2022_MODEL_PATH
    from basic_pitch.inference import Model, predict

    model = Model(ICASSP_2022_MODEL_PATH)
    doc: dict[str, Any] = {
        "basic_pitch": _version("basic-pitch"),
        "onnxruntime": _version("onnxruntime"),
        "model": Path(ICASSP_2022_MODEL_PATH).name,
        "clips": {},
    }
    for path in paths:
        _, _, events = predict(path, model)  # the defaults: onset 0.5, frame 0.3, min length 127.7 ms
        notes = [
            {
                "onset": float(start),
                "offset": float(end),
                "pitch": int(pitch),
                "amplitude": float(amp),
                "velocity": round(127 * float(amp)),
            }
            for start, end, pitch, amp, _ in sorted(events, key=lambda e: (e[0], e[2]))
        ]
        doc["clips"][path] = notes
    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
