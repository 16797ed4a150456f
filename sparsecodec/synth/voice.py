"""Voice synthesis: the knots of a voice track → audio, at any sample rate.  numpy only, no torch.

A layout-2 voice event (``formats/spev.md`` §3.2, :data:`format.events.VOICE_DIMS`) is one *knot* of the
file's voice track: f0, level, a spectral envelope in absolute frequency (:data:`N_CEPS` mel-cepstral
coefficients, so formants stay put when f0 moves) and a voicing strength in each of the :data:`BANDS`.
Between two knots at most :data:`MAX_GAP_S` apart every value glides (f0 in log frequency, the rest
linearly); a longer gap, or two silent knots, is silence.  Synthesis: the harmonics of the gliding f0, their
amplitudes read off the envelope and weighted by the band voicing, plus noise shaped by the envelope for
the unvoiced share; both are scaled to the knot's power.  Edits act on the knots: :func:`transpose` moves
f0 only, :func:`formant_shift` warps the envelope's frequency axis only.

Every output sample is a function of the knots within :data:`LOOKBACK_S` before it and :data:`MAX_GAP_S`
after it, never of where a render starts or stops (:func:`render_span`), so seeks, streams and parallel
decodes give the same samples.  For that the harmonic phase restarts at *reset* knots: silent or fully
unvoiced knots after another such knot, and track starts (free: no harmonic sounds over the segment before
them), and, when an :data:`EPOCH_S` interval has none, the first knot after its end, where the old and new
phases cross-fade over one knot segment.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np

from sparsecodec.format import events

SR = 16000
"""Voice analysis and synthesis rate (Hz)."""
HOP = 80
"""Analysis frame step: 5 ms at :data:`SR`."""
N_MEL = 40
"""Points of the envelope's mel grid between :data:`F_LO` and :data:`F_HI`."""
N_CEPS = 16
"""Mel-cepstra kept per knot (DCT terms 1..N_CEPS of the log10 envelope; term 0 is the level)."""
F_LO, F_HI = 60.0, 7800.0
"""Envelope range (Hz); nothing is synthesised above :data:`F_HI`."""
F0_MIN = 60.0
"""Lowest f0 (Hz): bounds the harmonic count."""
BANDS = (0.0, 1000.0, 2000.0, 4000.0, 8000.0)
"""Voicing bands (Hz edges)."""
FRAME_S = 0.005
"""Noise frames step by this (s, rounded to samples); each is four steps long (Hann)."""
MAX_GAP_S = 0.25
"""Two knots further apart than this (s) are not joined: the track is silent between them."""
FADE_S = 0.01
"""A track fades in over this long (s) before its first knot and out after its last."""
SILENT_DB = -110.0
"""Knots at or below this level are silent (two silent knots are not joined either)."""
EPOCH_S = 2.0
"""Longest stretch (s) without a phase reset (see the module's docstring)."""
LOOKBACK_S = 4.0 * EPOCH_S + 2.0 * MAX_GAP_S + FADE_S
"""How far back (s) knots decide a sample (:func:`render_span`); within ``events.MAX_SUPPORT_S``."""
NOISE_BLOCK = 4096
"""The white noise is drawn in blocks of this many samples, each seeded by its index."""
NOISE_SALT = 0x5E5F
CHUNK_S = 0.25
"""Harmonics are summed over spans of at most this many seconds, each up to its own highest harmonic."""


@dataclass(frozen=True)
class VoiceFrames:
    """A voice track sampled at knots ``t`` (integer samples, increasing): ``f0`` Hz ``[K]``, ``level_db``
    power in dB full scale ``[K]``, ``ceps`` ``[K, N_CEPS]`` (log10 envelope shape, mel-cepstra),
    ``voicing`` ``[K, 4]`` (0..1, the harmonic share of each band's power), ``pan`` ``[K]`` (-1..1; None:
    centre)."""

    t: np.ndarray
    f0: np.ndarray
    level_db: np.ndarray
    ceps: np.ndarray
    voicing: np.ndarray
    pan: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.t)

    def take(self, idx: np.ndarray) -> VoiceFrames:
        """The knots ``idx``."""
        pan = None if self.pan is None else self.pan[idx]
        return VoiceFrames(
            self.t[idx], self.f0[idx], self.level_db[idx], self.ceps[idx], self.voicing[idx], pan
        )

    def pans(self) -> np.ndarray:
        """``float64[K]``: the pan of each knot (0 when none is given)."""
        return np.zeros(len(self.t)) if self.pan is None else np.asarray(self.pan, np.float64)


