"""Voice analysis (#18, in progress): speech → a track of voice knots (:class:`synth.voice.VoiceFrames`).

Per 5 ms frame at 16 kHz: f0 by YIN's cumulative mean normalised difference (CMNDF), tracked by a Viterbi
path over its first dips below several thresholds and an unvoiced state (pYIN's idea: a fixed threshold
called 44 % of training-speech frames voiced where WORLD's harvest calls 74 %); the spectral envelope by LPC
(order 18, pre-emphasised), sampled on the mel grid and kept as mel-cepstra; the frame power; and a voicing
strength per band from the valleys between the harmonics of a pitch-adaptive spectrum. :func:`analyse`
returns every frame; :func:`knots` keeps every n-th but those inside pauses (``runs/voice_proto.py``: knots
every 25-60 ms fit 2 kbps through the container's coder).

Not wired into the encoder yet: see :mod:`sparsecodec.synth.voice`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy.fft import irfft, rfft

from sparsecodec.synth import voice as sv

F0_MAX = 800.0
"""Highest f0 tracked (Hz): children's and cartoon voices included."""
YIN_N = 640
"""YIN frame (samples, 40 ms): the lags up to one period of :data:`synth.voice.F0_MIN` plus the window
the differences are summed over."""
LPC_N = 400
"""LPC frame (samples, Hann): 25 ms."""
LPC_ORDER = 18
PRE_EMPHASIS = 0.9
VOICING_PERIODS = 4.0
"""Band-voicing window: this many pitch periods (Blackman), so that the harmonics are resolved."""
VOICING_FLOOR = 0.01
"""Valley/peak power ratio of a clean harmonic series under that window (its leakage)."""
VOICING_SCALE = 0.7
"""Voicing = 1 - this x sqrt(aperiodic share) (fitted on training speech; 0.5-0.8 score alike)."""
THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7)
"""CMNDF thresholds whose first dips are a frame's f0 candidates (:func:`_candidates`)."""
CANDIDATES = len(THRESHOLDS)
UNVOICED_COST = 0.6
"""Viterbi cost of the unvoiced state (a candidate costs its CMNDF value)."""
JUMP_COST = 0.05
"""Viterbi cost per semitone of f0 change between frames (capped at two octaves)."""
SWITCH_COST = 0.3
"""Viterbi cost of a voiced ↔ unvoiced change."""
SILENCE_DB = -50.0
"""Knots this far below the loudest frame, between two as quiet, are not kept (:func:`knots`)."""
SILENCE_FLOOR_DB = -90.0
"""Knots below this level (dB full scale) count as silent whatever the loudest frame (all-silent input)."""
SILENCE_POWER = 1e-7
"""Frame power (full scale = 1) below which a frame is unvoiced whatever its periodicity."""


