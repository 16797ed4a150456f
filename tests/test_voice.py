"""Voice analysis and synthesis (#18, not yet in the container), measured on the decoded audio: f0 by
autocorrelation, formants by LPC, on synthetic vowels (a glottal pulse train through formant resonators)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import solve_toeplitz
from scipy.signal import lfilter

from sparsecodec.encoder import voice as va
from sparsecodec.synth import voice as sv

SR = sv.SR
MALE = (120.0, (700.0, 1220.0, 2600.0))
FEMALE = (220.0, (850.0, 1700.0, 2900.0))


def vowel(f0: float | tuple[float, float], formants: tuple[float, ...], seconds: float = 0.8) -> np.ndarray:
    """A pulse train at ``f0`` (Hz, or a linear glide), -6 dB/octave tilt, through 2-pole resonators."""
    n = int(seconds * SR)
    f_lo, f_hi = (f0, f0) if isinstance(f0, float) else f0
    inst = np.linspace(f_lo, f_hi, n)
    phase = np.cumsum(inst) / SR
    x = np.zeros(n)
    x[np.flatnonzero(np.diff(np.floor(phase), prepend=0.0) > 0)] = 1.0
    x = lfilter([1.0], [1.0, -0.95], x)
    for f, bw in zip(formants, (80.0, 100.0, 140.0), strict=False):
        r = np.exp(-np.pi * bw / SR)
        x = lfilter([1.0 - r], [1.0, -2.0 * r * np.cos(2.0 * np.pi * f / SR), r * r], x)
    return 0.3 * x / np.abs(x).max()


def f0_frames(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per 40 ms frame (10 ms apart): f0 (Hz) from the autocorrelation's highest peak (parabolic), and the
    frame's power (dB)."""
    n, f0s, pw = 640, [], []
    for s in range(0, len(y) - n, 160):
        fr = y[s : s + n] * np.hanning(n)
        ac = np.correlate(fr, fr, "full")[n - 1 :]
        lo, hi = int(SR / 500), int(SR / 60)
        lag = lo + int(np.argmax(ac[lo:hi]))
        a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
        den = a - 2.0 * b + c
        f0s.append(SR / (lag + (0.5 * (a - c) / den if den else 0.0)))
        pw.append(10.0 * np.log10(np.mean(fr**2) + 1e-12))
    return np.array(f0s), np.array(pw)