def _mel(hz: np.ndarray | float) -> np.ndarray:
    """Frequency (Hz) → mel."""
    return np.asarray(2595.0 * np.log10(1.0 + np.maximum(hz, 0.0) / 700.0))


_MEL_LO, _MEL_HI = float(_mel(F_LO)), float(_mel(F_HI))


def mel_grid() -> np.ndarray:
    """``float64[N_MEL]``: the envelope's frequencies (Hz), evenly spaced in mel."""
    return 700.0 * (10.0 ** (np.linspace(_MEL_LO, _MEL_HI, N_MEL) / 2595.0) - 1.0)


def _dct_matrix() -> np.ndarray:
    """The orthonormal DCT-II of :data:`N_MEL` points as a matrix (its inverse is its transpose); numpy only,
    so a decode does not load scipy."""
    n = np.arange(N_MEL)
    m = np.sqrt(2.0 / N_MEL) * np.cos(np.pi * (n[None, :] + 0.5) * n[:, None] / N_MEL)
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_matrix()


def ceps_from_envelope(log_env: np.ndarray) -> np.ndarray:
    """``[..., N_MEL]`` log10 power envelope on :func:`mel_grid` → ``[..., N_CEPS]`` shape coefficients
    (DCT-II terms 1..N_CEPS, orthonormal)."""
    return np.asarray(log_env, np.float64) @ _DCT[1 : N_CEPS + 1].T


def envelope_from_ceps(ceps: np.ndarray) -> np.ndarray:
    """``[..., N_CEPS]`` → ``[..., N_MEL]`` log10 envelope shape (mean 0) on :func:`mel_grid`."""
    c = np.asarray(ceps, np.float64)
    return c @ _DCT[1 : c.shape[-1] + 1]


def band_of(freqs: np.ndarray) -> np.ndarray:
    """The voicing band (index into :data:`BANDS`) of each frequency (Hz)."""
    return np.clip(np.searchsorted(BANDS, freqs, side="right") - 1, 0, len(BANDS) - 2)


def transpose(frames: VoiceFrames, semitones: float) -> VoiceFrames:
    """f0 moved by ``semitones``; envelope (formants), level and voicing kept."""
    return replace(frames, f0=frames.f0 * 2.0 ** (semitones / 12.0))


def formant_shift(frames: VoiceFrames, ratio: float) -> VoiceFrames:
    """The envelope's frequency axis scaled by ``ratio`` (> 1: formants up); f0 kept."""
    mel_hz = mel_grid()
    env = envelope_from_ceps(frames.ceps)
    src = np.clip(mel_hz / ratio, mel_hz[0], mel_hz[-1])
    warped = np.stack([np.interp(src, mel_hz, row) for row in env]) if len(env) else env
    return replace(frames, ceps=ceps_from_envelope(warped))


def from_vectors(vectors: np.ndarray, times: np.ndarray) -> VoiceFrames:
    """Layout-2 voice knots (``float[K, 32]``, :data:`format.events.VOICE_DIMS`) at integer sample ``times``
    → a track (sorted by time; of knots at the same time the last is kept)."""
    v = np.asarray(vectors, np.float64).reshape(-1, events.N_DIMS)
    t = np.asarray(times, np.int64)
    order = np.argsort(t, kind="stable")
    v, t = v[order], t[order]
    keep = np.append(np.diff(t) > 0, True) if len(t) else np.zeros(0, bool)
    v, t = v[keep], t[keep]
    col = events.VOICE_INDEX
    return VoiceFrames(
        t=t,
        f0=np.asarray(events.pitch_to_hz(v[:, col["pitch"]]), np.float64),
        level_db=v[:, col["level"]],
        ceps=v[:, col["ceps1"] : col["ceps1"] + N_CEPS],
        voicing=v[:, col["voicing1"] : col["voicing1"] + len(BANDS) - 1],
        pan=v[:, col["pan"]],
    )