def frames(x: np.ndarray, n: int) -> np.ndarray:
    """``float64[M, n]``: frames of ``x`` centred on ``m * HOP``, zero-padded, ``M = len(x) // HOP + 1``."""
    pad = np.pad(np.asarray(x, np.float64), (n // 2, n))
    m = len(x) // sv.HOP + 1
    return pad[np.arange(m)[:, None] * sv.HOP + np.arange(n)[None, :]]


def cmndf(x: np.ndarray) -> np.ndarray:
    """YIN's cumulative mean normalised difference ``float64[M, tau_max + 1]`` per frame (lag in samples)."""
    n = YIN_N
    fr = frames(x, n)
    tau_max = int(sv.SR / sv.F0_MIN) + 2  # a minimum at SR / F0_MIN needs a lag after it
    w = n - tau_max
    spec = rfft(fr, 2 * n, axis=1)
    acf = irfft(spec * np.conj(rfft(fr[:, :w], 2 * n, axis=1)), 2 * n, axis=1)[:, : tau_max + 1]
    sq = np.cumsum(np.pad(fr**2, ((0, 0), (1, 0))), axis=1)
    d = (sq[:, w] - sq[:, 0])[:, None] + (sq[:, w : w + tau_max + 1] - sq[:, : tau_max + 1]) - 2.0 * acf
    d[:, 0] = 0.0
    cm = np.ones_like(d)
    cm[:, 1:] = d[:, 1:] * np.arange(1, tau_max + 1) / np.maximum(np.cumsum(d[:, 1:], axis=1), 1e-12)
    return cm


def _candidates(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(semitones re A440 [M, C] or NaN, cost [M, C] or inf)``: per CMNDF row, for each of the
    :data:`THRESHOLDS`, the first local minimum (the shortest period) below it (pYIN's candidates; a
    high voice's multiples dip as deep as its period, a low voice's formant ringing makes early shallow
    dips), refined by a parabola; a candidate costs its CMNDF value."""
    lo = int(sv.SR / F0_MAX)
    m = len(cm)
    semis = np.full((m, CANDIDATES), np.nan)
    cost = np.full((m, CANDIDATES), np.inf)
    mid = cm[:, lo:-1]
    is_min = (mid < cm[:, lo - 1 : -2]) & (mid <= cm[:, lo + 1 :]) & (mid < THRESHOLDS[-1])
    for i in np.flatnonzero(is_min.any(axis=1)):
        row = cm[i]
        mins = np.flatnonzero(is_min[i]) + lo
        vals = row[mins]
        firsts = [int(mins[np.argmax(vals < th)]) for th in THRESHOLDS if (vals < th).any()]
        taus = np.unique(firsts)[:CANDIDATES]
        a, b, c = row[taus - 1], row[taus], row[taus + 1]
        den = a - 2.0 * b + c
        off = np.where(np.abs(den) > 1e-12, 0.5 * (a - c) / np.where(den == 0.0, 1.0, den), 0.0)
        tau = taus + np.clip(off, -1.0, 1.0)
        semis[i, : len(taus)] = 12.0 * np.log2(sv.SR / tau / 440.0)
        cost[i, : len(taus)] = b
    return semis, cost


def track_f0(cm: np.ndarray, power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(f0 Hz [M] (0 where unvoiced), voiced bool [M])``: the cheapest path through each frame's
    candidates and an unvoiced state (:data:`JUMP_COST`, :data:`SWITCH_COST`, :data:`UNVOICED_COST`)."""
    semis, cost = _candidates(cm)
    m, c = semis.shape
    uv_cost = np.where(power < SILENCE_POWER, -1.0, UNVOICED_COST)
    cost = np.concatenate([cost, uv_cost[:, None]], axis=1)  # state c: unvoiced
    acc = cost[0].copy()
    back = np.zeros((m, c + 1), np.int64)
    for i in range(1, m):
        trans = np.empty((c + 1, c + 1))
        jump = np.abs(semis[i - 1][:, None] - semis[i][None, :])
        trans[:c, :c] = np.where(np.isnan(jump), np.inf, JUMP_COST * np.minimum(jump, 24.0))
        trans[:c, c] = trans[c, :c] = SWITCH_COST
        trans[c, c] = 0.0
        tot = acc[:, None] + trans
        back[i] = np.argmin(tot, axis=0)
        acc = tot[back[i], np.arange(c + 1)] + cost[i]
    path = np.empty(m, np.int64)
    path[-1] = int(np.argmin(acc))
    for i in range(m - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    voiced = path < c
    chosen = semis[np.arange(m), np.minimum(path, c - 1)]
    f0 = np.where(voiced, 440.0 * 2.0 ** (np.nan_to_num(chosen) / 12.0), 0.0)
    return f0, voiced


def frame_power(x: np.ndarray) -> np.ndarray:
    """``float64[M]``: the power (mean square) of each :data:`LPC_N` Hann frame, centred every :data:`HOP`."""
    hann = np.hanning(LPC_N)
    return ((frames(x, LPC_N) * hann) ** 2).mean(axis=1) / np.mean(hann**2)


def lpc_envelope(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(log10 power envelope on the mel grid [M, N_MEL], frame power [M])`` by LPC."""
    n = LPC_N
    hann = np.hanning(n)
    pre = np.append(x[:1], x[1:] - PRE_EMPHASIS * x[:-1])
    power = frame_power(x)
    nfft = 2048
    ac = irfft(np.abs(rfft(frames(pre, n) * hann, nfft, axis=1)) ** 2, nfft, axis=1)[:, : LPC_ORDER + 1]
    ac[:, 0] = ac[:, 0] * (1.0 + 1e-4) + 1e-10  # a little white noise: a stable, solvable system
    om = 2.0 * np.pi * sv.mel_grid() / sv.SR
    zk = np.exp(-1j * np.outer(np.arange(LPC_ORDER + 1), om))
    deemph = np.abs(1.0 - PRE_EMPHASIS * np.exp(-1j * om)) ** 2
    a, err = levinson(ac)
    poly = np.concatenate([np.ones((len(a), 1)), -a], axis=1)
    env = np.maximum(err, 1e-12)[:, None] / np.maximum(np.abs(poly @ zk) ** 2, 1e-12) / deemph
    return np.log10(np.maximum(env, 1e-20)), power


def levinson(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Levinson-Durbin on every row of autocorrelations ``r`` ``[M, p + 1]`` at once → predictor
    coefficients ``a`` ``[M, p]`` (``x[n] ≈ sum_k a[k] x[n - 1 - k]``) and the prediction error ``[M]``; what
    ``scipy.linalg.solve_toeplitz(r[:-1], r[1:])`` gives per row, in p vector steps."""
    m, p = r.shape[0], r.shape[1] - 1
    a = np.zeros((m, p))
    err = r[:, 0].astype(np.float64).copy()
    for i in range(p):
        acc = r[:, i + 1] - np.einsum("mk,mk->m", a[:, :i], r[:, i:0:-1])
        k = acc / np.maximum(err, 1e-300)
        prev = a[:, :i].copy()
        a[:, :i] = prev - k[:, None] * prev[:, ::-1]
        a[:, i] = k
        err = err * (1.0 - k * k)
    return a, err


def band_voicing(x: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """``float64[M, 4]``: the harmonic share of each band, from the valleys between harmonics.

    Per frame, a :data:`VOICING_PERIODS`-period Blackman spectrum resolves the harmonics of ``f0``; in each
    band the summed power at the valleys (half-way between harmonics) over that at the peaks is the
    aperiodic share ``a`` (above the window's own leakage, :data:`VOICING_FLOOR`), and the voicing is
    ``1 - VOICING_SCALE * sqrt(a)``.  On training speech this gave +0.17 ViSQOL over the normalised
    autocorrelation at the pitch period (``runs/voice_proto.py``)."""
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    nfft = 4096
    bin_hz = sv.SR / nfft
    xp = np.pad(np.asarray(x, np.float64), (nfft, nfft))
    out = np.zeros((len(f0), len(sv.BANDS) - 1))
    windows: dict[int, np.ndarray] = {}
    for i, f in enumerate(np.asarray(f0, np.float64)):
        if not f > 0:
            continue
        half = round(VOICING_PERIODS / 2.0 * sv.SR / f)
        w = windows.get(half)
        if w is None:
            w = windows[half] = np.blackman(2 * half + 1)
        c = i * sv.HOP + nfft
        p = np.abs(rfft(xp[c - half : c + half + 1] * w, nfft)) ** 2
        k = np.arange(1, int(sv.F_HI / f) + 1)
        if not len(k):
            continue
        reach = max(1, int(f / bin_hz / 4.0))
        top = len(p) - 1
        peaks = maximum_filter1d(p, 2 * reach + 1)[np.minimum(np.rint(k * f / bin_hz).astype(np.int64), top)]
        valleys = minimum_filter1d(p, 2 * reach + 1)[
            np.minimum(np.rint((k + 0.5) * f / bin_hz).astype(np.int64), top)
        ]
        band = sv.band_of(k * f)
        peak_sum = np.bincount(band, peaks, minlength=len(sv.BANDS) - 1)
        valley_sum = np.bincount(band, valleys, minlength=len(sv.BANDS) - 1)
        ratio = valley_sum / np.maximum(peak_sum, 1e-30)
        aperiodic = np.clip((ratio - VOICING_FLOOR) / (1.0 - VOICING_FLOOR), 0.0, 1.0)
        out[i] = np.where(peak_sum > 0, 1.0 - VOICING_SCALE * np.sqrt(aperiodic), 0.0)
    return np.clip(out, 0.0, 1.0)


def analyse(
    x: np.ndarray, gate: Callable[[sv.VoiceFrames], bool] | None = None, only: np.ndarray | None = None
) -> sv.VoiceFrames | None:
    """Mono speech ``float[n]`` at :data:`synth.voice.SR` → one knot per 5 ms frame (f0 filled through
    unvoiced frames, where the voicing is 0, so that it glides).  ``gate``: asked first with the voicing 1
    on voiced frames and 0 elsewhere; when it says no, the band voicing (half the work) is skipped and the
    result is None.  ``only``: the frames that get a band voicing (the others keep the gate's)."""
    x = np.asarray(x, np.float64)
    cm = cmndf(x)
    log_env, power = lpc_envelope(x)
    m = min(len(cm), len(power))
    f0, voiced = track_f0(cm[:m], power[:m])
    idx = np.flatnonzero(voiced)
    filled = np.interp(np.arange(m), idx, f0[idx]) if len(idx) else np.full(m, 120.0)
    frames_ = sv.VoiceFrames(
        t=np.arange(m) * sv.HOP,
        f0=filled,
        level_db=10.0 * np.log10(np.maximum(power[:m], 1e-10)),
        ceps=sv.ceps_from_envelope(log_env[:m] - log_env[:m].mean(axis=1, keepdims=True)),
        voicing=np.repeat(voiced[:, None].astype(np.float64), len(sv.BANDS) - 1, axis=1),
    )
    if gate is not None and not gate(frames_):
        return None
    want = np.where(voiced, f0, 100.0)
    if only is not None:
        mask = np.zeros(m, bool)
        mask[only[only < m]] = True
        want = np.where(mask, want, 0.0)  # band_voicing skips frames without an f0
    voicing = band_voicing(x, want)[:m]
    voicing[~voiced] = 0.0
    if only is not None:
        voicing[~mask] = frames_.voicing[~mask]
    return replace(frames_, voicing=voicing)


def knots(frames_: sv.VoiceFrames, every: int, silence_db: float | None = SILENCE_DB) -> sv.VoiceFrames:
    """Every ``every``-th frame (and the last) as the track's knots, less those inside silence: a knot
    more than ``-silence_db`` dB below the loudest frame (or below :data:`SILENCE_FLOOR_DB`) whose
    neighbours are as quiet is dropped, so a pause costs its two edge knots (the glide between them stays
    as quiet).  ``silence_db=None`` keeps every knot."""
    if every < 1:
        raise ValueError(f"knot spacing must be at least one frame, got {every}")
    idx = np.unique(np.append(np.arange(0, len(frames_), every), len(frames_) - 1))
    if silence_db is None:
        return frames_.take(idx)
    level = frames_.level_db[idx]
    quiet = (level < frames_.level_db.max() + silence_db) | (level < SILENCE_FLOOR_DB)
    inner = quiet.copy()
    inner[1:] &= quiet[:-1]
    inner[:-1] &= quiet[1:]
    inner[[0, -1]] = False
    return frames_.take(idx[~inner])


FILE_BYTES = 305
"""What a file spends outside its chunk frames and index entries (the preamble, the header with settings
holding only ``kbps`` and what differs from the defaults, the index frame's own bytes, the trailer): 305
bytes measured on the voice dev clip voice-00 (16 kHz mono, 4 chunks).  :func:`voice_budget` spreads it over
the input when its length is known."""
CONTEXT_S = 0.1
"""Audio analysed on each side of a hop (s): the analysis frames near its edges see real signal."""
MIN_EVERY, MAX_EVERY = 3, 12
"""Knot spacing bounds, in analysis frames (15-60 ms): :func:`hop_knots` keeps the densest that fits."""
GATE_MOVE_ST = 0.03
"""Speech gate: median pitch change (semitones per 5 ms frame) of the loud voiced frames, at least.  Speech
glides (0.04-0.17 on the dev speech); held notes step (0.002-0.03 on the dev notes)."""
GATE_UNVOICED = 0.8
"""Speech gate: share of unvoiced frames among the loud ones, at most (mixed music is mostly aperiodic)."""
GATE_SWITCHES = 1.0
"""Speech gate: voiced/unvoiced switches per second among the loud frames, at least (syllables)."""
GATE_LOUD_DB = 30.0
"""Frames within this of the hop's loudest are the gate's loud frames."""
GATE_PAUSE = 0.005
"""Speech gate: share of the frames of the hop and its look-ahead (about 6 s) that are not loud (pauses
between words), at least.  Music rarely falls 30 dB (at most 0.002 in the dev music hops)."""


def speech_like(fr: sv.VoiceFrames, hop: np.ndarray, level_all_db: np.ndarray | None = None) -> bool:
    """Whether analysed frames look like speech (the gate before voice knots compete with events): in the
    hop's frames (indices ``hop``), pitch that glides, mostly voiced, switching between voiced and unvoiced
    at a syllable rate; and pauses between loud frames somewhere in ``level_all_db`` (the frame levels of
    the hop with its look-ahead, default ``fr``'s: a few seconds of speech have a pause, music rarely falls
    :data:`GATE_LOUD_DB` for long, and a fade-out or the end of the input is not a pause)."""
    h = fr.take(hop)
    if not len(h):
        return False
    levels = fr.level_db if level_all_db is None else level_all_db
    top = float(levels.max())
    loud = h.level_db > top - GATE_LOUD_DB
    voiced = h.voicing.max(axis=1) > 0.0
    lv = voiced[loud]
    pitch = 12.0 * np.log2(np.maximum(h.f0[loud & voiced], 1.0))
    if len(pitch) < 3:
        return False
    move = float(np.median(np.abs(np.diff(pitch))))
    switches = np.count_nonzero(np.diff(lv.astype(np.int64))) / (len(h) * sv.HOP / sv.SR)
    return bool(
        move >= GATE_MOVE_ST
        and float(np.mean(~lv)) <= GATE_UNVOICED
        and switches >= GATE_SWITCHES
        and has_pauses(levels)
    )


def has_pauses(level_db: np.ndarray) -> bool:
    """Whether frame levels (dB) have pauses between loud frames: at least :data:`GATE_PAUSE` of the frames
    lie :data:`GATE_LOUD_DB` below the loudest, between two loud ones (a fade-out or the end is no pause)."""
    if not len(level_db):
        return False
    loud = level_db > float(level_db.max()) - GATE_LOUD_DB
    span = np.flatnonzero(loud)
    return float(np.sum(~loud[span[0] : span[-1] + 1])) / len(level_db) >= GATE_PAUSE


@dataclass(frozen=True)
class HopAnalysis:
    """A hop's voice analysis (:func:`analyse_hop`): its frames, their absolute times, and the level
    offset and pan that carry a stereo input."""

    frames: sv.VoiceFrames
    times: np.ndarray  # int64[M]: absolute sample of each frame
    lo: int
    hi: int
    boost_db: float
    pan: float


def analyse_hop(x: np.ndarray, sample_rate: int, x_start: int, lo: int, hi: int) -> HopAnalysis | None:
    """The voice analysis of samples ``[lo, hi)`` of ``x`` (``float[C, n]`` at ``sample_rate``, its first
    sample at absolute ``x_start``, from ``lo - CONTEXT_S`` through the look-ahead: the frame levels of all
    of it feed the pause gate, the pitch and envelope are analysed up to ``hi + CONTEXT_S``), or None when
    the hop is not :func:`speech_like`.  Stereo: the mid signal's envelope and pitch, the level of
    both channels together, one pan for the hop."""
    import soxr

    a = np.asarray(x, np.float64)
    mid = a.mean(axis=0)
    y = soxr.resample(mid, sample_rate, sv.SR) if sample_rate != sv.SR else mid
    # the look-ahead only counts for the pause gate: frame levels there, the full analysis up to the hop's end
    level_all = 10.0 * np.log10(np.maximum(frame_power(y), 1e-10))
    if not has_pauses(level_all):  # the cheap part of the gate first: most music has no pause
        return None
    y = y[: min(len(y), math.ceil((hi - x_start) * sv.SR / sample_rate) + round(CONTEXT_S * sv.SR))]
    m = len(y) // sv.HOP + 1  # frames analyse() returns
    t_abs = x_start + np.rint(np.arange(m) * sv.HOP * (sample_rate / sv.SR)).astype(np.int64)
    inside = np.flatnonzero((t_abs >= lo) & (t_abs < hi))
    if not len(inside):
        return None
    fr = analyse(y, gate=lambda f: speech_like(f, inside[inside < len(f)], level_all), only=inside)
    if fr is None:
        return None
    inside = inside[inside < len(fr)]
    seg = a[:, max(lo - x_start, 0) : max(hi - x_start, 0)]
    e = (seg**2).sum(axis=1)
    e_mid = float((seg.mean(axis=0) ** 2).sum())
    boost = 10.0 * np.log10(max(float(e.sum()), 1e-30) / e_mid) if e_mid > 0 else 0.0
    pan = 0.0
    if a.shape[0] == 2 and e.sum() > 0:
        pan = float(4.0 / np.pi * np.arctan2(np.sqrt(e[1]), np.sqrt(e[0])) - 1.0)
    return HopAnalysis(fr.take(inside), t_abs[inside], lo, hi, boost, pan)


def voice_budget(
    kbps: float | None, hop_samples: int, sample_rate: int, total_samples: int | None
) -> float | None:
    """Bits a hop of voice knots may take (its chunk frame and index entry included) for a ``kbps`` target
    counted over the whole file: the hop's share of the rate, less its share of :data:`FILE_BYTES` when the
    input's length is known (None: no target)."""
    if kbps is None:
        return None
    bits = kbps * 1000.0 * hop_samples / sample_rate
    if total_samples:
        bits -= 8.0 * FILE_BYTES * min(1.0, hop_samples / total_samples)
    return bits


def hop_knots(h: HopAnalysis, budget_bits: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Layout-2 voice knots of an analysed hop → ``(vectors float64[K, 32], times int64[K])`` at absolute
    samples: the densest spacing (:data:`MIN_EVERY`..:data:`MAX_EVERY` frames, pauses thinned by
    :func:`knots`) whose chunk fits ``budget_bits`` (None: the densest; else at worst the sparsest)."""
    from sparsecodec.format import container, quantize

    table = quantize.TABLES["layout2"]

    def at(every: int) -> tuple[np.ndarray, np.ndarray]:
        k = knots(h.frames, every)
        times = h.times[np.searchsorted(h.frames.t, k.t)]
        track = sv.VoiceFrames(
            times, k.f0, k.level_db + h.boost_db, k.ceps, k.voicing, np.full(len(k), h.pan)
        )
        return sv.to_vectors(track), times

    def fits(every: int, budget: float) -> bool:
        vectors, times = at(every)
        codes = quantize.quantize(vectors, table)
        return 8 * container.chunk_file_bytes(times, codes, h.lo, h.hi - h.lo, table) <= budget

    # the bits fall as the spacing grows: the smallest spacing that fits, by bisection
    lo, hi = MIN_EVERY, MAX_EVERY
    if budget_bits is not None and not fits(lo, budget_bits):
        while lo < hi:
            mid = (lo + hi) // 2
            if fits(mid, budget_bits):
                hi = mid
            else:
                lo = mid + 1
    vectors, times = at(lo)
    return vectors, times
