"""Note scores of spev's exported events on FluidR3 tuning phrases (how #16's rules were tuned).

``python runs/eval_notes.py [--render] [--dir /tmp/fr2] [--jobs 2] [--transcriber]``

- ``--render`` makes the 16 tuning phrases first: ``bench.devset.make_notes`` with seed 777 and FluidR3
  (never the dev set's seeds, TimGM6mb or timidity/freepats: those are for measuring only).
- Each ``.wav`` is encoded by ``spev encode`` with the defaults and exported by ``spev export --format json``;
  the pitched events above −40 dB are scored like the benchmark (``bench.metrics``: onset ±50 ms, pitch ±50
  cents, offsets by mir_eval's default rule).  Prints one line per phrase and the means.
- ``--transcriber`` scores the note transcriber alone (no encode) on the same phrases.
- ``--timidity`` (with ``--render``) renders them with ``timidity`` and its FluidR3 config instead: the
  training samples through another synthesis engine (``--dir /tmp/frt``), a check of renderer shift that
  needs neither the dev set nor freepats.

Measured at commit a12262a: encoder note F1 0.891 (P 0.904, R 0.881, pitch accuracy 0.971, offset F1
0.597); transcriber alone 0.891 (offset F1 0.592).  With ``--timidity``: 0.886 (offset F1 0.490);
transcriber alone 0.876 (0.496).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from bench import devset, metrics
from training.transcriber import FLUIDR3, TIMIDITY_FLUIDR3

KEYS = ("note_f1", "note_precision", "note_recall", "pitch_acc", "offset_f1")


def _truth(wav: Path) -> list[dict[str, float]]:
    notes = json.loads(wav.with_suffix(".notes.json").read_text())["notes"]
    return [{k: float(n[k]) for k in ("onset", "pitch", "offset")} for n in notes]


def _encoded_notes(wav: Path, work: Path) -> list[dict[str, float]]:
    spev, out = work / f"{wav.stem}.spev", work / f"{wav.stem}.json"
    subprocess.run(["spev", "encode", str(wav), str(spev), "--force", "-q"], check=True, capture_output=True)
    subprocess.run(["spev", "export", str(spev), str(out), "--force"], check=True, capture_output=True)
    return metrics.export_to_notes(json.loads(out.read_text()))


def _transcribed_notes(wav: Path) -> list[dict[str, float]]:
    from sparsecodec.encoder import transcriber

    tr = transcriber.load_default()
    if tr is None:
        raise SystemExit("no shipped transcriber weights")
    x, sr = sf.read(wav, dtype="float32", always_2d=True)
    return [{"onset": n.onset_s, "pitch": n.pitch, "offset": n.off_s} for n in tr.notes(x.mean(axis=1), sr)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/fr2"))
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--transcriber", action="store_true")
    ap.add_argument("--timidity", action="store_true", help="render with timidity + FluidR3 (with --render)")
    args = ap.parse_args()
    if args.render:
        if args.timidity:
            devset.make_notes(
                args.dir, 16, seed=777, soundfont=TIMIDITY_FLUIDR3, renderer="timidity", prefix="frt"
            )
        else:
            devset.make_notes(args.dir, 16, seed=777, soundfont=FLUIDR3, prefix="fr")
    wavs = sorted(args.dir.glob("*.wav"))
    if not wavs:
        raise SystemExit(f"no .wav in {args.dir} (use --render)")
    with tempfile.TemporaryDirectory() as tmp:

        def one(wav: Path) -> dict[str, Any]:
            est = _transcribed_notes(wav) if args.transcriber else _encoded_notes(wav, Path(tmp))
            return metrics.note_scores(_truth(wav), est)

        with ThreadPoolExecutor(1 if args.transcriber else args.jobs) as ex:
            scores = list(ex.map(one, wavs))
    for wav, sc in zip(wavs, scores, strict=True):
        counts = f"est={sc['n_est']:.0f}/{sc['n_ref']:.0f}"
        print(wav.stem, " ".join(f"{k}={sc[k] or 0.0:.3f}" for k in KEYS), counts)
    print("MEAN", " ".join(f"{k}={np.mean([sc[k] or 0.0 for sc in scores]):.4f}" for k in KEYS))


if __name__ == "__main__":
    main()