def measure_f0(y: np.ndarray) -> float:
    """Median f0 (Hz) over 40 ms frames of the middle half (:func:`f0_frames`)."""
    return float(np.median(f0_frames(y[len(y) // 4 : 3 * len(y) // 4])[0]))


def measure_formants(y: np.ndarray, order: int = 16) -> tuple[float, float]:
    """Median (F1, F2) in Hz over 30 ms frames of the middle half: the LPC poles' angles (bandwidth < 500 Hz,
    above 150 Hz)."""
    n = 480
    mid = y[len(y) // 4 : 3 * len(y) // 4]
    mid = np.append(mid[:1], mid[1:] - 0.7 * mid[:-1])
    f1s, f2s = [], []
    for s in range(0, len(mid) - n, 240):
        fr = mid[s : s + n] * np.hamming(n)
        ac = np.correlate(fr, fr, "full")[n - 1 : n + order]
        a = solve_toeplitz(ac[:-1] + np.eye(1, order, 0)[0] * 1e-9, ac[1:])
        roots = np.roots(np.concatenate([[1.0], -a]))
        roots = roots[np.imag(roots) > 0]
        freqs = np.angle(roots) * SR / (2 * np.pi)
        bws = -np.log(np.abs(roots)) * SR / np.pi
        f = np.sort(freqs[(bws < 500.0) & (freqs > 150.0)])
        if len(f) >= 2:
            f1s.append(f[0])
            f2s.append(f[1])
    return float(np.median(f1s)), float(np.median(f2s))


def semitones(a: float, b: float) -> float:
    return float(12.0 * np.log2(a / b))


def code(x: np.ndarray) -> sv.VoiceFrames:
    """30 ms knots, as the codec would keep them."""
    return va.knots(va.analyse(x), 6)


def test_the_tracker_follows_a_glide_and_calls_silence_and_noise_unvoiced() -> None:
    glide = vowel((110.0, 170.0), MALE[1], 0.6)
    noise = 0.01 * np.random.default_rng(0).standard_normal(int(0.3 * SR))
    x = np.concatenate([glide, np.zeros(int(0.3 * SR)), noise])
    cm = va.cmndf(x)
    _, power = va.lpc_envelope(x)
    m = min(len(cm), len(power))
    f0, voiced = va.track_f0(cm[:m], power[:m])
    t = np.arange(m) * sv.HOP
    inner = (t > 0.05 * SR) & (t < 0.55 * SR)
    truth = 110.0 + 60.0 * t[inner] / len(glide)
    err = np.abs(12.0 * np.log2(np.maximum(f0[inner], 1.0) / truth))
    assert np.mean(voiced[inner] & (err < 0.5)) > 0.9
    assert np.mean(~voiced[t > 0.65 * SR]) > 0.9


@pytest.mark.parametrize("who", [MALE, FEMALE], ids=["male", "female"])
def test_a_round_trip_keeps_f0_and_formants(who: tuple[float, tuple[float, ...]]) -> None:
    f0, formants = who
    x = vowel(f0, formants)
    y = sv.render(code(x), len(x))
    assert abs(semitones(measure_f0(y), measure_f0(x))) < 0.2
    (f1x, f2x), (f1y, f2y) = measure_formants(x), measure_formants(y)
    assert abs(f1y - f1x) < 60.0 and abs(f2y - f2x) < 120.0, ((f1x, f2x), (f1y, f2y))
    assert abs(10.0 * np.log10(np.mean(y**2) / np.mean(x**2))) < 1.5  # the level


@pytest.mark.parametrize("shift", [-5.0, 5.0])
@pytest.mark.parametrize("who", [MALE, FEMALE], ids=["male", "female"])
def test_transpose_moves_f0_and_keeps_the_formants(
    who: tuple[float, tuple[float, ...]], shift: float
) -> None:
    """#18's bar, on the synthesis: f0 moves within ±0.2 semitone, F1/F2 within 60/120 Hz of the
    untransposed decode."""
    x = vowel(*who)
    k = code(x)
    ref, moved = sv.render(k, len(x)), sv.render(sv.transpose(k, shift), len(x))
    assert abs(semitones(measure_f0(moved), measure_f0(ref)) - shift) < 0.2
    (f1r, f2r), (f1m, f2m) = measure_formants(ref), measure_formants(moved)
    assert abs(f1m - f1r) < 60.0 and abs(f2m - f2r) < 120.0, ((f1r, f2r), (f1m, f2m))


def test_formant_shift_moves_the_formants_and_keeps_f0() -> None:
    x = vowel(*MALE)
    k = code(x)
    ref, up = sv.render(k, len(x)), sv.render(sv.formant_shift(k, 1.15), len(x))
    assert abs(semitones(measure_f0(up), measure_f0(ref))) < 0.2
    (f1r, f2r), (f1u, f2u) = measure_formants(ref), measure_formants(up)
    assert 1.08 < f1u / f1r < 1.22 and 1.08 < f2u / f2r < 1.22, ((f1r, f2r), (f1u, f2u))


def test_render_is_deterministic_and_silent_where_the_track_is() -> None:
    x = np.concatenate([np.zeros(int(0.2 * SR)), vowel(*MALE, 0.5), np.zeros(int(0.2 * SR))])
    k = code(x)
    a, b = sv.render(k, len(x)), sv.render(k, len(x))
    assert a.dtype == np.float32 and a.shape == x.shape
    assert np.array_equal(a, b)
    quiet = np.sqrt(np.mean(a[: int(0.1 * SR)] ** 2))
    loud = np.sqrt(np.mean(a[int(0.3 * SR) : int(0.6 * SR)] ** 2))
    assert quiet < 1e-3 * loud


def test_a_pause_costs_two_knots_and_stays_silent() -> None:
    gap = int(0.5 * SR)
    x = np.concatenate([vowel(*MALE, 0.4), np.zeros(gap), vowel(*MALE, 0.4)])
    frames = va.analyse(x)
    k = va.knots(frames, 6)
    every = va.knots(frames, 6, silence_db=None)
    in_gap = (k.t > 0.45 * SR) & (k.t < 0.85 * SR)
    assert not in_gap.any()  # the pause's inner knots are gone
    assert len(every) - len(k) >= int(0.4 * SR / (6 * sv.HOP)) - 1
    y = sv.render(k, len(x))
    loud = np.sqrt(np.mean(y[: int(0.4 * SR)] ** 2))
    assert np.sqrt(np.mean(y[int(0.5 * SR) : int(0.8 * SR)] ** 2)) < 1e-3 * loud


def test_edge_inputs() -> None:
    """Silence keeps only its two end knots; no knots render silence; a knot spacing below one frame is
    refused."""
    k = va.knots(va.analyse(np.zeros(SR)), 6)
    assert len(k) == 2
    assert not np.any(sv.render(k.take(np.zeros(0, np.int64)), 100))
    with pytest.raises(ValueError):
        va.knots(va.analyse(np.zeros(SR)), 0)


@pytest.mark.parametrize("f0", [65.0, 150.0, 330.0, 440.0, 600.0, 780.0])
def test_f0_is_tracked_across_the_range(f0: float) -> None:
    """A high voice's period multiples dip as deep as its period (the deepest dips would be sub-octaves)."""
    t = np.arange(int(0.5 * SR))
    phase = 2.0 * np.pi * f0 * t / SR
    x = sum(np.cos(k * phase) / k for k in range(1, int(7900 / f0) + 1))
    for f, bw in zip((850.0, 1700.0, 2900.0), (80.0, 100.0, 140.0), strict=True):
        r = np.exp(-np.pi * bw / SR)
        x = lfilter([1.0 - r], [1.0, -2.0 * r * np.cos(2.0 * np.pi * f / SR), r * r], x)
    frames = va.analyse(0.3 * x / np.abs(x).max())
    assert abs(semitones(float(np.median(frames.f0[20:-20])), f0)) < 0.5


@pytest.mark.parametrize("voicing", [0.0, 0.5, 1.0])
def test_a_knot_renders_at_its_level(voicing: float) -> None:
    """Harmonics and noise together carry the knot's power, whatever the voicing."""
    n = 40
    k = sv.VoiceFrames(
        t=np.arange(n) * 8 * sv.HOP,
        f0=np.full(n, 150.0),
        level_db=np.full(n, -20.0),
        ceps=np.zeros((n, sv.N_CEPS)),
        voicing=np.full((n, 4), voicing),
    )
    y = sv.render(k, int(k.t[-1]))
    mid = y[len(y) // 4 : 3 * len(y) // 4]
    assert abs(10.0 * np.log10(np.mean(mid.astype(np.float64) ** 2)) + 20.0) < 0.5
