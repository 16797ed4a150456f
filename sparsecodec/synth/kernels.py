"""The synthesis contract: every kernel both renderers use, written once — :mod:`render_np` (numpy
decoder) and :mod:`render_torch` (differentiable twin) call these and define none of their own.

The synthesis is frame-based inverse-FFT additive synthesis on a global frame grid aligned to absolute
sample 0: Hann window ``N`` (:func:`frame_size`, ≈11.6 ms), hop ``N/4``, frame ``m`` centred at sample
``m * hop``.  Every event adds complex values into a spectrogram ``G[frames, N//2 + 1]``; one inverse real
FFT per frame (after :func:`hann_smooth` of the noise) and :func:`overlap_add` (÷2) give the audio.

Functions here are *array-generic*: they take the array namespace ``xp`` (``numpy`` or ``torch``) and use
operations both support, so the numpy decode path and the differentiable torch renderer run the same
maths, in the numpy decoder's float order (its output is pinned bit for bit by tests/test_exact.py).
Index bookkeeping (which event touches which frame) is plain numpy (:func:`plan_frames`,
:func:`partial_tables`), because it is integer work that needs no gradient.  Input validation
(:func:`check_inputs`, :func:`parse_room`, :func:`safe_frame`) lives here too.  No torch import here.
Each kernel's numpy and torch values are tested against each other in tests/test_kernels.py.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparsecodec.errors import UsageError
from sparsecodec.format import events

OVERLAP = 4
"""Frames per window: hop = N / OVERLAP (Hann overlap-add sums to OVERLAP/2)."""
HALF = OVERLAP // 2
"""A frame reaches HALF hops each side of its centre."""
KERNEL_HALF_WIDTH = 3
"""Each partial writes ``2 * KERNEL_HALF_WIDTH`` bins per frame, ``floor(x)-2 .. floor(x)+3`` around its
position ``x`` (the whole main lobe).  The kernel is faded to 0 over the last :data:`KERNEL_FADE` bins so
it stays continuous when ``x`` crosses a bin (smooth gradients); reconstruction error of a steady sinusoid
≈ -44.6 dB of its amplitude (measured; -43 dB with 8 plain taps)."""
KERNEL_FADE = 0.5
KERNEL_TABLE_RES = 8192
"""Fractional-bin resolution of the numpy kernel table (nearest entry; error about -70 dB of the partial)."""
PARTIAL_FLOOR = 10.0 ** (-70.0 / 20.0)
"""Partial-frames and noise cells below this fraction of the event's peak amplitude (-70 dB, well under the
kernel's own -45 dB error) are skipped."""
F_MAX_HZ = 20000.0
"""Nothing is rendered above this frequency."""
NYQUIST_FRACTION = 0.45
"""Nor above this fraction of the output rate."""
TAPER_FRACTION = 0.05
"""Partials and noise fade out linearly over the top 5 % below the frequency limit."""
SUPPORT_FADE_S = 0.05
"""Events fade out linearly over the last 50 ms of their support (no click when the support cuts a tail)."""
JITTER_FREQS_HZ = (0.7, 1.9, 3.1)
"""The pitch jitter is a sum of three slow sinusoids with seeded phases (std = ``jitter`` cents)."""
NOISE_TABLE_BITS = 20
NOISE_TABLE_SEED = 20240517
ROOM_MAX_RT60_S = 5.0
"""Room RT60 is clipped to this; the room tail (impulse response length) is at most this long."""
ROOM_TAIL_S = ROOM_MAX_RT60_S
"""Bound on how long after an event's support its reverb can still sound (seek pre-roll adds it)."""
ROOM_MIN_RT60_S = 0.05
ROOM_MAX_DAMPING = 3.0
LN1000 = math.log(1000.0)
"""T60 means a factor 1000 in amplitude."""

_T60_LOG_LO = math.log(events.REFERENCE_T60_LOW_HZ)
_T60_LOG_SPAN = math.log(events.REFERENCE_T60_HIGH_HZ) - _T60_LOG_LO
_C = events.INDEX


def frame_size(sample_rate: int) -> int:
    """Frame (FFT) size ``N`` for a rate: ``2**round(log2(sr * 0.0116))`` (512 at 44.1/48 kHz)."""
    if not 4000 <= sample_rate <= 768000:
        raise UsageError(f"sample rate {sample_rate} Hz outside 4000..768000")
    return int(2 ** round(math.log2(sample_rate * 0.0116)))


def f_max(sample_rate: int) -> float:
    """Highest rendered frequency at this output rate (Hz)."""
    return min(F_MAX_HZ, NYQUIST_FRACTION * sample_rate)


# ------------------------------------------------------------------------------------------ validation


