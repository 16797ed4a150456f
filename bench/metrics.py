"""Benchmark metrics: alignment, mrstft, ViSQOL v3, PESQ-WB, note F1, true bitrate.

Audio arrays are ``float32[channels, samples]`` (or 1-d mono ``float[samples]`` where a function says so),
sample rates in Hz, times in seconds.  The heavy scorers (visqol, pesq, mir_eval, scipy) are imported lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import soxr

from sparsecodec.errors import SpevError

EPS = 1e-5
"""Floor added to magnitudes before log10 in :func:`mrstft`."""
MRSTFT_SIZES = (2048, 512, 128)
VISQOL_AUDIO_RATE = 48000
VISQOL_SPEECH_RATE = 16000
PESQ_RATE = 16000
VISQOL_SEGMENT_S = 10.0
VISQOL_MAX_SEGMENTS = 6
"""Inputs longer than ``VISQOL_MAX_SEGMENTS × VISQOL_SEGMENT_S`` are scored on that many evenly spaced
10 s segments (mean MOS): ViSQOL over a whole 4-minute track costs minutes per row on 2 cores."""
MAX_LAG_S = 0.5
"""Largest decoder delay :func:`align` searches for (lame adds ~26 ms; Opus ~0 after pre-skip)."""

_VISQOL: dict[str, Any] = {}


class MetricError(SpevError):
    """A metric could not be computed for a clip (recorded in the results, the run goes on)."""


def as_2d(x: np.ndarray) -> np.ndarray:
    """``float[samples]`` or ``float[C, samples]`` -> ``float32[C, samples]``."""
    a = np.asarray(x, dtype=np.float32)
    return a[None, :] if a.ndim == 1 else a


def to_mono(x: np.ndarray) -> np.ndarray:
    """Mean of the channels: ``float[C, T]`` (or ``float[T]``) -> ``float32[T]``."""
    return as_2d(x).mean(axis=0)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """soxr (HQ) resampling of ``float[C, T]`` or ``float[T]``; shape kept apart from the length."""
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float32)
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        return soxr.resample(a, sr_in, sr_out).astype(np.float32)
    return np.ascontiguousarray(soxr.resample(a.T, sr_in, sr_out).T, dtype=np.float32)


def match_channels(deg: np.ndarray, channels: int) -> np.ndarray:
    """Give ``deg`` ``float[C', T]`` the reference's channel count (duplicate mono, or downmix)."""
    d = as_2d(deg)
    if d.shape[0] == channels:
        return d
    if d.shape[0] == 1:
        return np.repeat(d, channels, axis=0)
    mono = d.mean(axis=0, keepdims=True)
    return mono if channels == 1 else np.repeat(mono, channels, axis=0)


def estimate_lag(ref: np.ndarray, deg: np.ndarray, sr: int, max_lag_s: float = MAX_LAG_S) -> int:
    """Delay of ``deg`` behind ``ref`` in samples (positive: ``deg`` is late), by FFT cross-correlation of
    the mono downmixes over at most the first 60 s, searched within ``±max_lag_s``."""
    from scipy.signal import correlate

    n = min(as_2d(ref).shape[1], as_2d(deg).shape[1], 60 * sr)
    r, d = to_mono(ref)[:n].astype(np.float64), to_mono(deg)[:n].astype(np.float64)
    if n == 0 or not np.any(r) or not np.any(d):
        return 0
    xc = correlate(d, r, mode="full", method="fft")  # index n-1 is lag 0
    max_lag = min(round(max_lag_s * sr), n - 1)
    window = xc[n - 1 - max_lag : n + max_lag]
    return int(np.argmax(window)) - max_lag


def align(
    ref: np.ndarray, deg: np.ndarray, sr: int, shift: bool = True, max_lag_s: float = MAX_LAG_S
) -> tuple[np.ndarray, int]:
    """Trim/zero-pad ``deg`` to ``ref``'s length and channel count, first shifting it by the estimated lag
    when ``shift`` (else the lag is only measured).  Both at rate ``sr``.

    Returns ``(float32[C, T_ref], lag_samples)``.
    """
    r = as_2d(ref)
    d = match_channels(deg, r.shape[0])
    lag = estimate_lag(r, d, sr, max_lag_s)
    if shift:
        d = d[:, lag:] if lag >= 0 else np.pad(d, ((0, 0), (-lag, 0)))
    t = r.shape[1]
    d = d[:, :t] if d.shape[1] >= t else np.pad(d, ((0, 0), (0, t - d.shape[1])))
    return np.ascontiguousarray(d, dtype=np.float32), lag


def _log_mag_frames(x: np.ndarray, n_fft: int, start: int, stop: int) -> np.ndarray:
    """log10(|STFT| + EPS) of frames [start, stop) of ``x`` (hann, hop n_fft/4, no centring)."""
    hop = n_fft // 4
    win = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    idx = np.arange(start, stop)[:, None] * hop + np.arange(n_fft)[None, :]
    spec = np.fft.rfft(x[idx] * win, axis=1)
    return np.log10(np.abs(spec) + EPS)


def mrstft(
    ref: np.ndarray, deg: np.ndarray, sr: int, rate: int | None = 22050, sizes: Sequence[int] = MRSTFT_SIZES
) -> float:
    """Multi-resolution log-STFT distance (lower is better; 0 for identical signals).

    Mean over FFT sizes (2048/512/128, hann, 75 % overlap) of mean |log10(|R|+1e-5) − log10(|D|+1e-5)|,
    computed on mono downmixes resampled to ``rate`` (``None``: keep ``sr``).  ``deg`` must be aligned and
    of ``ref``'s length.
    """
    r, d = to_mono(ref), to_mono(deg)
    if r.shape != d.shape:
        raise MetricError(f"mrstft needs equal lengths, got {r.shape} and {d.shape}")
    if rate is not None and rate != sr:
        r, d = resample(r, sr, rate), resample(d, sr, rate)
    dists = []
    for n_fft in sizes:
        hop = n_fft // 4
        if r.size < n_fft:
            raise MetricError(f"signal shorter than one {n_fft}-point frame")
        n_frames = 1 + (r.size - n_fft) // hop
        total, block = 0.0, max(1, (1 << 22) // n_fft)  # ~16 MB of frames at a time
        for s in range(0, n_frames, block):
            e = min(n_frames, s + block)
            total += float(np.sum(np.abs(_log_mag_frames(r, n_fft, s, e) - _log_mag_frames(d, n_fft, s, e))))
        dists.append(total / (n_frames * (n_fft // 2 + 1)))
    return float(np.mean(dists))


def _visqol_api(mode: str) -> Any:
    if mode not in _VISQOL:
        try:
            from visqol import VisqolApi
        except ImportError as e:  # pragma: no cover - depends on the machine
            raise MetricError("visqol-python is not installed (run bench/setup.sh)") from e
        api = VisqolApi()
        # speech: the polynomial mapping (the lattice model's runtime is not a dependency); see docs
        if mode == "speech":
            api.create(mode="speech", use_lattice_model=visqol_speech_mapping() == "lattice")
        else:
            api.create(mode=mode)
        _VISQOL[mode] = api
    return _VISQOL[mode]


def visqol_speech_mapping() -> str:
    """``"lattice"`` (the C++ default model; needs ``ai-edge-litert``) or ``"polynomial"`` (the fallback,
    which reads 1-2 MOS points high on degraded speech)."""
    import importlib.util

    return "lattice" if importlib.util.find_spec("ai_edge_litert") is not None else "polynomial"


def visqol(ref: np.ndarray, deg: np.ndarray, sr: int, mode: str = "audio") -> float:
    """ViSQOL v3 MOS-LQO of mono downmixes: ``mode="audio"`` at 48 kHz, ``"speech"`` at 16 kHz.

    ``deg`` must be aligned and of ``ref``'s length.  Long inputs: mean over evenly spaced segments
    (see :data:`VISQOL_MAX_SEGMENTS`).
    """
    rate = VISQOL_AUDIO_RATE if mode == "audio" else VISQOL_SPEECH_RATE
    r_all, d_all = to_mono(ref), to_mono(deg)
    seg = round(VISQOL_SEGMENT_S * sr)
    if r_all.size > VISQOL_MAX_SEGMENTS * seg:
        starts = np.linspace(0, r_all.size - seg, VISQOL_MAX_SEGMENTS).round().astype(int)
        pieces = [(r_all[s : s + seg], d_all[s : s + seg]) for s in starts]
    else:
        pieces = [(r_all, d_all)]
    scores = []
    for r_p, d_p in pieces:
        r = resample(r_p, sr, rate).astype(np.float64)
        d = resample(d_p, sr, rate).astype(np.float64)
        if not np.any(d):
            scores.append(1.0)  # silence: the floor of the MOS scale (ViSQOL fails on all-zero input)
        else:
            scores.append(float(_visqol_api(mode).measure_from_arrays(r, d, rate).moslqo))
    return float(np.mean(scores))


def pesq_wb(ref: np.ndarray, deg: np.ndarray, sr: int) -> float:
    """PESQ wide-band (ITU-T P.862.2) MOS-LQO of mono downmixes at 16 kHz."""
    try:
        from pesq import pesq
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise MetricError("pesq is not installed (run bench/setup.sh)") from e
    r = resample(to_mono(ref), sr, PESQ_RATE)
    d = resample(to_mono(deg), sr, PESQ_RATE)
    try:
        return float(pesq(PESQ_RATE, r, d, "wb"))
    except Exception as e:  # pesq raises its own NoUtterancesError etc.
        raise MetricError(f"pesq: {e}") from e


def true_kbps(n_bytes: int, duration_s: float) -> float:
    """Whole coded file bytes × 8 ÷ duration, in kbit/s."""
    return n_bytes * 8.0 / duration_s / 1000.0


def events_to_notes(export: dict[str, Any], rel_db: float = -40.0) -> tuple[np.ndarray, np.ndarray]:
    """Pitched events above ``rel_db`` relative to the loudest event, from ``spev export --format json``.

    Returns ``(onsets_s float[N], midi_pitches float[N])``; events whose ``pitch`` is null are unpitched.
    """
    events = export.get("events", [])
    if not isinstance(events, list):
        raise MetricError("export JSON has no 'events' list")
    levels = [float(e["level_db"]) for e in events if e.get("level_db") is not None]
    if not levels:
        return np.zeros(0), np.zeros(0)
    floor = max(levels) + rel_db
    keep = [
        e
        for e in events
        if e.get("pitch") is not None and e.get("level_db") is not None and float(e["level_db"]) > floor
    ]
    return np.array([float(e["time"]) for e in keep]), np.array([float(e["pitch"]) for e in keep])


def note_f1(
    ref_notes: Sequence[dict[str, float]], est_onsets: np.ndarray, est_pitches: np.ndarray
) -> dict[str, float]:
    """mir_eval note precision/recall/F1: onset ±50 ms, pitch ±50 cents, offsets ignored.

    ``ref_notes``: ``[{"onset": s, "pitch": midi, "offset": s}]``; estimates as from :func:`events_to_notes`.
    """
    import mir_eval

    def hz(p: np.ndarray) -> np.ndarray:
        return 440.0 * 2.0 ** ((np.asarray(p, dtype=float) - 69.0) / 12.0)

    ref_on = np.array([n["onset"] for n in ref_notes], dtype=float)
    ref_iv = np.stack([ref_on, np.array([max(n["offset"], n["onset"] + 0.01) for n in ref_notes])], axis=1)
    ref_p = hz(np.array([n["pitch"] for n in ref_notes]))
    est_on = np.asarray(est_onsets, dtype=float).reshape(-1)
    if est_on.size == 0 or ref_on.size == 0:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    est_iv = np.stack([est_on, est_on + 0.1], axis=1)  # offsets are ignored; any positive length will do
    p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_iv, ref_p, est_iv, hz(est_pitches), onset_tolerance=0.05, pitch_tolerance=50.0, offset_ratio=None
    )
    return {"precision": float(p), "recall": float(r), "f1": float(f)}
