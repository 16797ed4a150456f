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


ONSET_TOL_S = 0.05
"""Note and onset matching window: ±50 ms."""
PITCH_TOL_CENTS = 50.0
ONSET_MERGE_S = 0.03
"""Onset F1 scores onset times, not notes: estimated onsets closer than this to the previous one are one
onset (a chord's notes), and equal reference onsets are one."""


def export_to_notes(export: dict[str, Any], rel_db: float = -40.0) -> list[dict[str, float]]:
    """Pitched events above ``rel_db`` relative to the loudest event, from ``spev export --format json``, as
    notes ``[{"onset": s, "pitch": midi, "offset": s}]`` sorted by onset.

    Events whose ``pitch`` is null are unpitched.  The offset is the event's ``end`` (absolute seconds) when
    the export gives one, else ``time + params["duration"] + params["attack"]``.
    """
    events = export.get("events", [])
    if not isinstance(events, list):
        raise MetricError("export JSON has no 'events' list")
    levels = [float(e["level_db"]) for e in events if e.get("level_db") is not None]
    if not levels:
        return []
    floor = max(levels) + rel_db
    notes = []
    for e in events:
        if e.get("pitch") is None or e.get("level_db") is None or float(e["level_db"]) <= floor:
            continue
        onset = float(e["time"])
        if e.get("end") is not None:
            offset = float(e["end"])
        else:
            params = e.get("params") or {}
            offset = onset + float(params.get("duration", 0.0)) + float(params.get("attack", 0.0))
        notes.append({"onset": onset, "pitch": float(e["pitch"]), "offset": offset})
    return sorted(notes, key=lambda n: (n["onset"], n["pitch"]))


def events_to_notes(export: dict[str, Any], rel_db: float = -40.0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`export_to_notes`' onsets and MIDI pitches: ``(onsets_s float[N], midi_pitches float[N])``."""
    notes = export_to_notes(export, rel_db)
    return np.array([n["onset"] for n in notes]), np.array([n["pitch"] for n in notes])


def _hz(p: Any) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(p, dtype=float).reshape(-1) - 69.0) / 12.0)


def _intervals(notes: Sequence[dict[str, float]]) -> tuple[np.ndarray, np.ndarray]:
    """``(intervals float[N, 2], pitches_hz float[N])``; an offset at or before its onset becomes onset + 1 ms
    (mir_eval wants positive lengths), a negative onset 0."""
    on = np.maximum(0.0, np.array([float(n["onset"]) for n in notes], dtype=float))
    off = np.array([float(n["offset"]) for n in notes], dtype=float)
    iv = np.stack([on, np.maximum(off, on + 0.001)], axis=1) if notes else np.zeros((0, 2))
    return iv, _hz([float(n["pitch"]) for n in notes])


def merge_onsets(onsets: Any, within_s: float = ONSET_MERGE_S) -> np.ndarray:
    """Sorted onsets with every onset closer than ``within_s`` to the last kept one dropped."""
    kept: list[float] = []
    for t in np.sort(np.asarray(onsets, dtype=float).reshape(-1)):
        if not kept or t - kept[-1] >= within_s:
            kept.append(float(t))
    return np.array(kept)


def note_scores(
    ref_notes: Sequence[dict[str, float]], est_notes: Sequence[dict[str, float]]
) -> dict[str, float | None]:
    """Transcription scores of ``est_notes`` against ``ref_notes`` (both ``[{"onset", "pitch", "offset"}]``,
    seconds and MIDI pitch), with mir_eval: onset ±50 ms, pitch ±50 cents.

    - ``onset_f1`` (``_precision``, ``_recall``): ``mir_eval.onset`` on onset *times* (a chord is one onset;
      :func:`merge_onsets`), window 50 ms.
    - ``pitch_acc``: the share of onset-matched notes whose pitch is right.  Notes are matched one to one on
      onset alone (``mir_eval.transcription.match_notes``): first those whose pitch is within 50 cents,
      then the rest with any pitch; ``pitch_acc`` = first ÷ all (None when nothing matched).
    - ``note_precision``/``note_recall``/``note_f1``: onset and pitch, offsets ignored.
    - ``offset_precision``/``offset_recall``/``offset_f1``: also the offset, within 20 % of the reference
      note's length or 50 ms, whichever is larger (mir_eval's default).
    - ``n_est``/``n_ref``: the note counts; ``n_onset_matched``.
    """
    import mir_eval

    n_ref, n_est = len(ref_notes), len(est_notes)
    out: dict[str, float | None] = {"n_ref": float(n_ref), "n_est": float(n_est)}
    zero = [f"{k}_{m}" for k in ("onset", "note", "offset") for m in ("precision", "recall", "f1")]
    if n_ref == 0 or n_est == 0:
        out.update(dict.fromkeys(zero, 0.0), pitch_acc=None, n_onset_matched=0.0)
        return out
    ref_iv, ref_hz = _intervals(ref_notes)
    est_iv, est_hz = _intervals(est_notes)
    ref_on, est_on = merge_onsets(ref_iv[:, 0], 1e-6), merge_onsets(est_iv[:, 0])
    f, p, r = mir_eval.onset.f_measure(ref_on, est_on, window=ONSET_TOL_S)
    out.update(onset_f1=float(f), onset_precision=float(p), onset_recall=float(r))
    tr = mir_eval.transcription
    for prefix, ratio in (("note", None), ("offset", 0.2)):
        p, r, f, _ = tr.precision_recall_f1_overlap(
            ref_iv, ref_hz, est_iv, est_hz, onset_tolerance=ONSET_TOL_S, pitch_tolerance=PITCH_TOL_CENTS,
            offset_ratio=ratio, offset_min_tolerance=0.05,
        )  # fmt: skip
        out.update({f"{prefix}_precision": float(p), f"{prefix}_recall": float(r), f"{prefix}_f1": float(f)})
    right = tr.match_notes(
        ref_iv, ref_hz, est_iv, est_hz, onset_tolerance=ONSET_TOL_S, pitch_tolerance=PITCH_TOL_CENTS,
        offset_ratio=None,
    )  # fmt: skip
    ref_left = np.setdiff1d(np.arange(n_ref), [i for i, _ in right])
    est_left = np.setdiff1d(np.arange(n_est), [j for _, j in right])
    wrong = []
    if ref_left.size and est_left.size:
        wrong = tr.match_notes(
            ref_iv[ref_left], ref_hz[ref_left], est_iv[est_left], est_hz[est_left],
            onset_tolerance=ONSET_TOL_S, pitch_tolerance=np.inf, offset_ratio=None,
        )  # fmt: skip
    matched = len(right) + len(wrong)
    out["n_onset_matched"] = float(matched)
    out["pitch_acc"] = len(right) / matched if matched else None
    return out


def note_f1(
    ref_notes: Sequence[dict[str, float]], est_onsets: np.ndarray, est_pitches: np.ndarray
) -> dict[str, float]:
    """mir_eval note precision/recall/F1 (onset ±50 ms, pitch ±50 cents, offsets ignored) of bare onsets
    and pitches: ``{"precision", "recall", "f1"}`` (see :func:`note_scores` for the full set)."""
    on = np.asarray(est_onsets, dtype=float).reshape(-1)
    est = [
        {"onset": float(t), "pitch": float(p), "offset": float(t) + 0.1}
        for t, p in zip(on, np.asarray(est_pitches).reshape(-1), strict=True)
    ]
    s = note_scores(ref_notes, est)
    return {
        "precision": s["note_precision"] or 0.0,
        "recall": s["note_recall"] or 0.0,
        "f1": s["note_f1"] or 0.0,
    }