def check_inputs(vectors: Any, times_s: Any, seeds: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and normalise ``(float64[N,32] clipped, float64[N], int64[N] seeds)``; raises UsageError."""
    v = np.asarray(vectors, dtype=np.float64)
    t = np.asarray(times_s, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != events.N_DIMS:
        raise UsageError(f"vectors must have shape [N, {events.N_DIMS}], got {v.shape}")
    if t.shape != (v.shape[0],):
        raise UsageError(f"times_s must have shape [{v.shape[0]}], got {t.shape}")
    check_finite(np.isfinite(v).all() and np.isfinite(t).all())
    s = event_seeds(t) if seeds is None else np.asarray(seeds, dtype=np.int64)
    if s.shape != t.shape:
        raise UsageError(f"seeds must have shape [{v.shape[0]}], got {s.shape}")
    return events.clip(v), t, s


def check_finite(ok: Any) -> None:
    """Raise UsageError unless ``ok`` (the event vectors and times are all finite)."""
    if not bool(ok):
        raise UsageError("event vectors and times must be finite")


def check_channels(channels: int) -> None:
    """Raise UsageError unless ``channels`` is 1 or 2."""
    if channels not in (1, 2):
        raise UsageError(f"channels must be 1 or 2, got {channels}")


def check_stream(channels: int, n_samples_total: int, start_sample: int) -> None:
    """A stream renderer's arguments: 1 or 2 channels, ``0 <= start_sample <= n_samples_total``."""
    check_channels(channels)
    if not 0 <= start_sample <= n_samples_total:
        raise UsageError("need 0 <= start_sample <= n_samples_total")


def parse_room(side: dict[str, Any] | None) -> tuple[float, float] | None:
    """``side["room"] = [rt60_s, damping]`` → clipped floats, or None (no room)."""
    if not side or side.get("room") is None:
        return None
    try:
        rt60, damping = (float(x) for x in side["room"])
    except (TypeError, ValueError) as exc:
        raise UsageError(f"side data 'room' must be [rt60_s, damping]: {exc}") from None
    if not (math.isfinite(rt60) and math.isfinite(damping)):
        raise UsageError("side data 'room' must be finite")
    return (
        float(np.clip(rt60, ROOM_MIN_RT60_S, ROOM_MAX_RT60_S)),
        float(np.clip(damping, 0.0, ROOM_MAX_DAMPING)),
    )


def safe_frame(safe_until_s: float, n_samples_total: int, sample_rate: int, hop: int) -> int | None:
    """First frame an event starting at or after ``safe_until_s`` can still change (frames before it are
    final), or None when such an event cannot reach the output at all (it starts more than
    ``MAX_SUPPORT_S`` after its end).  Raises UsageError for NaN."""
    safe = float(safe_until_s)
    if math.isnan(safe):
        raise UsageError("safe_until_s must not be NaN")
    if safe >= n_samples_total / sample_rate + events.MAX_SUPPORT_S:
        return None
    return math.ceil(safe * sample_rate / hop - 1e-9)


# ----------------------------------------------------------------------------------------------- tables


@functools.lru_cache(maxsize=1)
def noise_table() -> np.ndarray:
    """The fixed table of complex Gaussians (``complex128[2**20]``, ``E|z|^2 = 1``) all randomness reads."""
    rng = np.random.Generator(np.random.PCG64(NOISE_TABLE_SEED))
    z = rng.standard_normal((2, 1 << NOISE_TABLE_BITS)) * math.sqrt(0.5)
    out = z[0] + 1j * z[1]
    out.setflags(write=False)
    return out


def hann_kernel(d: Any, n: int, xp: Any) -> Any:
    """Zero-phase Hann kernel: DFT value at ``d`` bins from a unit complex exponential's frequency.

    ``K(d) = 0.5 E(d) + 0.25 E(d-1) + 0.25 E(d+1)`` with ``E(y) = N sinc(y) cos(pi y/N) / sinc(y/N)``;
    ``K(0) = N/2``.  Exact for a Hann-windowed frame centred at index 0 (closed form, differentiable).
    """

    def e(y: Any) -> Any:
        return n * xp.sinc(y) * xp.cos((math.pi / n) * y) / xp.sinc(y / n)

    return 0.5 * e(d) + 0.25 * e(d - 1.0) + 0.25 * e(d + 1.0)


def synthesis_kernel(d: Any, n: int, xp: Any) -> Any:
    """:func:`hann_kernel` faded to 0 at ``|d| = KERNEL_HALF_WIDTH`` (raised cosine over KERNEL_FADE bins)."""
    a = ((xp.abs(d) - (KERNEL_HALF_WIDTH - KERNEL_FADE)) * (1.0 / KERNEL_FADE)).clip(0.0, 1.0)
    return hann_kernel(d, n, xp) * (0.5 + 0.5 * xp.cos(math.pi * a))


def kernel_taps() -> np.ndarray:
    """``int64[2L]`` bin offsets ``-L+1 .. L`` a partial writes, from the bin below its position."""
    return np.arange(-KERNEL_HALF_WIDTH + 1, KERNEL_HALF_WIDTH + 1, dtype=np.int64)


@functools.lru_cache(maxsize=8)
def kernel_table(n: int) -> np.ndarray:
    """``float64[2L, R+1]``: :func:`synthesis_kernel` at ``j - r/R``, taps ``j = -L+1..L``, fractions r/R."""
    j = kernel_taps().astype(np.float64)[:, None]
    frac = np.arange(KERNEL_TABLE_RES + 1, dtype=np.float64)[None, :] / KERNEL_TABLE_RES
    out = synthesis_kernel(j - frac, n, np)
    out.setflags(write=False)
    return out


# ------------------------------------------------------------------------------------------------ seeds


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on ``uint64`` arrays (wrapping arithmetic)."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return x


def event_seeds(times_s: np.ndarray) -> np.ndarray:
    """Default per-event seeds ``int64[N]`` from the start time (µs) and the ordinal among equal times."""
    t = np.round(np.asarray(times_s, dtype=np.float64) * 1e6).astype(np.int64)
    order = np.argsort(t, kind="stable")
    ts = t[order]
    run_start = np.r_[0, np.flatnonzero(np.diff(ts)) + 1] if len(ts) else np.zeros(0, np.int64)
    starts = np.zeros(len(ts), dtype=np.int64)
    if len(ts):
        starts[run_start] = run_start
        starts = np.maximum.accumulate(starts)
    ordinal = np.empty(len(t), dtype=np.int64)
    ordinal[order] = np.arange(len(ts)) - starts
    mixed = _mix64(t.view(np.uint64) * np.uint64(64) + ordinal.view(np.uint64))
    return (mixed >> np.uint64(1)).astype(np.int64)


def seed_offsets(seeds: np.ndarray) -> np.ndarray:
    """Offsets ``int64[N]`` into :func:`noise_table` for each event's seed."""
    s = np.asarray(seeds, dtype=np.int64).view(np.uint64)
    return (_mix64(s) & np.uint64((1 << NOISE_TABLE_BITS) - 1)).astype(np.int64)


def seeded_phases(offsets: np.ndarray, count: int, salt: int) -> np.ndarray:
    """``float64[N, count]`` uniform phases (rad) read from the noise table at each event's offset."""
    mask = (1 << NOISE_TABLE_BITS) - 1
    idx = (offsets[:, None] + salt + np.arange(count)[None, :]) & mask
    return np.angle(noise_table()[idx])


# -------------------------------------------------------------------------------------------- controls


def _softplus(x: Any, xp: Any) -> Any:
    if xp is np:
        return np.logaddexp(0.0, x)
    return xp.nn.functional.softplus(x)


def _max1(x: Any, xp: Any) -> Any:
    """Max over axis 1, kept."""
    return x.max(1, keepdims=True) if xp is np else x.max(1, keepdim=True)[0]


def _sum1(x: Any, xp: Any) -> Any:
    """Sum over axis 1, kept."""
    return x.sum(1, keepdims=True) if xp is np else x.sum(1, keepdim=True)


def _relu(x: Any) -> Any:
    return x.clip(0.0, None)


def raised_cosine(tau: Any, rise: Any, xp: Any) -> Any:
    """Raised-cosine ramp from 0 at ``tau = 0`` to 1 at ``tau = rise`` (``tau`` in s; 0 before onset)."""
    return 0.5 - 0.5 * xp.cos(math.pi * (tau / rise).clip(0.0, 1.0))


def taper(freq: Any, fmax: float) -> Any:
    """Linear fade to 0 over the top :data:`TAPER_FRACTION` below ``fmax`` (Hz → gain)."""
    return ((fmax - freq) * (1.0 / (TAPER_FRACTION * fmax))).clip(0.0, 1.0)


def partial_ratios(v: Any, n_partials: int, xp: Any) -> Any:
    """``[E, P]`` frequency ratios ``k sqrt(1 + B k^2)`` with ``B = 10**inharmonicity``."""
    k = xp.arange(1, n_partials + 1, dtype=v.dtype)
    if xp is not np:
        k = k.to(v.device)
    b = 10.0 ** v[:, _C["inharmonicity"], None]
    return k[None, :] * xp.sqrt(1.0 + b * k[None, :] ** 2)


def partial_gains(v: Any, ratios: Any, xp: Any) -> Any:
    """``[E, P]`` relative partial amplitudes ``r_k`` with ``sum r_k^2 = 1`` (over the 20 kHz band).

    dB = tilt·log2 k + Σ_j env_j cos(π j u) (u = log2(k)/6) + odd_even (even k) − 10 log10(1 + (f/cutoff)^16).
    """
    p = ratios.shape[1]
    k = xp.arange(1, p + 1, dtype=v.dtype)
    if xp is not np:
        k = k.to(v.device)
    log2k = xp.log2(k)[None, :]
    db = v[:, _C["tilt"], None] * log2k
    u = log2k / 6.0
    for j in range(1, 8):
        db = db + v[:, _C[f"env{j}"], None] * xp.cos((math.pi * j) * u)
    even = (k % 2 == 0).to(v.dtype) if xp is not np else (k % 2 == 0).astype(v.dtype)
    db = db + v[:, _C["odd_even"], None] * even[None, :]
    f0 = events.pitch_to_hz(v[:, _C["pitch"], None])
    freq = f0 * ratios
    x = 16.0 * xp.log2(freq / v[:, _C["cutoff"], None])
    db = db - (10.0 / math.log(10.0)) * _softplus(x * math.log(2.0), xp)
    db = db - _max1(db, xp)
    gain = xp.exp(db * (math.log(10.0) / 20.0)) * taper(freq, F_MAX_HZ)
    return gain / xp.sqrt(_sum1(gain**2, xp).clip(1e-30, None))


def partial_t60(v: Any, ratios: Any, xp: Any) -> Any:
    """``[E, P]`` T60 (s) per partial: log T60 linear in log f between 100 Hz and 8 kHz, clamped outside."""
    f0 = events.pitch_to_hz(v[:, _C["pitch"], None])
    w = ((xp.log(f0 * ratios) - _T60_LOG_LO) / _T60_LOG_SPAN).clip(0.0, 1.0)
    lo = xp.log(v[:, _C["t60_low"], None])
    hi = xp.log(v[:, _C["t60_high"], None])
    return xp.exp(lo + w * (hi - lo))


def pitch_offset(v: Any, jitter_phases: Any, tau: Any, xp: Any) -> Any:
    """Pitch offset in semitones at ``tau`` s after onset; ``v`` rows are already gathered per frame.

    glide·τ + vibrato (depth cents · sin 2π rate τ) + jitter (3 seeded slow sines, std = jitter cents)
    + pitch_drop · exp(−τ / 30 ms).
    """
    s = v[:, _C["glide"]] * tau
    s = s + (v[:, _C["vibrato_depth"]] / 100.0) * xp.sin((2.0 * math.pi) * v[:, _C["vibrato_rate"]] * tau)
    jit = 0.0
    for i, nu in enumerate(JITTER_FREQS_HZ):
        jit = jit + xp.sin((2.0 * math.pi * nu) * tau + jitter_phases[:, i])
    s = s + (v[:, _C["jitter"]] / 100.0) * math.sqrt(2.0 / 3.0) * jit
    return s + v[:, _C["pitch_drop"]] * xp.exp(-tau / events.PITCH_DROP_TIME_S)


def body_envelope(v: Any, tau: Any, support: Any, xp: Any) -> Any:
    """Envelope shared by every partial (rows gathered per frame): attack ramp × release × support fade."""
    env = raised_cosine(tau, v[:, _C["attack"]], xp)
    env = env * xp.exp(-LN1000 * _relu(tau - v[:, _C["duration"]]) / v[:, _C["release"]])
    return env * ((support - tau) / SUPPORT_FADE_S).clip(0.0, 1.0)


def noise_envelope(v: Any, tau: Any, support: Any, xp: Any) -> Any:
    """Noise envelope (rows gathered per frame): noise_attack ramp, noise_decay T60, release, fade."""
    na = v[:, _C["noise_attack"]]
    env = raised_cosine(tau, na, xp)
    env = env * xp.exp(-LN1000 * _relu(tau - na) / v[:, _C["noise_decay"]])
    env = env * xp.exp(-LN1000 * _relu(tau - v[:, _C["duration"]]) / v[:, _C["release"]])
    return env * ((support - tau) / SUPPORT_FADE_S).clip(0.0, 1.0)


_BAND_GRID = np.exp(np.linspace(math.log(10.0), math.log(F_MAX_HZ), 513))


def noise_band_power(v: Any, xp: Any) -> Any:
    """``[E]`` ∫ g(f)^2 df (Hz) of the log-Gaussian band over 10 Hz..20 kHz (rate-independent norm)."""
    grid = _BAND_GRID
    f = grid[:-1]
    df = np.diff(grid)
    if xp is not np:
        f = xp.as_tensor(f, dtype=v.dtype, device=v.device)
        df = xp.as_tensor(df, dtype=v.dtype, device=v.device)
    g = noise_band(v, f[None, :], xp)
    return ((g**2) * df[None, :]).sum(1)


def _log_gauss(v: Any, freq: Any, xp: Any) -> Any:
    """Log-Gaussian band shape at ``freq`` Hz (broadcast with ``v[:, None]``): width = 2 std in octaves."""
    sigma = v[:, _C["noise_width"], None] * 0.5
    z = xp.log2(freq / v[:, _C["noise_centre"], None]) / sigma
    return xp.exp(-0.5 * z * z)


def noise_band(v: Any, freq: Any, xp: Any) -> Any:
    """Band gain at ``freq`` Hz (rate-independent): :func:`_log_gauss` × the 20 kHz taper."""
    return _log_gauss(v, freq, xp) * taper(freq, F_MAX_HZ)


def bin_freqs(n: int, sample_rate: int) -> np.ndarray:
    """``float64[N/2+1]`` centre frequency (Hz) of each bin; bin 0 counts as half a bin (no log of 0)."""
    return np.maximum(np.arange(n // 2 + 1), 0.5) * (sample_rate / n)


def noise_band_bins(v: Any, sample_rate: int, xp: Any, conv: Any) -> Any:
    """``[E, N/2+1]`` band gain of each event's noise at each bin of this rate's frame: :func:`_log_gauss`
    × the 20 kHz taper × the rate's :func:`f_max` taper.  ``conv`` turns numpy arrays into ``xp`` arrays."""
    f = bin_freqs(frame_size(sample_rate), sample_rate)
    tapers = taper(f, F_MAX_HZ) * taper(f, f_max(sample_rate))
    return _log_gauss(v, conv(f)[None, :], xp) * conv(tapers)[None, :]


def noise_scale(v: Any, sample_rate: int, xp: Any) -> Any:
    """``[E]`` noise gain per unit band: at the envelope's peak the noise's variance is ``(gain)^2 / 2``, a
    sine-equivalent peak level like the partials' (docs/events.md), once :func:`hann_smooth` is applied.

    Output variance = 3 s^2 sum(g^2) / (OVERLAP N^2) with sum(g^2) ≈ N / rate × band power; want 1/2.
    """
    n = frame_size(sample_rate)
    _, gn = mix_gains(v, xp)
    return gn * xp.sqrt((OVERLAP * n * sample_rate / 6.0) / noise_band_power(v, xp))


def pan_gains(v: Any, xp: Any) -> tuple[Any, Any]:
    """Equal-power pan gains ``(left, right)`` ``[E]``: cos/sin of π/4·(pan + 1)."""
    a = (math.pi / 4.0) * (v[:, _C["pan"]] + 1.0)
    return xp.cos(a), xp.sin(a)


def mix_gains(v: Any, xp: Any) -> tuple[Any, Any]:
    """``(partials, noise)`` gains ``[E]``: cos and sin of π/2·noise_mix, times the level's amplitude."""
    amp = 10.0 ** (v[:, _C["level"]] / 20.0)
    a = (math.pi / 2.0) * v[:, _C["noise_mix"]]
    return amp * xp.cos(a), amp * xp.sin(a)


def detune_hz(v: Any, freq: Any) -> Any:
    """Beat frequency (Hz) of each partial pair: ``f (2**(detune/1200) - 1)``."""
    return freq * (2.0 ** (v[:, _C["detune"], None] / 1200.0) - 1.0)


# ------------------------------------------------------------------------------------------- planning


@dataclass
class FramePlan:
    """Which frames each event touches (flat, event-major, frames ascending).  All numpy.

    ``ev``: int64[EF] event index; ``frame``: int64[EF] absolute frame; ``local``: int64[EF] frames since
    the event's first frame; ``tau``: float64[EF] seconds from onset to the frame centre; ``keep``:
    bool[EF] frame inside the requested range (others only feed the phase integral).
    ``first_tau``: float64[E] seconds from onset to the first frame centre.
    """

    ev: np.ndarray
    frame: np.ndarray
    local: np.ndarray
    tau: np.ndarray
    keep: np.ndarray
    first_tau: np.ndarray


def event_frames(times_s: np.ndarray, support: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """``int64[E]`` first and last frame each event touches: centres in ``[onset, onset + support]``."""
    hop = frame_size(sample_rate) // OVERLAP
    onset = np.asarray(times_s, dtype=np.float64) * sample_rate
    first = np.ceil(onset / hop - 1e-9).astype(np.int64)
    return first, np.floor((onset + support * sample_rate) / hop).astype(np.int64)


def plan_frames(
    times_s: np.ndarray, support: np.ndarray, sample_rate: int, m_lo: int, m_hi: int, from_onset: bool
) -> FramePlan:
    """Frames ``m`` with centre in ``[onset, onset + support]``, ``m < m_hi``; ``keep`` marks ``m >= m_lo``.

    ``from_onset`` keeps frames before ``m_lo`` (needed for the running phase); otherwise they are dropped.
    """
    hop = frame_size(sample_rate) // OVERLAP
    onset = np.asarray(times_s, dtype=np.float64) * sample_rate
    first, last = event_frames(times_s, support, sample_rate)
    last = np.minimum(last, m_hi - 1)
    start = first if from_onset else np.maximum(first, m_lo)
    count = np.where(last >= np.maximum(start, m_lo), last - start + 1, 0)
    total = int(count.sum())
    ev = np.repeat(np.arange(len(count), dtype=np.int64), count)
    base = np.cumsum(count) - count
    step = np.arange(total, dtype=np.int64) - np.repeat(base, count)
    frame = np.repeat(start, count) + step
    tau = (frame * hop - onset[ev]) / sample_rate
    return FramePlan(
        ev=ev,
        frame=frame,
        local=frame - first[ev],
        tau=tau,
        keep=frame >= m_lo,
        first_tau=(first * hop - onset) / sample_rate,
    )


# ------------------------------------------------------------------------------------------------ room


@functools.lru_cache(maxsize=8)
def room_ir(rt60_s: float, damping: float, sample_rate: int, channels: int) -> np.ndarray:
    """Deterministic room impulse response ``float32[channels, L]`` (L ≤ :data:`ROOM_TAIL_S`).

    Exponentially decaying Gaussian noise (fixed seed, decorrelated per channel), each frequency decaying
    with ``T60(f) = rt60 · 10**(−damping · max(0, log2(f / 1 kHz)) / 4)`` (``damping`` = decades shorter
    at 16 kHz), built on the same frame grid; each channel normalised to unit energy.
    """
    rt60 = float(np.clip(rt60_s, ROOM_MIN_RT60_S, ROOM_MAX_RT60_S))
    damping = float(np.clip(damping, 0.0, ROOM_MAX_DAMPING))
    n = frame_size(sample_rate)
    hop = n // OVERLAP
    nb = n // 2 + 1
    n_frames = math.ceil(rt60 * sample_rate / hop) + 1
    tau = np.arange(n_frames)[:, None] * hop / sample_rate
    freq = np.arange(nb) * sample_rate / n
    t60 = rt60 * 10.0 ** (-damping * np.maximum(0.0, np.log2(np.maximum(freq, 1.0) / 1000.0)) / 4.0)
    mag = np.exp(-LN1000 * tau / t60[None, :]) * taper(freq, f_max(sample_rate))[None, :]
    mag[:, 0] = 0.0
    table = noise_table()
    out = []
    for c in range(channels):
        idx = (777_777 * (c + 1) + np.arange(n_frames * nb)) & ((1 << NOISE_TABLE_BITS) - 1)
        spec = mag * table[idx].reshape(n_frames, nb)
        audio = overlap_add(np.fft.irfft(hann_smooth(spec), n))
        audio = audio[HALF * hop : HALF * hop + int(rt60 * sample_rate)]  # frame 0's centre is sample 0
        audio = audio / max(float(np.sqrt(np.sum(audio**2))), 1e-12)
        out.append(audio)
    ir = np.asarray(out, dtype=np.float32)
    ir.setflags(write=False)
    return ir


def frame_range(start: int, end: int, sample_rate: int, room_lead: bool) -> tuple[int, int]:
    """Frames ``[m_lo, m_hi)`` that can reach output samples ``[start, end)``; with ``room_lead`` a seek
    (``start > 0``) also renders the room's input up to :data:`ROOM_TAIL_S` before ``start``."""
    hop = frame_size(sample_rate) // OVERLAP
    lead = math.ceil(ROOM_TAIL_S * sample_rate) if (room_lead and start > 0) else 0
    m_lo = (max(start - lead, 0) if lead else start) // hop - HALF + 1
    return m_lo, -(-end // hop) + HALF


def fft_size(length: int) -> int:
    """The power of two at or above ``length`` (an FFT convolution's size)."""
    return 1 << (length - 1).bit_length()


def fft_convolve(x: Any, ir_spec: Any, nfft: int, length: int, xp: Any) -> Any:
    """``x[..., T]`` convolved with each channel of an impulse response given as ``ir_spec[C, nfft/2+1]``
    (its rfft at ``nfft >= T + L - 1``) → ``[..., C, length]``."""
    return xp.fft.irfft(xp.fft.rfft(x, nfft)[..., None, :] * ir_spec, nfft)[..., :length]


# ------------------------------------------------------------------------------------ frame helpers
#
# The one definition of the time-domain Hann window (as a bin kernel) and of the overlap-add, for both
# renderers.  Written out of place, with operations numpy and torch both support (slicing, ``conj``,
# ``concatenate``, slice ``+=``; torch's autograd records the slice updates), and in the float operation
# order of the numpy decoder, whose output is pinned bit for bit (tests/test_exact.py).


def hann_smooth(spec: Any, xp: Any = np) -> Any:
    """Apply the Hann window in time to centred frames by the bin kernel [¼, ½, ¼] (last axis).

    Bins below 0 and above N/2 are the conjugate mirror images.  Sums in the order
    ``(½ s[b] + ¼ s[b-1]) + ¼ s[b+1]``, with ``s[1]`` before its image at bin 0 and ``s[N/2-1]`` before its
    image at N/2.
    """
    lower = xp.concatenate([spec[..., 1:2], spec[..., :-1]], axis=-1)
    upper = xp.concatenate([spec[..., 1:2].conj(), spec[..., 2:], spec[..., -2:-1].conj()], axis=-1)
    return 0.5 * spec + 0.25 * lower + 0.25 * upper


def hann_smooth_folded_into(
    spec: np.ndarray, quarter: np.ndarray, pad: int, bins: tuple[int, int] | None = None
) -> None:
    """``spec += hann_smooth(4 · quarter)`` over bins ``0 .. N/2`` (numpy, in place; the decoder's form).

    Rows hold bins ``-pad .. N/2`` (column = bin + pad).  ``quarter`` is a spectrum already scaled by the
    kernel's ¼ with its bins in ``1 .. N/2-1``, so bin b gets ``q[b-1] + 2 q[b] + q[b+1]`` (three adds per
    bin instead of five multiply-adds; the decoder smooths the sum of every event's noise once per frame).
    Bin N/2 gets its image ``2 Re q[N/2-1]``; bin 0 gets ``q[1]`` here and its image when the caller folds
    the bins below 0 (``spec[:, pad] = 2 Re spec[:, pad]``).  Equals :func:`hann_smooth` up to rounding
    (tests/test_kernels.py).  ``bins`` ``(lo, hi)``: ``quarter`` is zero outside bins ``[lo, hi)``, so only
    bins ``lo - 1 .. hi`` are touched (the same values: the others would only get zeros added).
    """
    nb = spec.shape[1] - pad
    b0, b1 = (0, nb - 1) if bins is None else (max(bins[0] - 1, 0), min(bins[1] + 1, nb - 1))
    if b1 > b0:
        body = spec[:, pad + b0 : pad + b1]
        body += quarter[:, pad + b0 - 1 : pad + b1 - 1]
        body += quarter[:, pad + b0 + 1 : pad + b1 + 1]
        body += 2.0 * quarter[:, pad + b0 : pad + b1]
    spec[:, pad + nb - 1] += 2.0 * quarter[:, pad + nb - 2].real


def _zeros(like: Any, shape: tuple[int, ...], xp: Any) -> Any:
    """Zeros of ``shape`` with the dtype (and torch device) of ``like``."""
    return np.zeros(shape, dtype=like.dtype) if xp is np else like.new_zeros(shape)


def overlap_add(frames: Any, xp: Any = np) -> Any:
    """Centred frames ``[..., F, N]`` (centre at index 0, hop h = N/OVERLAP) → audio ``[..., (F+O-1)·h]``.

    Frame ``i`` is centred at output sample ``(i + HALF)·h``; the sum is divided by OVERLAP/2 (Hann OLA).
    """
    f, n = frames.shape[-2:]
    lead = tuple(frames.shape[:-2])
    hop = n // OVERLAP
    q = frames.reshape(*lead, f, OVERLAP, hop)
    out = _zeros(frames, (*lead, f + OVERLAP - 1, hop), xp)
    for i in range(OVERLAP):
        out[..., i : i + f, :] += q[..., :, (i + HALF) % OVERLAP, :]
    return ((2.0 / OVERLAP) * out).reshape(*lead, (f + OVERLAP - 1) * hop)


# ------------------------------------------------------------------------------ selection and values


JITTER_SALT = 1 << 18
PHASE_SALT = 1 << 19


@dataclass
class PartialSelection:
    """Which (event-frame, partial) pairs are rendered.  ``plan`` indexes event-frames (from the onset, for
    the running phase); ``ef``, ``e``, ``k`` (int64[M]) are the plan row, event and partial index (0-based)
    of each rendered partial-frame."""

    plan: FramePlan
    ef: np.ndarray
    e: np.ndarray
    k: np.ndarray


@dataclass
class PartialTables:
    """Per event ``[E]`` and per (event, partial) ``[E, P]`` quantities of :func:`partial_tables` (numpy)."""

    gp: np.ndarray
    """``[E]`` partials' gain (:func:`mix_gains`)."""
    peak: np.ndarray
    """``[E]`` the event's peak amplitude (its level)."""
    f0: np.ndarray
    """``[E]`` fundamental (Hz) before the pitch offset."""
    ratios: np.ndarray
    r: np.ndarray
    t60: np.ndarray
    """``[E, P]`` :func:`partial_ratios`, :func:`partial_gains`, :func:`partial_t60`."""
    active: np.ndarray
    """``bool[E, P]`` the partial can exceed the floor and lies below 2 × :func:`f_max`."""
    tau_end: np.ndarray
    """``[E, P]`` s after onset where the partial's decay or the release takes it below
    :data:`PARTIAL_FLOOR` × the peak (upper bound, ignoring the other factors); -inf where not active."""


def partial_tables(v: np.ndarray, sample_rate: int) -> PartialTables:
    """The :class:`PartialTables` of events ``v`` (numpy, physical) at this output rate."""
    fmax = f_max(sample_rate)
    gp, _ = mix_gains(v, np)
    peak = 10.0 ** (v[:, _C["level"]] / 20.0)
    f0 = events.pitch_to_hz(v[:, _C["pitch"]])
    ratios = partial_ratios(v, events.MAX_PARTIALS, np)
    r = partial_gains(v, ratios, np)
    t60 = partial_t60(v, ratios, np)
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = np.log(gp[:, None] * r / (PARTIAL_FLOOR * peak[:, None]))
        active = (margin > 0) & (f0[:, None] * ratios < 2.0 * fmax)
        tau_end = np.minimum(
            v[:, _C["attack"], None] + t60 * margin / LN1000,
            (v[:, _C["duration"]] + v[:, _C["release"]] * margin.T / LN1000).T,
        )
    return PartialTables(gp, peak, f0, ratios, r, t60, active, np.where(active, tau_end, -np.inf))


def _ragged(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ``counts[i]`` items per row: (row index, position within row) of every item."""
    counts = np.maximum(counts, 0)
    row = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    base = np.cumsum(counts) - counts
    pos = np.arange(int(counts.sum()), dtype=np.int64) - base[row]
    return row, pos


@dataclass
class KeptRows:
    """The rows of a from-onset :class:`FramePlan` at frames ``>= m_lo`` (a suffix of each event's rows)."""

    idx: np.ndarray
    """``int64[R]`` plan rows kept, event by event."""
    ev: np.ndarray
    """``int64[R]`` their events."""
    count: np.ndarray
    """``int64[E]`` rows kept per event."""
    start: np.ndarray
    """``int64[E]`` position in :attr:`idx` of each event's first kept row."""
    first_tau: np.ndarray
    """``float64[E]`` time after onset (s) of each event's first kept row (inf: none)."""


def kept_rows(plan: FramePlan, n_events: int) -> KeptRows:
    """:class:`KeptRows` of ``plan`` over ``n_events`` events."""
    idx = np.flatnonzero(plan.keep)
    ev = plan.ev[idx]
    count = np.bincount(ev, minlength=n_events)
    first_tau = np.full(n_events, np.inf)
    if len(idx):
        first_tau[ev[::-1]] = plan.tau[idx][::-1]
    return KeptRows(idx, ev, count, np.cumsum(count) - count, first_tau)


def frames_above_floor(
    tau_end: np.ndarray, first_tau: np.ndarray, count: np.ndarray, sample_rate: int
) -> np.ndarray:
    """How many kept frames (``int64``, broadcast shape) a partial renders: those from the event's first kept
    frame (``first_tau`` s after onset) up to ``tau_end`` (where it falls below the floor), at most
    ``count``."""
    hop = frame_size(sample_rate) // OVERLAP
    with np.errstate(invalid="ignore"):
        cnt = np.floor((tau_end - first_tau) * (sample_rate / hop) + 1e-9)
    return np.clip(np.where(np.isfinite(cnt), cnt + 1, 0), 0, count).astype(np.int64)


def first_rows(plan: FramePlan, n_events: int) -> np.ndarray:
    """``int64[E]`` each event's first plan row (its onset frame; from-onset plans)."""
    is_first = plan.local == 0
    out = np.zeros(n_events, dtype=np.int64)
    out[plan.ev[is_first]] = np.flatnonzero(is_first)
    return out


def select_partials(
    v: np.ndarray, times_s: np.ndarray, support: np.ndarray, sample_rate: int, m_lo: int, m_hi: int
) -> PartialSelection:
    """Partial-frames of events ``v`` (numpy, physical) over frames ``[m_lo, m_hi)`` above the floor
    (:attr:`PartialTables.tau_end`)."""
    plan = plan_frames(times_s, support, sample_rate, m_lo, m_hi, from_onset=True)
    tables = partial_tables(v, sample_rate)
    qe, qk = np.nonzero(tables.active)
    kept = kept_rows(plan, len(v))
    cnt = frames_above_floor(tables.tau_end[qe, qk], kept.first_tau[qe], kept.count[qe], sample_rate)
    q, j = _ragged(cnt)
    ef = kept.idx[kept.start[qe[q]] + j]
    return PartialSelection(plan, ef, qe[q], qk[q])


MODULATION_DIMS = ("glide", "vibrato_depth", "jitter", "pitch_drop")
"""Without these the pitch offset is exactly 0 (:func:`pitch_track` skips such rows in numpy)."""


def pitch_track(v: Any, f0: Any, jitter_phases: Any, plan: FramePlan, xp: Any, conv: Any) -> tuple[Any, Any]:
    """``(f_t[EF], f_on[E])``: the fundamental (Hz) at each plan row's frame centre and at the onset.

    numpy computes the offset only on rows of events that move (a speed-up: elsewhere it is exactly 0, and
    ``f0 · 2**0 = f0``); torch computes every row (no in-place update in the autograd graph).
    """
    f_on = f0 * 2.0 ** (pitch_offset(v, jitter_phases, f0 * 0.0, xp) / 12.0)
    if xp is not np:
        ev = conv(plan.ev)
        return f0[ev] * 2.0 ** (pitch_offset(v[ev], jitter_phases[ev], conv(plan.tau), xp) / 12.0), f_on
    mods = v[:, [_C[name] for name in MODULATION_DIMS]]
    moving = np.flatnonzero(np.any(mods != 0.0, axis=1)[plan.ev])
    ev = plan.ev[moving]
    f_t = f0[plan.ev]
    f_t[moving] *= 2.0 ** (pitch_offset(v[ev], jitter_phases[ev], plan.tau[moving], np) / 12.0)
    return f_t, f_on


def phase_integral(f_t: Any, f_on: Any, plan: FramePlan, sample_rate: int, xp: Any, conv: Any) -> Any:
    """``[EF]`` running phase (rad) of the fundamental at each plan row's frame centre, 0 at the onset.

    Trapezoid rule over the pitch track (``plan`` from the onset): ``π dt (f_prev + f_t)`` per row, ``dt``
    the hop (from the onset for an event's first frame), summed per event with one cumulative sum.
    """
    hop = frame_size(sample_rate) // OVERLAP
    is_first = plan.local == 0
    dt = np.where(is_first, plan.first_tau[plan.ev], hop / sample_rate)
    prev_row = np.maximum(np.arange(len(plan.ev)) - 1, 0)
    prev = xp.where(conv(is_first), f_on[conv(plan.ev)], f_t[conv(prev_row)])
    inc = math.pi * conv(dt) * (prev + f_t)
    cum = xp.cumsum(inc, 0)
    return cum - (cum - inc)[conv(first_rows(plan, len(f_on))[plan.ev])]


def partial_values(
    v: Any,
    sel: PartialSelection,
    jitter_ph: Any,
    start_ph: Any,
    support: Any,
    sample_rate: int,
    xp: Any,
    conv: Any,
) -> tuple[Any, Any, Any]:
    """``(amp, phase, freq)`` ``[M]`` of the selected partial-frames (array-generic, differentiable).

    ``conv`` turns numpy index/constant arrays into ``xp`` arrays.  ``amp`` is the partial's peak amplitude
    in this frame (signed: the detune beating crosses zero), ``phase`` (rad) at the frame centre, ``freq`` Hz.
    """
    ev = conv(sel.plan.ev)
    tau_ef = conv(sel.plan.tau)
    f0 = events.pitch_to_hz(v[:, _C["pitch"]])
    f_t, f_on = pitch_track(v, f0, jitter_ph, sel.plan, xp, conv)
    phi0 = phase_integral(f_t, f_on, sel.plan, sample_rate, xp, conv)
    benv = body_envelope(v[ev], tau_ef, support[ev], xp)
    ratios = partial_ratios(v, events.MAX_PARTIALS, xp)
    r = partial_gains(v, ratios, xp)
    t60 = partial_t60(v, ratios, xp)
    dhz = detune_hz(v, f0[:, None] * ratios)
    gp, _ = mix_gains(v, xp)
    ef, e = conv(sel.ef), conv(sel.e)
    ek = conv(sel.e * ratios.shape[1] + sel.k)  # flat (event, partial) index
    tau = tau_ef[ef]
    rk = ratios.reshape(-1)[ek]
    freq = rk * f_t[ef]
    att = v[:, _C["attack"]][e]
    amp = (
        (gp[e] * r.reshape(-1)[ek])
        * benv[ef]
        * xp.exp((-LN1000) * _relu(tau - att) / t60.reshape(-1)[ek])
        * xp.cos(math.pi * dhz.reshape(-1)[ek] * tau)
        * taper(freq, f_max(sample_rate))
    )
    phase = xp.fmod(rk * phi0[ef], 2.0 * math.pi) + start_ph.reshape(-1)[ek]
    return amp, phase, freq


@dataclass
class NoiseSelection:
    """Noise cells: ``plan`` rows (event-frames), and per cell ``row``, ``e``, ``b`` (bin) int64[M]."""

    plan: FramePlan
    row: np.ndarray
    e: np.ndarray
    b: np.ndarray


def noise_ranges(
    v: np.ndarray, support: np.ndarray, sample_rate: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per event (numpy): noise support (s, -1 for none), first band bin and bin count (int64), i.e. where
    envelope × band can exceed the floor."""
    n = frame_size(sample_rate)
    nb = n // 2 + 1
    _, gn = mix_gains(v, np)
    peak = 10.0 ** (v[:, _C["level"]] / 20.0)
    with np.errstate(divide="ignore"):
        margin = np.log(gn / (PARTIAL_FLOOR * peak))
    na, nd = v[:, _C["noise_attack"]], v[:, _C["noise_decay"]]
    t_end = np.minimum(
        na + nd * margin / LN1000, v[:, _C["duration"]] + v[:, _C["release"]] * margin / LN1000
    )
    sup = np.where(margin > 0, np.minimum(support, t_end), -1.0)
    half = np.sqrt(2.0 * np.maximum(margin, 0.0)) * 0.5 * v[:, _C["noise_width"]]
    centre = v[:, _C["noise_centre"]]
    b_lo = np.maximum(np.ceil(centre * 2.0**-half * n / sample_rate), 1).astype(np.int64)
    b_hi = np.minimum(np.floor(np.minimum(centre * 2.0**half, f_max(sample_rate)) * n / sample_rate), nb - 2)
    return sup, b_lo, np.maximum(b_hi.astype(np.int64) - b_lo + 1, 0)


def select_noise(
    v: np.ndarray, times_s: np.ndarray, support: np.ndarray, sample_rate: int, m_lo: int, m_hi: int
) -> NoiseSelection:
    """Noise cells (frame, bin) of events ``v`` over ``[m_lo, m_hi)`` where envelope × band can exceed the
    floor (numpy)."""
    sup, b_lo, nbins = noise_ranges(v, support, sample_rate)
    plan = plan_frames(times_s, sup, sample_rate, m_lo, m_hi, from_onset=False)
    row, pos = _ragged(nbins[plan.ev])
    e = plan.ev[row]
    return NoiseSelection(plan, row, e, b_lo[e] + pos)


def noise_values(v: Any, sel: NoiseSelection, support: Any, sample_rate: int, xp: Any, conv: Any) -> Any:
    """Magnitudes ``[M]`` of the selected noise cells (before the random complex factor and
    :func:`hann_smooth`; differentiable): :func:`noise_scale` × :func:`noise_envelope` ×
    :func:`noise_band_bins`."""
    nb = frame_size(sample_rate) // 2 + 1
    scale = noise_scale(v, sample_rate, xp)
    ev = conv(sel.plan.ev)
    env = noise_envelope(v[ev], conv(sel.plan.tau), support[ev], xp)
    e = conv(sel.e)
    band = noise_band_bins(v, sample_rate, xp, conv)
    return (scale[e] * env[conv(sel.row)]) * band.reshape(-1)[conv(sel.e * nb + sel.b)]


TABLE_MASK = (1 << NOISE_TABLE_BITS) - 1


def noise_index(offsets: np.ndarray, sel: NoiseSelection, nb: int) -> np.ndarray:
    """Table index ``int64[M]`` of each noise cell: event offset + frames since onset · (N/2+1) + bin."""
    return (offsets[sel.e] + sel.plan.local[sel.row] * nb + sel.b) & TABLE_MASK


# ----------------------------------------------------------------------------------- envelope analysis
#
# The partials' summed power envelope of an event, solved from its vector instead of rendered (for
# exports: where a note ends).  Written from the same functions as :func:`partial_values`
# (:func:`partial_ratios`, :func:`partial_gains`, :func:`partial_t60`, :func:`taper`, the raised-cosine
# attack and the release of :func:`body_envelope`), so the two cannot drift apart.

FALL_BLOCK = 4096
"""Events per block in :func:`partials_fall_s` (bounds its memory: a few ``[block, 64]`` arrays)."""
FALL_ITERATIONS = 60
"""Newton steps at most (it stops earlier once every step is below a microsecond)."""


def partial_power_decay(v: np.ndarray, sample_rate: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(w, a)`` ``float64[E, P]``: while an event is held after its attack, its partials' summed power is
    ``P(τ) = P_peak · Σ_k w_k exp(−a_k (τ − attack))`` (numpy, physical ``v``).

    ``w_k`` is the power share of partial k at the peak (``(r_k · taper)²``, summing to 1; with
    ``sample_rate`` the partials above that rate's :func:`f_max` are dropped as the renderer drops them),
    ``a_k = 2 ln 1000 / T60_k`` its power decay rate (1/s).  The detune pair's beating is averaged out (its
    mean power is that of one partial), and so are vibrato, glide and jitter (the pitch at the onset sets
    the T60s).  An event with no partial below ``f_max`` keeps its 20 kHz-band weights.
    """
    v = np.asarray(v, dtype=np.float64)
    ratios = partial_ratios(v, events.MAX_PARTIALS, np)
    r = partial_gains(v, ratios, np)
    t60 = partial_t60(v, ratios, np)
    power = r * r
    if sample_rate is not None:
        freq = events.pitch_to_hz(v[:, _C["pitch"], None]) * ratios
        tapered = power * taper(freq, f_max(sample_rate)) ** 2
        power = np.where(tapered.sum(1, keepdims=True) > 0.0, tapered, power)
    w = power / np.maximum(power.sum(1, keepdims=True), 1e-300)
    return w, (2.0 * LN1000) / t60


def partials_fall_s(v: np.ndarray, drop_db: float = 30.0, sample_rate: int | None = None) -> np.ndarray:
    """``float64[E]`` seconds after onset at which the summed power of each event's partials first falls
    ``drop_db`` below its peak, as the renderer shapes it: the raised-cosine attack, each partial's own T60
    from τ = attack (:func:`partial_power_decay`), and the release (T60 = ``release``) from τ = ``duration``;
    at most the event's support (:func:`events.support_s`; its last 50 ms fade is left out).

    Solved, not sampled: after the attack the log power is decreasing, and convex on each side of
    τ = ``duration`` (a log-sum of exponentials, minus the release's ramp after it), so Newton's method
    from τ = attack, halted once at ``duration``, climbs to the crossing without overshooting it.  When
    ``duration < attack`` the release starts during the rise: the peak is where ramp × release is largest
    (closed form) and a crossing before τ = attack is found by bisection.  About 1 s per 10^5 events.
    Tested against rendered audio in tests/test_export.py.
    """
    v = np.asarray(v, dtype=np.float64)
    out = np.empty(len(v))
    for lo in range(0, len(v), FALL_BLOCK):
        out[lo : lo + FALL_BLOCK] = _fall_block(v[lo : lo + FALL_BLOCK], drop_db, sample_rate)
    return out


def _fall_block(v: np.ndarray, drop_db: float, sample_rate: int | None) -> np.ndarray:
    att, dur, rel = v[:, _C["attack"]], v[:, _C["duration"]], v[:, _C["release"]]
    support = events.support_s(v)
    c = 2.0 * LN1000 / rel  # the release's power decay rate (1/s)
    target = -drop_db * math.log(10.0) / 10.0  # log power relative to the peak at the crossing

    # Rise (τ <= attack): log P = 2 log ramp(τ) − c·(τ − dur)+ = 4 log sin(πτ / 2 attack) − c·(τ − dur)+.
    # Where dur < attack the peak is where its derivative 2π/attack · cot(πτ / 2 attack) − c vanishes, or
    # at dur if that is later (else at τ = attack, where P = 1).
    early = dur < att
    tau_turn = (2.0 * att / math.pi) * np.arctan(2.0 * math.pi / (c * att))
    tau_peak = np.where(early, np.maximum(dur, tau_turn), att)

    def log_rise(tau: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            ramp = raised_cosine(tau, att, np)
            return 2.0 * np.log(ramp) - c * _relu(tau - dur)

    log_peak = np.where(early, log_rise(tau_peak), 0.0)
    # Held (τ >= attack): log P = logsumexp_k(log w_k − a_k (τ − attack)) − c·(τ − dur)+.
    w, a = partial_power_decay(v, sample_rate)
    with np.errstate(divide="ignore"):
        log_w = np.log(w)

    def held(i: np.ndarray, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(h, h')`` of events ``i`` at ``tau``: log power above the crossing level, its derivative."""
        x = log_w[i] - a[i] * (tau - att[i])[:, None]
        m = x.max(1, keepdims=True)
        e = np.exp(x - m)
        s = e.sum(1)
        h = m[:, 0] + np.log(s) - c[i] * _relu(tau - dur[i]) - log_peak[i] - target
        slope = -(e * a[i]).sum(1) / s - np.where(tau >= dur[i], c[i], 0.0)
        return h, slope

    # Crossing during the rise (only where the release starts before the attack ends and is fast).
    in_rise = early & (log_rise(att) - log_peak <= target)
    lo_t, hi_t = tau_peak.copy(), att.copy()
    if in_rise.any():
        for _ in range(50):
            mid = 0.5 * (lo_t + hi_t)
            above = log_rise(mid) - log_peak > target
            lo_t = np.where(above, mid, lo_t)
            hi_t = np.where(above, hi_t, mid)
    # Newton from τ = attack.  The log power is convex on [attack, dur] and on [dur, ∞) (the release bends
    # it down at dur), so a step that would pass dur stops there; then no step passes the root.
    tau = att.copy()
    todo = np.flatnonzero(~in_rise)
    for _ in range(FALL_ITERATIONS):
        if not len(todo):
            break
        h, slope = held(todo, tau[todo])
        step = np.where(h > 0.0, -h / np.minimum(slope, -1e-12), 0.0)
        new = tau[todo] + step
        new = np.minimum(np.where(tau[todo] < dur[todo], np.minimum(new, dur[todo]), new), support[todo])
        moved = np.abs(new - tau[todo]) > 1e-6
        tau[todo] = new
        todo = todo[moved]
    return np.minimum(np.where(in_rise, hi_t, tau), support)
