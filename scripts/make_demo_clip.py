"""Write a short demo clip: a plucked arpeggio with a little noise, synthesised independently of spev.

Usage: python scripts/make_demo_clip.py OUT.wav
"""

from __future__ import annotations

import sys

import numpy as np
import soundfile as sf


def main(path: str, sample_rate: int = 44100) -> None:
    """Karplus-Strong-like plucks (additive, decaying harmonics) on a C major arpeggio, 4 s, stereo."""
    t = np.arange(int(4.0 * sample_rate)) / sample_rate
    out = np.zeros((len(t), 2))
    rng = np.random.default_rng(0)
    for i, midi in enumerate([60, 64, 67, 72, 67, 64, 60, 55]):
        t0 = 0.45 * i
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        tt = np.clip(t - t0, 0.0, None)
        note = np.zeros_like(t)
        for k in range(1, 16):
            if k * f0 > 16000:
                break
            note += np.exp(-tt * (1.5 + 0.6 * k)) * np.sin(2 * np.pi * k * f0 * tt) / k
        note[t < t0] = 0.0
        pan = 0.5 + 0.3 * np.sin(i)
        out[:, 0] += 0.25 * note * np.sqrt(1 - pan)
        out[:, 1] += 0.25 * note * np.sqrt(pan)
    out += 0.002 * rng.standard_normal(out.shape)
    sf.write(path, out.astype(np.float32), sample_rate, subtype="PCM_16")


if __name__ == "__main__":
    main(sys.argv[1])