def to_vectors(k: VoiceFrames) -> np.ndarray:
    """A track → layout-2 voice knots ``float64[K, 32]`` (times: ``k.t``), clipped to the table's ranges."""
    col = events.VOICE_INDEX
    v = events.voice_defaults(len(k))
    v[:, col["level"]] = k.level_db
    v[:, col["pitch"]] = events.hz_to_pitch(np.maximum(k.f0, 1.0))
    v[:, col["voicing1"] : col["voicing1"] + len(BANDS) - 1] = k.voicing
    v[:, col["ceps1"] : col["ceps1"] + N_CEPS] = k.ceps
    v[:, col["pan"]] = k.pans()
    return events.clip(v)


def render(knots: VoiceFrames, n_samples: int, rate: int = SR) -> np.ndarray:
    """A voice track (times in samples at ``rate``) → mono ``float32[n_samples]`` from sample 0."""
    return render_span(knots, rate, 0, max(int(n_samples), 0), 1)[0]


@dataclass(frozen=True)
class _Track:
    """A track prepared for rendering: knots sorted, joins and phase runs decided."""

    k: VoiceFrames
    joined: np.ndarray  # bool[K-1]: segment i (knots i, i+1) sounds
    forced: np.ndarray  # bool[K]: knot i starts a run by the epoch rule (cross-fade over segment i)
    phase: np.ndarray  # float64[K]: phase (rad, mod 2 pi) of f0 at each knot within its run
    prev_phase: np.ndarray  # float64[K]: at a forced knot, the old run's phase there


def joins(t: np.ndarray, level_db: np.ndarray, gap: float) -> np.ndarray:
    """``bool[K - 1]``: which consecutive knots (times ``t``, increasing) are joined: at most ``gap`` apart
    (the same unit as ``t``: :data:`MAX_GAP_S` in s, or in samples) and not both silent."""
    silent = np.asarray(level_db) <= SILENT_DB
    return (np.diff(t) <= gap) & ~(silent[:-1] & silent[1:])


def _prepare(k: VoiceFrames, cut: np.ndarray, rate: int) -> _Track:
    t = k.t.astype(np.int64)
    n = len(t)
    silent = k.level_db <= SILENT_DB
    joined = joins(t, k.level_db, round(MAX_GAP_S * rate)) & ~cut
    mute = silent | (k.voicing.max(axis=1, initial=0.0) <= 0.0)  # no harmonic sounds at the knot
    free = np.ones(n, bool)  # a free reset: no harmonic sounds over the whole segment before the knot
    free[1:] = ~joined | (mute[:-1] & mute[1:])
    epoch = max(1, round(EPOCH_S * rate))
    cell = t // epoch
    # a free reset in each epoch cell?  (cells with none force a reset at the first knot of the next cell)
    has_free = np.zeros(int(cell.max() - cell.min()) + 2 if n else 0, bool)
    has_free[(cell - cell.min())[free]] = True
    forced = np.zeros(n, bool)
    if n > 1:
        crossing = cell[1:] > cell[:-1]  # knot i + 1 is the first at or after an epoch boundary
        prev_cell = cell[1:] - 1 - cell.min()
        forced[1:] = crossing & ~free[1:] & ~has_free[prev_cell]
    starts = free | forced
    # phase: integral of f0 over each segment (f0 log-linear between the knots), summed within runs
    seg = np.zeros(max(n - 1, 0))
    if n > 1:
        d = np.diff(t) / rate
        f_a, f_b = k.f0[:-1], k.f0[1:]
        ratio = np.log(np.maximum(f_b, 1e-9) / np.maximum(f_a, 1e-9))
        mean = np.where(np.abs(ratio) > 1e-9, (f_b - f_a) / np.where(ratio == 0, 1.0, ratio), f_a)
        seg = 2.0 * np.pi * mean * d
    phase = np.zeros(n)
    prev = np.zeros(n)
    acc = 0.0
    for i in range(n):  # sequential within a run, so the floats do not depend on the window
        if starts[i]:
            prev[i] = acc
            acc = 0.0
        phase[i] = acc
        if i < n - 1:
            acc = (acc + seg[i]) % (2.0 * np.pi)
    return _Track(k, joined, forced, phase, prev)


