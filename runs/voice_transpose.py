"""#18's transposition bar on recorded speech: ``spev edit --transpose ±5`` against a reference transposition.

    python runs/voice_transpose.py [--world-python PATH] [--kbps 4] [--clips voice-00,...]

For each clip of the voice dev set (its female and male sets, ``bench.devset.clips_by_sex``): encode with
spev, transpose the events by ±5 semitones (``spev edit``), decode, and measure on the decoded audio, against
the untransposed decode, the median f0 change (semitones) and the median F1/F2 change (Hz) over the frames
where the untransposed decode is voiced and loud.  With ``--world-python`` (a Python with ``pyworld``: it
builds from source, so it is not a dependency of spev) the input is also transposed by the WORLD vocoder
(harvest f0 × 2^(±5/12), CheapTrick envelope and D4C aperiodicity kept) and measured the same way against
WORLD's untransposed resynthesis; the last columns compare spev's transposed formants with WORLD's.

Measures: f0 per 40 ms frame (10 ms hop) from the autocorrelation's highest peak in 60-500 Hz; a frame is
voiced when that peak is ≥ 0.5 of the zero lag and within 20 dB of the clip's loudest frame; F1/F2 are the
two lowest LPC (order 16, pre-emphasis 0.7) pole frequencies above 150 Hz with bandwidth < 400 Hz.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.linalg import solve_toeplitz

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import devset
from sparsecodec import api
from sparsecodec.tools import edit

SHIFTS = (-5.0, 5.0)
WORLD = """
import sys, numpy as np, soundfile as sf, pyworld as pw
src, shift, dst = sys.argv[1], float(sys.argv[2]), sys.argv[3]
x, sr = sf.read(src, dtype="float64")
f0, t = pw.harvest(x, sr)
sp, ap = pw.cheaptrick(x, f0, t, sr), pw.d4c(x, f0, t, sr)
sf.write(dst, pw.synthesize(f0 * 2.0 ** (shift / 12.0), sp, ap, sr), sr, subtype="FLOAT")
"""


def frames(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 10 ms: ``(f0 Hz, voiced bool, (F1, F2) Hz [M, 2])`` (see the module docstring)."""
    n, hop = int(0.04 * sr), int(0.01 * sr)
    starts = range(0, len(y) - n, hop)
    f0, periodic, power, fmt = [], [], [], []
    lo, hi = int(sr / 500), int(sr / 60)
    for s in starts:
        fr = y[s : s + n] * np.hanning(n)
        ac = np.correlate(fr, fr, "full")[n - 1 :]
        lag = lo + int(np.argmax(ac[lo:hi]))
        f0.append(sr / lag)
        periodic.append(ac[lag] / max(ac[0], 1e-12))
        power.append(ac[0])
        pre = np.append(fr[:1], fr[1:] - 0.7 * fr[:-1])
        r = np.correlate(pre, pre, "full")[n - 1 : n + 17]
        r[0] *= 1.0001
        a = solve_toeplitz(r[:-1], r[1:]) if r[0] > 0 else np.zeros(16)
        roots = np.roots(np.concatenate([[1.0], -a]))
        roots = roots[np.imag(roots) > 0]
        freq = np.angle(roots) * sr / (2 * np.pi)
        bw = -np.log(np.maximum(np.abs(roots), 1e-9)) * sr / np.pi
        f = np.sort(freq[(bw < 400.0) & (freq > 150.0)])
        fmt.append(f[:2] if len(f) >= 2 else [np.nan, np.nan])
    level = 10.0 * np.log10(np.maximum(np.array(power), 1e-20))
    voiced = (np.array(periodic) >= 0.5) & (level > level.max() - 20.0)
    return np.array(f0), voiced, np.array(fmt, dtype=np.float64)


def compare(ref: np.ndarray, moved: np.ndarray, sr: int) -> tuple[float, float, float]:
    """Median f0 change (semitones), F1 and F2 change (Hz) of ``moved`` against ``ref``, over ``ref``'s voiced
    frames."""
    f_r, v_r, m_r = frames(ref, sr)
    f_m, _, m_m = frames(moved[: len(ref)], sr)
    k = min(len(f_r), len(f_m))
    v = v_r[:k]
    st = 12.0 * np.log2(f_m[:k][v] / f_r[:k][v])
    d = m_m[:k][v] - m_r[:k][v]
    return float(np.median(st)), float(np.nanmedian(d[:, 0])), float(np.nanmedian(d[:, 1]))


def decode(path: Path) -> np.ndarray:
    out = path.with_suffix(".wav")
    api.decode_file(path, out, bits="32f")
    return sf.read(out, dtype="float64")[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world-python", default=None, help="a Python with pyworld (the reference)")
    ap.add_argument("--kbps", type=float, default=4.0)
    ap.add_argument("--devset", type=Path, default=Path(".cache/devset"))
    ap.add_argument("--clips", default=None, help="comma-separated clip ids (default: all voice clips)")
    args = ap.parse_args()
    by_sex = devset.clips_by_sex(devset.load_manifest(args.devset))
    want = set(args.clips.split(",")) if args.clips else None
    rows: dict[tuple[str, float], list[list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for sex, clips in sorted(by_sex.items()):
            for clip in clips:
                if want and clip.id not in want:
                    continue
                wav = args.devset / clip.path
                sr = sf.info(str(wav)).samplerate
                base = work / f"{clip.id}.spev"
                api.encode_file(wav, base, kbps=args.kbps)
                y = decode(base)
                world0 = None
                if args.world_python:
                    w0 = work / f"{clip.id}-w0.wav"
                    subprocess.run([args.world_python, "-c", WORLD, str(wav), "0", str(w0)], check=True)
                    world0 = sf.read(w0, dtype="float64")[0]
                for shift in SHIFTS:
                    moved = work / f"{clip.id}-{shift:+.0f}.spev"
                    edit.edit_file(base, moved, [edit.Op("transpose", str(shift))], force=True)
                    ys = decode(moved)
                    row = list(compare(y, ys, sr))
                    if world0 is not None:
                        ws = work / f"{clip.id}-w{shift:+.0f}.wav"
                        subprocess.run(
                            [args.world_python, "-c", WORLD, str(wav), str(shift), str(ws)], check=True
                        )
                        w = sf.read(ws, dtype="float64")[0]
                        row += list(compare(world0, w, sr))
                        _, _, fs = frames(ys, sr)
                        _, vw, fw = frames(w, sr)
                        k = min(len(fs), len(fw))
                        row += list(
                            np.nanmedian(fs[:k][vw[:k]], axis=0) - np.nanmedian(fw[:k][vw[:k]], axis=0)
                        )
                    rows.setdefault((sex, shift), []).append(row)
                    print(clip.id, sex, f"{shift:+.0f}", " ".join(f"{v:+.2f}" for v in row), flush=True)
    head = "| set | shift | clips | spev Δf0 st | spev ΔF1 Hz | spev ΔF2 Hz |"
    if args.world_python:
        head += " WORLD Δf0 st | WORLD ΔF1 Hz | WORLD ΔF2 Hz | spev − WORLD F1 Hz | spev − WORLD F2 Hz |"
    print("\n" + head)
    print("|" + "---|" * (head.count("|") - 1))
    for (sex, shift), r in sorted(rows.items()):
        med = np.median(np.array(r), axis=0)
        print(f"| {sex} | {shift:+.0f} | {len(r)} | " + " | ".join(f"{v:+.2f}" for v in med) + " |")


if __name__ == "__main__":
    main()