def render_span(k: VoiceFrames, rate: int, a: int, b: int, channels: int = 1) -> np.ndarray:
    """Samples ``[a, b)`` (absolute, at ``rate``) of the voice track ``k`` → ``float32[channels, b - a]``.

    Exact for any ``a``/``b`` when ``k`` holds every knot in ``[a - LOOKBACK_S, b + MAX_GAP_S]`` (more knots
    change nothing); stereo pans each sample by the knots' ``pan`` (equal power)."""
    out = np.zeros((channels, max(b - a, 0)), np.float32)
    if b <= a or not len(k):
        return out
    k = k.take(np.argsort(k.t, kind="stable"))
    tr = _prepare(*_with_fades(k, rate), rate) if rate <= INNER_RATE or channels > 1 else None
    if tr is not None and rate <= INNER_RATE:
        mono = _harmonics(tr, rate, a, b) + _noise(tr, rate, a, b)
    else:  # the voice has nothing above F_HI: render it at INNER_RATE and interpolate
        inner = replace(k, t=(k.t * INNER_RATE) // rate)
        tr_in = _prepare(*_with_fades(inner, INNER_RATE), INNER_RATE)
        lo = (a * INNER_RATE) // rate - TAPS + 1
        hi = ((b - 1) * INNER_RATE) // rate + TAPS + 1
        x = _harmonics(tr_in, INNER_RATE, lo, hi) + _noise(tr_in, INNER_RATE, lo, hi)
        mono = _interpolate(x, lo, rate, a, b)
    if channels == 1:
        out[0] = mono
        return out
    assert tr is not None  # made for every stereo render
    ang = (np.pi / 4.0) * (_pan_at(tr, np.arange(a, b)) + 1.0)
    out[0], out[1] = mono * np.cos(ang), mono * np.sin(ang)
    return out


INNER_RATE = 16000
"""Above this output rate the voice is rendered at this rate and interpolated (it holds nothing above
:data:`F_HI`): 2.8 times fewer samples to sum harmonics over at 44.1 kHz."""
TAPS = 16
"""Interpolation taps on each side (windowed sinc)."""
INTERP_CUTOFF = 7400.0
"""The interpolator's cutoff (Hz): flat through the voice's band, its images above 8 kHz attenuated."""


def _interp_weights(phase: np.ndarray, rate: int) -> np.ndarray:
    """``float64[S, 2 TAPS]`` weights of the inner samples ``floor(s R / rate) - TAPS + 1 + j`` for output
    samples whose position between inner samples is ``phase / rate`` (R = :data:`INNER_RATE`)."""
    frac = phase / rate
    u = frac[:, None] + (TAPS - 1) - np.arange(2 * TAPS)[None, :]  # distance in inner samples
    c = 2.0 * INTERP_CUTOFF / INNER_RATE
    window = 0.5 + 0.5 * np.cos(np.pi * np.clip(u / TAPS, -1.0, 1.0))
    return c * np.sinc(c * u) * window


@functools.lru_cache(maxsize=8)
def _weight_table(rate: int) -> np.ndarray | None:
    """The weights for every phase of ``rate`` against :data:`INNER_RATE` (None when there are too many)."""
    step = math.gcd(rate, INNER_RATE)
    if rate // step > 4096:
        return None
    return _interp_weights(np.arange(0, rate, step), rate)


def _interpolate(x: np.ndarray, x_start: int, rate: int, a: int, b: int) -> np.ndarray:
    """Output samples ``[a, b)`` at ``rate`` of the signal ``x`` sampled at :data:`INNER_RATE` from inner
    sample ``x_start`` (windowed-sinc interpolation; each output sample from the same inner samples and
    weights whatever the span)."""
    s = np.arange(a, b, dtype=np.int64)
    num = s * INNER_RATE
    base = num // rate - TAPS + 1 - x_start
    phase = num % rate
    table = _weight_table(rate)
    w = _interp_weights(phase, rate) if table is None else table[phase // math.gcd(rate, INNER_RATE)]
    taps = x[base[:, None] + np.arange(2 * TAPS)[None, :]]
    return np.einsum("ij,ij->i", taps, w)


def _with_fades(k: VoiceFrames, rate: int) -> tuple[VoiceFrames, np.ndarray]:
    """The track with a silent knot :data:`FADE_S` before each track start and after each track end that
    is not silent, so that a track fades in and out instead of starting or stopping on a step; and
    ``bool[K' - 1]``: the segments that must stay unjoined (from an added end, to an added start)."""
    t = k.t.astype(np.int64)
    fade = max(1, round(FADE_S * rate))
    silent = k.level_db <= SILENT_DB
    joined = joins(t, k.level_db, round(MAX_GAP_S * rate))
    starts = ~silent & np.concatenate([[True], ~joined])
    ends = ~silent & np.concatenate([~joined, [True]])
    n_s, n_e = int(starts.sum()), int(ends.sum())
    if not n_s + n_e:
        return k, np.zeros(max(len(t) - 1, 0), bool)
    idx = np.concatenate([np.arange(len(t)), np.flatnonzero(starts), np.flatnonzero(ends)])
    when = np.concatenate([t, t[starts] - fade, t[ends] + fade])
    role = np.concatenate([np.zeros(len(t), np.int64), np.ones(n_s, np.int64), np.full(n_e, 2)])
    order = np.lexsort((role, when))  # at equal times: an end, then a knot, then a start... by role
    role = role[order]
    out = k.take(idx[order])
    out = replace(out, t=when[order], level_db=np.where(role > 0, SILENT_DB, out.level_db))
    cut = (role[:-1] == 2) | (role[1:] == 1)
    return out, cut


def _pan_at(tr: _Track, s: np.ndarray) -> np.ndarray:
    """Pan at samples ``s``: glided within a sounding segment, else the previous knot's."""
    t, pan = tr.k.t, tr.k.pans()
    i = np.clip(np.searchsorted(t, s, side="right") - 1, 0, len(t) - 1)
    j = np.minimum(i + 1, len(t) - 1)
    inside = (i < len(t) - 1) & (s >= t[i])
    inside[inside] &= tr.joined[i[inside]]
    u = np.where(inside, (s - t[i]) / np.maximum(t[j] - t[i], 1), 0.0)
    return pan[i] + u * (pan[j] - pan[i])


def _env_at(shape: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """log10 envelope ``shape`` ``[F, N_MEL]`` read at ``freqs`` ``[F, K]`` (Hz; linear in mel, held beyond
    the grid's ends, as ``np.interp`` on :func:`mel_grid`)."""
    pos = np.clip((_mel(freqs) - _MEL_LO) / (_MEL_HI - _MEL_LO) * (N_MEL - 1), 0.0, N_MEL - 1.0)
    j = np.minimum(pos.astype(np.int64), N_MEL - 2)
    frac = pos - j
    rows = np.arange(shape.shape[0])[:, None]
    return shape[rows, j] * (1.0 - frac) + shape[rows, j + 1] * frac


_DENS_GRID = np.linspace(0.0, F_HI, 256)


def _params(
    tr: _Track, i: np.ndarray, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """At fraction ``u`` of segments ``i``: ``(f0 Hz [F], log10 envelope [F, N_MEL], voicing [F, 4],
    scale [F])`` where the envelope density times ``scale`` integrates to the power."""
    k = tr.k
    j = i + 1
    w = u[:, None]
    f0 = k.f0[i] * (k.f0[j] / k.f0[i]) ** u
    level = k.level_db[i] + u * (k.level_db[j] - k.level_db[i])
    shape = envelope_from_ceps(k.ceps[i] + w * (k.ceps[j] - k.ceps[i]))
    shape -= shape.max(axis=1, keepdims=True)  # the scale normalises the shape: this only avoids overflow
    voicing = np.clip(k.voicing[i] + w * (k.voicing[j] - k.voicing[i]), 0.0, 1.0)
    dens = (10.0 ** _env_at(shape, np.broadcast_to(_DENS_GRID, (len(i), len(_DENS_GRID))))).mean(axis=1)
    scale = np.where(level > SILENT_DB, 10.0 ** (level / 10.0), 0.0) / np.maximum(dens * F_HI, 1e-30)
    return f0, shape, voicing, scale


def _top(rate: int) -> float:
    """Highest frequency synthesised (Hz)."""
    return min(F_HI, 0.45 * rate)


def _harmonics(tr: _Track, rate: int, a: int, b: int) -> np.ndarray:
    """Harmonic part of samples ``[a, b)``: per sounding segment, amplitudes at sub-frames about
    :data:`FRAME_S` apart (power per harmonic = envelope density x f0 x voicing), linear per sample in
    between; phase = k x the integral of f0 within the run; summed by Clenshaw's recurrence on
    ``cos(k phase)`` (two multiply-adds per harmonic and sample, no cosine per harmonic)."""
    out = np.zeros(b - a)
    t = tr.k.t
    step = max(1, round(FRAME_S * rate))
    top = _top(rate)
    segs = [int(i) for i in np.flatnonzero(tr.joined) if t[i] < b and t[i + 1] > a]
    # gather segments into spans of at most CHUNK_S (one Clenshaw loop each)
    span: list[int] = []
    for i in [*segs, -1]:
        if span and (i < 0 or t[i + 1] - t[span[0]] > CHUNK_S * rate):
            _harmonic_span(tr, span, rate, a, b, step, top, out)
            span = []
        if i >= 0:
            span.append(i)
    return out


def _harmonic_span(
    tr: _Track, segs: list[int], rate: int, a: int, b: int, step: int, top: float, out: np.ndarray
) -> None:
    t, k = tr.k.t, tr.k
    s_lo, s_hi = max(int(t[segs[0]]), a), min(int(t[segs[-1] + 1]), b)
    if s_hi <= s_lo:
        return
    # sub-frames of each segment (both ends included): rows first[n] .. first[n] + n_sub[n] of the amplitudes
    seg_arr = np.asarray(segs, np.int64)
    n_sub = np.maximum(1, np.rint((t[seg_arr + 1] - t[seg_arr]) / step).astype(np.int64))
    first = np.concatenate([[0], np.cumsum(n_sub + 1)[:-1]])
    ii = np.repeat(seg_arr, n_sub + 1)
    uu = np.concatenate([np.linspace(0.0, 1.0, int(q) + 1) for q in n_sub])
    f0, shape, voicing, scale = _params(tr, ii, uu)
    kmax = int(top / max(float(f0.min()), 1.0))
    if kmax < 1:
        return
    harm = np.arange(1, kmax + 1)
    fk = f0[:, None] * harm[None, :]
    amps = np.sqrt(
        2.0
        * 10.0 ** _env_at(shape, fk)
        * np.take_along_axis(voicing, band_of(fk), axis=1)
        * (fk < top)
        * f0[:, None]
        * scale[:, None]
    )  # [rows, K]
    s = np.arange(s_lo, s_hi)
    n_of = np.searchsorted(seg_arr, np.searchsorted(t, s, side="right") - 1)  # each sample's place in segs
    i_s = seg_arr[n_of]
    d = t[i_s + 1] - t[i_s]
    u = (s - t[i_s]) / d
    pos = u * n_sub[n_of]
    j = np.minimum(pos.astype(np.int64), n_sub[n_of] - 1)
    frac = pos - j
    rows = first[n_of] + j
    phase = tr.phase[i_s] + _phase_in(k, i_s, u, d / rate)
    out[s_lo - a : s_hi - a] += _clenshaw(np.cos(phase), amps, rows, frac)
    # forced resets: over the segment after one, fade from the old run's phase to the new
    fade = tr.forced[i_s]
    if fade.any():
        old = tr.prev_phase[i_s[fade]] + _phase_in(k, i_s[fade], u[fade], d[fade] / rate)
        w = 0.5 - 0.5 * np.cos(np.pi * u[fade])
        new_part = _clenshaw(np.cos(phase[fade]), amps, rows[fade], frac[fade])
        old_part = _clenshaw(np.cos(old), amps, rows[fade], frac[fade])
        out[np.flatnonzero(fade) + s_lo - a] += (1.0 - w) * (old_part - new_part)


def _phase_in(k: VoiceFrames, i: np.ndarray, u: np.ndarray, d_s: np.ndarray) -> np.ndarray:
    """Phase (rad) gained from knots ``i`` to fractions ``u`` of their segments (``d_s`` seconds long)."""
    f_a = k.f0[i]
    r = np.log(np.maximum(k.f0[i + 1], 1e-9) / np.maximum(f_a, 1e-9))
    flat = np.abs(r) <= 1e-9
    glide = (np.exp(r * u) - 1.0) / np.where(flat, 1.0, r)
    return 2.0 * np.pi * f_a * d_s * np.where(flat, u, glide)


def _clenshaw(x: np.ndarray, amps: np.ndarray, rows: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """``sum_k a_k cos(k theta)`` with ``x = cos(theta)`` and ``a_k`` interpolated between amplitude rows
    ``rows`` and ``rows + 1`` by ``frac``."""
    two_x = 2.0 * x
    b1 = np.zeros(len(x))
    b2 = np.zeros(len(x))
    live = np.flatnonzero(amps.max(axis=0) > 0)
    if not len(live):
        return b1
    lo, hi = amps[rows], amps[np.minimum(rows + 1, len(amps) - 1)]
    for kk in range(int(live[-1]), -1, -1):  # harmonic kk + 1, from the top down
        b0 = two_x * b1 - b2
        col_lo, col_hi = lo[:, kk], hi[:, kk]
        b0 += col_lo + frac * (col_hi - col_lo)
        b2, b1 = b1, b0
    return x * b1 - b2


def _noise(tr: _Track, rate: int, a: int, b: int) -> np.ndarray:
    """Unvoiced part of samples ``[a, b)``: Hann frames of white noise on the absolute grid (every
    :data:`FRAME_S`), each shaped by the envelope x (1 - voicing) at its centre, overlap-added."""
    step = max(1, round(FRAME_S * rate))
    n = 4 * step
    t = tr.k.t
    m = np.arange((a - n // 2) // step, (b + n // 2) // step + 2)
    c = m * step
    i = np.clip(np.searchsorted(t, c, side="right") - 1, 0, max(len(t) - 2, 0))
    sounding = (len(t) > 1) & (c >= t[i]) & (c < t[np.minimum(i + 1, len(t) - 1)])
    if len(t) > 1:
        sounding &= tr.joined[np.minimum(i, len(tr.joined) - 1)]
    m, c, i = m[sounding], c[sounding], i[sounding]
    out = np.zeros(b - a)
    if not len(m):
        return out
    u = (c - t[i]) / (t[i + 1] - t[i])
    _, shape, voicing, scale = _params(tr, i, u)
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    top = _top(rate)
    env = 10.0 ** _env_at(shape, np.broadcast_to(freqs, (len(m), len(freqs))))
    unvoiced = 1.0 - voicing[:, band_of(freqs)]
    gain = np.sqrt(env * unvoiced * (freqs < top) * scale[:, None] * (rate / 2.0))
    keep = gain.max(axis=1) > 0
    m, c, gain = m[keep], c[keep], gain[keep]
    if not len(m):
        return out
    win = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)  # periodic Hann: sum of squares at hop n/4 = 1.5
    starts = c - n // 2
    white = _white(int(starts.min()), int(starts.max()) + n)
    frames = white[(starts - starts.min())[:, None] + np.arange(n)[None, :]] * win
    shaped = np.fft.irfft(np.fft.rfft(frames, axis=1) * gain, n, axis=1) * win / 1.5
    lo = starts - a
    for q in range(len(m)):  # frames overlap: add each in turn
        s0, s1 = max(int(lo[q]), 0), min(int(lo[q]) + n, b - a)
        if s1 > s0:
            out[s0:s1] += shaped[q, s0 - int(lo[q]) : s1 - int(lo[q])]
    return out


def _white(s0: int, s1: int) -> np.ndarray:
    """Standard normal noise for absolute samples ``[s0, s1)``: blocks of :data:`NOISE_BLOCK`, each drawn from
    its own seed, so any sample's value does not depend on the span asked for."""
    first, last = s0 // NOISE_BLOCK, (s1 - 1) // NOISE_BLOCK
    parts = [
        np.random.default_rng([NOISE_SALT, q + (1 << 32)]).standard_normal(NOISE_BLOCK)
        for q in range(first, last + 1)
    ]
    whole = np.concatenate(parts)
    return whole[s0 - first * NOISE_BLOCK : s1 - first * NOISE_BLOCK]


class VoiceStream:
    """The voice knots of a decode, streamed: :meth:`add` knots in time order, ask :meth:`final_until`
    how far the voice is final, :meth:`render` spans in order.  Keeps only the knots within
    :data:`LOOKBACK_S` of the last span, so memory is flat in the file's length."""

    def __init__(self, rate: int, channels: int) -> None:
        self.rate, self.channels = int(rate), int(channels)
        self._v = np.zeros((0, 32))
        self._t = np.zeros(0, np.int64)
        self._gap = round(MAX_GAP_S * self.rate)

    def add(self, vectors: np.ndarray, times_s: np.ndarray) -> None:
        """Voice knots ``float[K, 32]`` at onsets ``times_s`` (s)."""
        if len(vectors):
            t = np.rint(np.asarray(times_s, np.float64) * self.rate).astype(np.int64)
            self._v = np.concatenate([self._v, np.asarray(vectors, np.float64)])
            self._t = np.concatenate([self._t, t])

    def final_until(self, safe_until_s: float, n_total: int) -> int:
        """The sample up to which the voice is final when no knot will come before ``safe_until_s`` (s; at
        most ``n_total``): a span after the last knot depends on the next one unless that is more than a
        gap away; a track's fade-in starts :data:`FADE_S` before its knot, half a noise frame reaches back
        from its centre, and above :data:`INNER_RATE` the interpolator reads :data:`TAPS` inner samples
        ahead."""
        ahead = float(safe_until_s) * self.rate
        safe = n_total if ahead >= n_total else math.ceil(ahead)
        reach = 2 * max(1, round(FRAME_S * self.rate)) + max(1, round(FADE_S * self.rate))
        if self.rate > INNER_RATE:
            reach += math.ceil(TAPS * self.rate / INNER_RATE)
        if not len(self._t):
            return safe - reach
        last = int(self._t.max())
        return (safe if safe > last + self._gap else min(safe, last)) - reach

    def render(self, a: int, b: int) -> np.ndarray | None:
        """Samples ``[a, b)`` of the voice, ``float32[C, b - a]`` (None: silent); forgets knots that can no
        longer matter."""
        old = self._t < a - round(LOOKBACK_S * self.rate)
        if old.any():
            self._v, self._t = self._v[~old], self._t[~old]
        near = self._t <= b + self._gap
        if b <= a or not near.any():
            return None
        return render_span(from_vectors(self._v[near], self._t[near]), self.rate, a, b, self.channels)


def take_voice(
    stream: VoiceStream | None, v: np.ndarray, t: np.ndarray, rate: int, channels: int
) -> tuple[VoiceStream | None, np.ndarray]:
    """A stream renderer's share-out: the voice knots of events ``v`` (onsets ``t``, s) go to ``stream``
    (made on the first knot); returns the stream and ``bool[N]``, the events left to render as notes."""
    voice = events.is_voice(v)
    if voice.any():
        stream = stream if stream is not None else VoiceStream(rate, channels)
        stream.add(v[voice], t[voice])
    return stream, ~voice


def formants(ceps: np.ndarray, n: int = 3) -> np.ndarray:
    """The first ``n`` formants (Hz) of envelopes ``[K, N_CEPS]``: the lowest peaks above 150 Hz of each
    envelope read every 10 Hz that stand at least :data:`FORMANT_PROMINENCE_DB` above the higher of the
    valleys on either side (NaN where there are fewer), ``float64[K, n]``."""
    c = np.atleast_2d(np.asarray(ceps, np.float64))
    grid = np.arange(150.0, F_HI, 10.0)
    env = 10.0 * _env_at(envelope_from_ceps(c), np.broadcast_to(grid, (len(c), len(grid))))  # dB
    out = np.full((len(c), n), np.nan)
    for i, e in enumerate(env):
        peaks = np.flatnonzero((e[1:-1] > e[:-2]) & (e[1:-1] >= e[2:])) + 1
        bounds = np.concatenate([[0], peaks, [len(e) - 1]])
        found = []
        for j, p in enumerate(peaks):
            left = e[bounds[j] : p + 1].min()
            right = e[p : bounds[j + 2] + 1].min()
            if e[p] - max(left, right) >= FORMANT_PROMINENCE_DB:
                found.append(grid[p])
            if len(found) == n:
                break
        out[i, : len(found)] = found
    return out


FORMANT_PROMINENCE_DB = 1.0
"""How far (dB) a peak of the envelope must rise above its higher neighbouring valley to be a formant."""
