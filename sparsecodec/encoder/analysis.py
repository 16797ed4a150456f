"""Signal analysis for the encoder: STFTs, onsets, f0, partial tracks → initial event vectors (no torch).

The analysis initialiser looks at a (residual) signal and proposes events in physical units
(:mod:`sparsecodec.format.events` layout):

1. **Onsets** — peaks of the half-wave-rectified log-spectral flux (SuperFlux-style: the previous frame is
   max-filtered over frequency) of a short STFT ("onset resolution", ≈23 ms window, ≈5.8 ms hop).
2. For each onset, the **new energy** spectrum (power after the onset minus power before it) of a long STFT
   ("analysis resolution", ≈93 ms window, ≈11.6 ms hop).
3. **f0** by weighted harmonic summation over a 1/8-semitone grid (Klapuri's weights) on the whitened new
   energy, refined by parabolic interpolation of the partial peaks; unpitched when the harmonics explain
   too little of the new energy.
4. **Partial tracks** k·f0·√(1+Bk²) after the onset: per-partial level at the peak and decay slope
   → ``level``/``tilt``/``env1..7``/``odd_even`` (least squares on the dB amplitudes over u = log2(k)/6) and
   ``t60_low``/``t60_high`` (log-T60 linear in log-frequency between 100 Hz and 8 kHz).
5. **Envelope** of the summed partials: ``attack`` from the rise, ``duration``/``release`` from a two-segment
   fit (sustain slope, then a steeper release slope) of the dB envelope.
6. **Noise** from the energy the partials do not explain: ``noise_mix``/``noise_centre``/``noise_width``.

Levels here are *estimates*: the encoder renders each proposal with the real renderer and rescales its
``level`` so the rendered magnitude matches the residual (see :mod:`sparsecodec.encoder.stream`).

Amplitude convention of every spectrogram in this module: STFT scaled by ``2 / sum(window)``, so a sinusoid of
amplitude ``A`` shows a peak bin magnitude ``≈ A`` and power ``≈ A²``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import scipy.fft
from scipy import ndimage

from sparsecodec.format import events

POWER_FLOOR = 1e-10
"""Power (amplitude², i.e. −100 dBFS) below which spectrogram bins count as silence."""

MIN_EVENT_POWER = 10.0 ** (-75.0 / 10.0)
"""New-energy power (amplitude², summed over bins) below which an onset is not worth an event (−75 dBFS)."""

MIN_ONSET_GAP_S = 0.03
"""Onsets closer than this are merged (the stronger one wins)."""

_C = events.INDEX


@dataclass(frozen=True)
class Resolution:
    """A centred STFT: frame ``m`` covers samples ``[m*hop - n_fft/2, m*hop + n_fft/2)`` (periodic Hann)."""

    n_fft: int
    hop: int

    @property
    def window(self) -> np.ndarray:
        """Periodic Hann window, ``float32[n_fft]``."""
        return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(self.n_fft) / self.n_fft)).astype(np.float32)

    @property
    def scale(self) -> float:
        """Amplitude scale ``2 / sum(window)`` (sinusoid amplitude ``A`` → peak bin ``≈ A``)."""
        return 4.0 / self.n_fft

    def n_frames(self, n_samples: int) -> int:
        """Number of centred frames for a signal of ``n_samples``."""
        return n_samples // self.hop + 1

    def n_bins(self) -> int:
        return self.n_fft // 2 + 1


def resolutions(sample_rate: int) -> tuple[Resolution, Resolution]:
    """``(onset, analysis)`` STFTs: 1024/256 and 4096/512 at 44.1 kHz, scaled by powers of 2."""
    scale = 2.0 ** round(math.log2(sample_rate / 44100.0))
    n_a = max(256, int(4096 * scale))
    n_o = n_a // 4
    return Resolution(n_o, n_o // 4), Resolution(n_a, n_a // 8)


def stft(x: np.ndarray, res: Resolution) -> np.ndarray:
    """Centred, amplitude-scaled STFT of ``float[..., n]`` → ``complex64[..., frames, bins]``."""
    x = np.asarray(x, dtype=np.float32)
    n = x.shape[-1]
    half = res.n_fft // 2
    pad = [(0, 0)] * (x.ndim - 1) + [(half, half + res.hop)]
    xp = np.pad(x, pad)
    frames = np.lib.stride_tricks.sliding_window_view(xp, res.n_fft, axis=-1)[..., :: res.hop, :]
    frames = frames[..., : res.n_frames(n), :]
    spec = scipy.fft.rfft(frames * res.window, axis=-1) * np.float32(res.scale)
    return spec.astype(np.complex64, copy=False)


def stft_segment(seg: np.ndarray, offset: int, n_frames: int, res: Resolution) -> tuple[int, np.ndarray]:
    """STFT of a signal that is zero except ``seg`` (``float[..., L]``) placed at sample ``offset``.

    Returns ``(m_lo, spec)`` where ``spec`` (``complex64[..., M, bins]``) holds the frames ``m_lo..m_lo+M-1``
    of the full-length STFT (clipped to ``0..n_frames-1``); every other frame is zero.
    """
    seg = np.asarray(seg, dtype=np.float32)
    half = res.n_fft // 2
    length = seg.shape[-1]
    m_lo = max(0, -(-(offset - half + 1) // res.hop))
    m_hi = min(n_frames - 1, (offset + length + half - 1) // res.hop)
    if m_hi < m_lo:
        return 0, np.zeros((*seg.shape[:-1], 0, res.n_bins()), np.complex64)
    start = m_lo * res.hop - half
    buf = np.zeros((*seg.shape[:-1], (m_hi - m_lo) * res.hop + res.n_fft), np.float32)
    a, b = max(offset, start), min(offset + length, start + buf.shape[-1])
    buf[..., a - start : b - start] = seg[..., a - offset : b - offset]
    frames = np.lib.stride_tricks.sliding_window_view(buf, res.n_fft, axis=-1)[..., :: res.hop, :]
    spec = scipy.fft.rfft(frames * res.window, axis=-1) * np.float32(res.scale)
    return m_lo, spec.astype(np.complex64, copy=False)


def istft(spec: np.ndarray, res: Resolution, n_samples: int) -> np.ndarray:
    """Inverse of :func:`stft` (weighted overlap-add) → ``float32[..., n_samples]``."""
    frames = np.fft.irfft(spec / np.float32(res.scale), n=res.n_fft, axis=-1).astype(np.float32)
    w = res.window
    half = res.n_fft // 2
    n_frames = spec.shape[-2]
    total = (n_frames - 1) * res.hop + res.n_fft
    out = np.zeros((*spec.shape[:-2], total), np.float32)
    norm = np.zeros(total, np.float32)
    for m in range(n_frames):  # n_fft/hop overlapping adds per sample; frames are few thousand at most
        out[..., m * res.hop : m * res.hop + res.n_fft] += frames[..., m, :] * w
        norm[m * res.hop : m * res.hop + res.n_fft] += w * w
    out /= np.maximum(norm, 1e-3)
    return out[..., half : half + n_samples]


ONSET_LAG = 1
"""Frames (of the onset STFT: 5.8 ms at 44.1 kHz) between the spectra the onset flux compares."""
ONSET_DELTA = 0.3
"""Flux (dB, mean over bins) a peak must exceed its moving median by."""
SLOW_ONSET_LAG = 5
"""The lag of a second, slow flux: one frame misses slow attacks (bowed strings, flute: every onset of the
dev set's string phrase but one), about 30 ms finds them."""
SLOW_ONSET_DELTA = 0.6
"""Threshold of the slow flux's peaks over its moving median (dB)."""
SLOW_ONSET_GAP = 8
"""A slow-flux peak within this many onset frames (46 ms) of a fast one is the same onset."""
ONSET_GRID_S = 0.0005
"""Onset times are fitted on this grid (s) ..."""
ONSET_GRID_COARSE_S = 0.002
"""... after a first pass on this coarser one (the template error is smooth in the onset time)."""
NOTE_ONSET_TOL_S = 0.03
"""A transcribed note's onset moves to the ramp fit's only when that is this close (s)."""
NOTE_DEFAULT_ATTACK_S = 0.01
"""Attack (s) of a transcribed note whose ramp fit disagreed with the transcriber's onset."""
NOTE_SAME_ONSET_S = 0.05
"""Transcribed notes that start within this long (s) of each other start together."""
SUB_OCTAVE_ODD_DB = -15.0
"""A transcribed note whose odd partials (1, 3, 5, 7) hold this much less new power (dB) than its even ones
(2, 4, 6, 8) is played an octave higher: its odd partials are not there, the note is a sub-octave ghost of
the one above (−10 / −15 / −20 dB on the 16 FluidR3 tuning phrases: note F1 0.887 → 0.892 / 0.891 / 0.891;
rendered by timidity: 0.875 → 0.883 / 0.886)."""
HELD_RISE_DB = 10.0
"""A held (transcribed) note's partial track is fitted until it rises this much (dB) over its running
minimum: bowing and vibrato swell a sustained partial by a few dB without a new note."""
HELD_BAND = 0.03
"""A held note's partial k is tracked over ±3 % of its frequency (±50 cents: vibrato) for its decay."""
HELD_DROP_TOL_DB = 3.0
"""A held note's modelled fall over its hold may exceed the input's by this much (dB) before its T60s are
stretched (:func:`_match_hold_drop`)."""
HELD_T60_MAX_STRETCH = 20.0
RELEASE_HINT_TOL_S = 0.1
"""A release break this close (s) to a transcribed note's end is taken as its note-off."""
RELEASE_MEASURE_S = 0.25
"""The release's extra decay is measured over this long (s) after a transcribed note's end."""
RELEASE_CONFIRM_DB_S = 30.0
"""A transcribed note-off is confirmed when the input decays at least this much faster (dB/s) after it than
during the hold, or when that cannot be measured (a new note arrives at once: legato): the note is then held
until it (decay over vibrato, matched to the input's fall) and let go there.  Unconfirmed, the note-off still
sets ``duration`` but the release is the slowest (4 s) and the decay is fitted as before, so the note rings
on as the input does (a struck note whose key-up is inaudible)."""
UNCONFIRMED_RELEASE_S = 4.0
"""``release`` (s, the layout's longest) after an unconfirmed note-off: the note rings on as fitted."""
RELEASE_UNSEEN_DB_S = -120.0
"""Extra decay (dB/s) after a confirmed note-off whose release cannot be measured."""
PRIOR_FLOOR = 0.05
"""Added to a pitch prior's probabilities before they weight the harmonic salience."""
PRIOR_SALIENCE_RATIO = 0.5
"""A pitch prior only chooses among f0 candidates with at least this share of the best harmonic salience."""
PRIOR_HARM_TOL = 0.15
"""The prior's f0 is kept when its harmonicity is at most this much below that of the f0 found without it
(otherwise the prior pulled the f0 off the partials: on speech, which the network never saw, it did)."""


@dataclass
class Cues:
    """What a second detector (the proposal network) reads in a residual, on the residual's clock.

    ``onset``: probability per frame ``float[T]``; ``pitch``: probabilities ``float[P, T]`` of the pitches
    ``pitch_grid`` (MIDI ``float[P]``); frame ``t`` is at ``offset_s + t · frame_s`` seconds.
    """

    onset: np.ndarray
    pitch: np.ndarray
    pitch_grid: np.ndarray
    frame_s: float
    offset_s: float = 0.0
    hint_min: float = 0.2
    """Onset peaks at least this probable are examined as onsets (hints)."""
    hint_times: np.ndarray | None = None
    """When set, the hints (s after ``offset_s``) instead of the onset map's peaks (:meth:`keep_hints`)."""

    def shifted(self, dt_s: float) -> Cues:
        """The same cues on a clock ``dt_s`` seconds later (a residual padded in front by ``dt_s``)."""
        return replace(self, offset_s=self.offset_s + dt_s)

    def _frame(self, t_s: float) -> int:
        return int(np.clip(round((t_s - self.offset_s) / self.frame_s), 0, self.onset.shape[0] - 1))

    def hints(self) -> np.ndarray:
        """Times (s) of the local maxima of the onset probability at or above :attr:`hint_min` (or
        :attr:`hint_times` when set)."""
        if self.hint_times is not None:
            return self.offset_s + np.asarray(self.hint_times, np.float64)
        o = np.asarray(self.onset, np.float64)
        if o.size < 3:
            return np.zeros(0)
        m = np.flatnonzero((o[1:-1] >= o[:-2]) & (o[1:-1] > o[2:]) & (o[1:-1] >= self.hint_min)) + 1
        return self.offset_s + m * self.frame_s

    def keep_hints(self, found_s: np.ndarray, tol_s: float) -> Cues:
        """The same cues with only the hints within ``tol_s`` of a time in ``found_s`` (s, this clock): a
        hint that gave no event in one round is not examined again (it costs a fit each round)."""
        h = self.hints()
        f = np.asarray(found_s, np.float64).reshape(-1)
        keep = np.abs(h[:, None] - f[None, :]).min(axis=1) <= tol_s if f.size else np.zeros(h.size, bool)
        return replace(self, hint_times=h[keep] - self.offset_s)

    def pitch_prior(self, t_s: float, pitches: np.ndarray) -> np.ndarray:
        """Probability ``float[len(pitches)]`` of each pitch (MIDI) within ±1 frame of ``t_s``."""
        f = self._frame(t_s)
        p = np.asarray(self.pitch[:, max(0, f - 1) : f + 2], np.float64).max(axis=1)
        return np.asarray(np.interp(pitches, self.pitch_grid, p))


HINT_MERGE_FRAMES = 4
"""An onset hint within this many onset frames (23 ms at 44.1 kHz) of a flux peak is the same onset."""


def onset_flux(power_o: np.ndarray, range_db: float = 60.0, lag: int | None = None) -> np.ndarray:
    """SuperFlux onset strength of a power spectrogram ``float[frames, bins]`` → ``float[frames]`` (dB):
    the mean rise over the bins from ``lag`` (default :data:`ONSET_LAG`) frames before.

    Bins are floored ``range_db`` below the loudest bin, so near-silent flicker left by subtraction
    does not look like onsets.
    """
    lag = ONSET_LAG if lag is None else lag
    floor = max(POWER_FLOOR, float(power_o.max(initial=0.0)) * 10.0 ** (-range_db / 10.0))
    db = 10.0 * np.log10(np.maximum(power_o, floor))
    prev = ndimage.maximum_filter1d(db, size=3, axis=1)
    flux = np.zeros(db.shape[0], np.float64)
    if db.shape[0] > lag:
        flux[lag:] = np.maximum(db[lag:] - prev[:-lag], 0.0).mean(axis=1)
    return flux


def pick_onsets(flux: np.ndarray, frame_s: float, delta: float | None = None) -> np.ndarray:
    """Frames of local flux maxima (±2 frames) above a moving median + ``delta`` → ``int64[K]``."""
    if flux.size < 3:
        return np.zeros(0, np.int64)
    local = ndimage.maximum_filter1d(flux, size=5)
    med_len = max(3, round(0.25 / frame_s) | 1)
    base = ndimage.median_filter(flux, size=med_len, mode="nearest")
    delta = ONSET_DELTA if delta is None else delta
    peaks = np.nonzero((flux == local) & (flux > base + delta) & (flux > 0))[0]
    return peaks.astype(np.int64)


@dataclass
class _Templates:
    """Onset-envelope templates: ``curves[a, i]`` = smoothed power at ``d = d0 + i / sr`` after the onset."""

    attacks: np.ndarray  # float[A] seconds
    curves: np.ndarray  # float[A, L]
    d0: float


@dataclass
class _Frames:
    """Residual power spectrograms of one signal at both resolutions (mono, amplitude² units)."""

    po: np.ndarray  # float32[Fo, Bo]
    pa: np.ndarray  # float32[Fa, Ba]


class Analyzer:
    """The analysis initialiser: proposes events from a residual.  Deterministic; no state between calls."""

    name = "analysis"

    def __init__(self, sample_rate: int) -> None:
        self.sr = int(sample_rate)
        self.res_o, self.res_a = resolutions(self.sr)
        self.freqs_a = np.fft.rfftfreq(self.res_a.n_fft, 1.0 / self.sr)
        self.bin_hz = self.sr / self.res_a.n_fft
        self.f_max = min(0.47 * self.sr, 19000.0)
        pitches = np.arange(24.0, 108.0, 0.125)
        self.cand_pitch = pitches
        f0 = events.pitch_to_hz(pitches)
        harm = np.arange(1, 21)
        fh = f0[:, None] * harm[None, :]
        self.cand_valid = fh < min(self.f_max, 8000.0)
        self.cand_bins = np.clip(np.rint(fh / self.bin_hz).astype(np.int64), 0, self.res_a.n_bins() - 1)
        self._tpl: _Templates | None = None
        self.cand_weight = np.where(self.cand_valid, (f0[:, None] + 27.0) / (fh + 320.0), 0.0)

    # -- public -------------------------------------------------------------------------------------
    def propose(
        self,
        residual: np.ndarray,
        sample_rate: int,
        max_events: int,
        exclude: np.ndarray | None = None,
        cues: Cues | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Events in a mono residual ``float32[n]`` → ``(vectors float64[K,32], times_s[K], scores[K])``.

        At most one event per onset; ``scores`` is the new-energy power the event is expected to explain
        (largest first).  Times are seconds from the start of ``residual``.  ``exclude`` (``float[K, 2]``:
        time_s, pitch) lists pitched events already found: their harmonics are ignored at their onsets, so
        what they left over is not proposed again and the notes under them are.  ``cues`` (the proposal
        network's reading of the same residual, :class:`Cues`): its onsets are examined as well as the flux
        peaks, and its pitch map weights the harmonic salience of each onset's f0.
        """
        if sample_rate != self.sr:
            raise ValueError(f"analyser built for {self.sr} Hz, got {sample_rate} Hz")
        x = np.asarray(residual, dtype=np.float32).reshape(-1)
        po = np.abs(stft(x, self.res_o)) ** 2
        pa = np.abs(stft(x, self.res_a)) ** 2
        return self.propose_from_power(po, pa, max_events, exclude, cues)

    def propose_from_power(
        self,
        po: np.ndarray,
        pa: np.ndarray,
        max_events: int,
        exclude: np.ndarray | None = None,
        cues: Cues | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`propose`, from residual power spectrograms at the onset and analysis resolutions."""
        empty = (np.zeros((0, events.N_DIMS)), np.zeros(0), np.zeros(0))
        if max_events <= 0 or po.shape[0] < 4:
            return empty
        fr = _Frames(po.astype(np.float32, copy=False), pa.astype(np.float32, copy=False))
        flux = onset_flux(fr.po)
        frame_s = self.res_o.hop / self.sr
        peaks = pick_onsets(flux, frame_s)
        slow = pick_onsets(onset_flux(fr.po, lag=SLOW_ONSET_LAG), frame_s, SLOW_ONSET_DELTA)
        if slow.size:  # slow attacks the fast flux missed
            if peaks.size:
                slow = slow[np.abs(slow[:, None] - peaks[None, :]).min(axis=1) > SLOW_ONSET_GAP]
            peaks = np.unique(np.concatenate([peaks, slow]))
        hints = None if cues is None else cues.hints()
        if hints is not None and len(hints):
            # a hint near a flux peak adds nothing; the others are examined like flux peaks
            hm = np.rint(np.asarray(hints, np.float64) / frame_s).astype(np.int64)
            hm = hm[(hm >= 1) & (hm < po.shape[0])]
            if peaks.size:
                hm = hm[np.abs(hm[:, None] - peaks[None, :]).min(axis=1) > HINT_MERGE_FRAMES]
            peaks = np.unique(np.concatenate([peaks, hm]))
        if peaks.size == 0:
            return empty
        cands: list[tuple[float, float, float, np.ndarray]] = []
        for m in peaks:
            t0, attack = self._onset_time(fr, int(m))
            new = self._new_energy(fr, t0)
            if exclude is not None and len(exclude):
                near = np.abs(exclude[:, 0] - t0) < 0.06
                for p in exclude[near, 1]:
                    self._mask_harmonics(new, float(events.pitch_to_hz(p)))
            score = float(new.sum())
            if score < MIN_EVENT_POWER:
                continue
            cands.append((score, t0, attack, new))
        cands.sort(key=lambda c: -c[0])
        kept: list[tuple[float, float, float, np.ndarray]] = []
        for c in cands:  # merge near-duplicate onsets, strongest first
            if all(abs(c[1] - k[1]) >= MIN_ONSET_GAP_S for k in kept):
                kept.append(c)
            if len(kept) >= max_events:
                break
        vecs, times, scores = [], [], []
        for score, t0, attack, new in kept:
            prior = None if cues is None else cues.pitch_prior(t0, self.cand_pitch)
            v = self._estimate(fr, t0, attack, new, prior)
            vecs.append(v)
            times.append(max(t0, 0.0))
            scores.append(score)
        if not vecs:
            return empty
        return np.stack(vecs), np.asarray(times, np.float64), np.asarray(scores, np.float64)

    def propose_notes(
        self, residual: np.ndarray, sample_rate: int, notes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One pitched event per transcribed note: ``notes`` ``float[K, 2]`` (onset s from the start of
        ``residual``, MIDI pitch) or ``float[K, 3]`` (and the note-off, s) → ``(vectors float64[K, 32],
        times_s[K], scores[K])``.  With a note-off the note is held until it (:meth:`_fit_partials`).

        The onset is refined (with the attack) by the same ramp fit as a flux peak's when that stays within
        :data:`NOTE_ONSET_TOL_S` of the transcriber's; the f0 is refined on the partials; every other
        number is estimated as for an analysis onset (:meth:`_estimate`).
        """
        if sample_rate != self.sr:
            raise ValueError(f"analyser built for {self.sr} Hz, got {sample_rate} Hz")
        empty = (np.zeros((0, events.N_DIMS)), np.zeros(0), np.zeros(0))
        notes = np.asarray(notes, np.float64)
        notes = notes.reshape(len(notes), -1) if notes.size else np.zeros((0, 2))
        ends = notes[:, 2] if notes.shape[1] > 2 else np.full(len(notes), np.nan)
        x = np.asarray(residual, dtype=np.float32).reshape(-1)
        if len(notes) == 0 or x.size < self.res_a.n_fft:
            return empty
        fr = _Frames(np.abs(stft(x, self.res_o)) ** 2, np.abs(stft(x, self.res_a)) ** 2)
        hop_o = self.res_o.hop / self.sr
        last = (fr.pa.shape[0] - 2) * self.res_a.hop / self.sr - 0.5 * self.res_a.n_fft / self.sr
        vecs, times, scores = [], [], []
        for (t, pitch), end in zip(notes[:, :2], ends, strict=True):
            if not 0.0 <= t < last:  # too close to the end to measure: the next window has it
                continue
            m = int(np.clip(round(t / hop_o) + 2, 1, fr.po.shape[0] - 1))
            t0, attack = self._onset_time(fr, m)
            if abs(t0 - t) > NOTE_ONSET_TOL_S:
                t0, attack = float(t), NOTE_DEFAULT_ATTACK_S
            new = self._new_energy(fr, t0)
            f0 = float(events.pitch_to_hz(pitch))
            if self._odd_even_db(new, f0) < SUB_OCTAVE_ODD_DB and 2 * f0 < self.f_max:  # a sub-octave ghost
                same = (np.abs(notes[:, 0] - t) <= NOTE_SAME_ONSET_S) & (
                    np.abs(notes[:, 1] - pitch - 12) < 0.5
                )
                if same.any():  # of a note transcribed as well: that note stands, with its own note-off
                    continue
                f0 *= 2.0
            hold = float(end - t0) if np.isfinite(end) else None
            v = self._estimate(fr, t0, attack, new, f0_hint=f0, hold_hint=hold)
            vecs.append(v)
            times.append(max(t0, 0.0))
            scores.append(float(new.sum()))
        if not vecs:
            return empty
        return np.stack(vecs), np.asarray(times, np.float64), np.asarray(scores, np.float64)

    # -- steps --------------------------------------------------------------------------------------
    def _t_o(self, m: np.ndarray | float) -> np.ndarray | float:
        return np.asarray(m) * self.res_o.hop / self.sr

    def _onset_time(self, fr: _Frames, m: int) -> tuple[float, float]:
        """Refine a flux-peak frame to ``(onset time, attack)`` in seconds.

        The new-energy envelope around the peak (power above the pre-onset mean, onset resolution) is
        matched against templates: a raised-cosine ramp of each candidate attack, squared and smoothed by
        the squared analysis window, at onset times on a 0.5 ms grid.  Least squares with a free scale over
        the frames up to the envelope's peak (before the decay matters).
        """
        po, hop = fr.po, self.res_o.hop
        lo_b, hi_b = max(0, m - 8), max(0, m - 3)
        before = po[lo_b:hi_b].mean(axis=0) if hi_b > lo_b else np.zeros(po.shape[1], np.float32)
        start = max(0, m - 6)
        end = min(po.shape[0], m + int(0.3 * self.sr / hop) + 1)
        env = np.maximum(po[start:end] - before, 0.0).sum(axis=1).astype(np.float64)
        if env.size < 2 or env.max() <= 0:
            return float(self._t_o(m)), 0.005
        pk = int(np.argmax(env))
        use = env[: pk + 2]
        centres = (np.arange(use.size) + start) * hop / self.sr  # s
        t_pk = float(centres[min(pk, use.size - 1)])
        tpl = self._templates()

        def fit(t0s: np.ndarray) -> tuple[int, int]:
            """Attack index and onset index of the best template (least squares) over ``t0s``."""
            d = centres[None, :] - t0s[:, None]  # [T, M] seconds from onset to frame centre
            idx = np.clip(np.rint((d - tpl.d0) * self.sr).astype(np.int64), 0, tpl.curves.shape[1] - 1)
            pred = tpl.curves[:, idx]  # [A, T, M]
            num = (pred * use).sum(axis=-1)
            den = (pred * pred).sum(axis=-1)
            scale = num / np.maximum(den, 1e-30)
            err = np.where(scale > 0, (use * use).sum() - scale * num, np.inf)
            ia, it = np.unravel_index(int(np.argmin(err)), err.shape)
            return int(ia), int(it)

        # candidate onsets: up to 300 ms before the peak frame, on a coarse grid, then finely around the best
        coarse = t_pk - np.arange(0.0, 0.3, ONSET_GRID_COARSE_S)
        _, it = fit(coarse)
        fine = coarse[it] + np.arange(-ONSET_GRID_COARSE_S, ONSET_GRID_COARSE_S + 1e-9, ONSET_GRID_S)
        fine = fine[(fine <= t_pk) & (fine > t_pk - 0.3)]
        ia, it = fit(fine)
        return float(fine[it]), float(tpl.attacks[ia])

    def _templates(self) -> _Templates:
        """Envelope templates for :meth:`_onset_time` (built once per analyser)."""
        if self._tpl is None:
            sr = self.sr
            w2 = self.res_o.window.astype(np.float64) ** 2
            half = self.res_o.n_fft // 2
            attacks = np.geomspace(0.001, 0.3, 16)
            length = int(0.35 * sr)
            t = np.arange(length) / sr
            curves = []
            for att in attacks:
                ramp = np.where(t < att, 0.5 - 0.5 * np.cos(np.pi * np.minimum(t / att, 1.0)), 1.0) ** 2
                # curves[a, i] = sum_j w²[j] r(d - half + j) with d = i/sr - half/sr (frame centre - onset)
                sig = np.concatenate([np.zeros(2 * half), ramp, np.ones(half)])
                curves.append(np.convolve(sig, w2[::-1], mode="valid")[: length + half])
            self._tpl = _Templates(np.asarray(attacks), np.stack(curves), -half / sr)
        return self._tpl

    def _frames_a(self, t0: float, a: float, b: float) -> slice:
        """Analysis frames whose centres lie in ``[t0 + a, t0 + b)`` seconds."""
        hop_s = self.res_a.hop / self.sr
        lo = max(0, math.ceil((t0 + a) / hop_s))
        hi = max(lo, math.ceil((t0 + b) / hop_s))
        return slice(lo, hi)

    def _new_energy(self, fr: _Frames, t0: float) -> np.ndarray:
        """Power spectrum (``float[bins]``) that appears at ``t0``: mean after minus mean before."""
        win_s = self.res_a.n_fft / self.sr
        after = fr.pa[self._frames_a(t0, 0.25 * win_s, 0.25 * win_s + 0.1)]
        if after.shape[0] == 0:
            return np.zeros(fr.pa.shape[1])
        before = fr.pa[self._frames_a(t0, -0.5 * win_s - 0.08, -0.5 * win_s)]
        ref = before.mean(axis=0) if before.shape[0] else 0.0
        return np.maximum(after.mean(axis=0) - ref, 0.0).astype(np.float64)

    def _mask_harmonics(self, p: np.ndarray, f0: float, width: int = 2) -> None:
        """Zero the bins within ±``width`` of the harmonics of ``f0`` in ``p`` (in place)."""
        k = np.arange(1, int(self.f_max / f0) + 1)
        c = np.rint(k * f0 / self.bin_hz).astype(np.int64)
        for d in range(-width, width + 1):
            p[np.clip(c + d, 0, p.size - 1)] = 0.0

    def _f0(
        self, new: np.ndarray, second: bool = False, prior: np.ndarray | None = None
    ) -> tuple[float, float]:
        """``(f0_hz, harmonicity)`` of a new-energy power spectrum; harmonicity in ``[0, 1]``.

        When one f0 explains too little, a second f0 is sought on the rest (``second`` marks that call).
        """
        mag = np.sqrt(new)
        y = ndimage.maximum_filter1d(np.sqrt(mag), size=3)
        sal = (self.cand_weight * y[self.cand_bins]).sum(axis=1)
        if prior is not None:
            sal = np.where(sal >= PRIOR_SALIENCE_RATIO * sal.max(), sal * (PRIOR_FLOOR + prior), 0.0)
        best = int(np.argmax(sal))
        f0 = self._refine_f0(new, float(events.pitch_to_hz(self.cand_pitch[best])))
        score, band, mask, total, top = self._harmonicity(new, f0)
        if second or score >= 0.55 or total <= 0:
            return f0, score
        # a chord: the best f0 explains one note; count it pitched when two f0s explain the onset together
        rest = new.copy()
        self._mask_harmonics(rest, f0, width=1)
        f0b, _ = self._f0(rest, second=True, prior=prior)
        k_b = np.arange(1, int(self.f_max / f0b) + 1)
        for d in (-1, 0, 1):
            mask[np.clip(np.rint(k_b * f0b / self.bin_hz).astype(np.int64) + d, 0, top - 1)] = True
        cover2 = float(mask.mean())
        harm2 = float(band[mask].sum()) / total
        score2 = max(0.0, (harm2 - cover2) / max(1.0 - cover2, 1e-6))
        return f0, score if score2 < 0.7 else max(score, 0.56)

    def _odd_even_db(self, new: np.ndarray, f0: float) -> float:
        """Power (dB) of the odd partials 1, 3, 5, 7 of ``f0`` (Hz) over that of the even ones 2, 4, 6, 8 in
        power spectrum ``new`` (each partial: the peak within ±3 %); +inf when the even ones hold none."""
        odd = even = 0.0
        for k in range(1, 9):
            fk = k * f0
            if fk >= self.f_max:
                break
            lo = max(1, int(fk * 0.97 / self.bin_hz))
            hi = min(new.size - 1, math.ceil(fk * 1.03 / self.bin_hz))
            if hi < lo:
                continue
            p = float(new[lo : hi + 1].max())
            if k % 2:
                odd += p
            else:
                even += p
        if even <= POWER_FLOOR:
            return math.inf
        return 10.0 * math.log10(max(odd, POWER_FLOOR) / even)

    def _refine_f0(self, new: np.ndarray, f0: float) -> float:
        """``f0`` (Hz) refined from the partial peaks of power spectrum ``new`` (parabolic interpolation on
        log power, power-weighted median over partials 1-8); not moved by half a semitone or more."""
        ests, wts = [], []
        for k in range(1, 9):
            fk = k * f0
            if fk >= self.f_max:
                break
            lo = max(1, int((fk * 0.97) / self.bin_hz))
            hi = min(new.size - 2, math.ceil(fk * 1.03 / self.bin_hz) + 1)
            if hi <= lo:
                continue
            j = lo + int(np.argmax(new[lo : hi + 1]))
            if new[j] <= POWER_FLOOR:
                continue
            a, b, c = np.log(np.maximum(new[j - 1 : j + 2], POWER_FLOOR))
            den = a - 2 * b + c
            off = 0.5 * (a - c) / den if den < 0 else 0.0
            ests.append((j + float(np.clip(off, -0.5, 0.5))) * self.bin_hz / k)
            wts.append(new[j])
        if ests:
            e, w = np.asarray(ests), np.asarray(wts)
            order = np.argsort(e)
            cw = np.cumsum(w[order])
            f0_ref = float(e[order][np.searchsorted(cw, 0.5 * cw[-1])])
            if abs(12 * math.log2(f0_ref / f0)) < 0.5:
                f0 = f0_ref
        return f0

    def _harmonicity(self, new: np.ndarray, f0: float) -> tuple[float, np.ndarray, np.ndarray, float, int]:
        """Share of the new energy within ±1 bin of the harmonics of ``f0``, beyond the share that evenly
        spread energy would have (low f0s cover many bins): ``(score in [0, 1], band, mask, total, top)``."""
        top = int(self.f_max / self.bin_hz)
        k_all = np.arange(1, int(self.f_max / f0) + 1)
        mask = np.zeros(top, bool)
        centres = np.rint(k_all * f0 / self.bin_hz).astype(np.int64)
        for d in (-1, 0, 1):
            mask[np.clip(centres + d, 0, top - 1)] = True
        band = new[:top]
        total = float(band.sum())
        cover = float(mask.mean())
        harm = float(band[mask].sum()) / total if total > 0 else 0.0
        return max(0.0, (harm - cover) / max(1.0 - cover, 1e-6)), band, mask, total, top

    def _f0_with_prior(self, new: np.ndarray, prior: np.ndarray | None) -> tuple[float, float]:
        """:meth:`_f0` guided by a pitch prior (``float[len(cand_pitch)]`` or ``None``): the prior's choice
        stands unless its harmonicity is more than :data:`PRIOR_HARM_TOL` below the unguided f0's."""
        f0, harm = self._f0(new)
        if prior is not None:
            f0_p, harm_p = self._f0(new, prior=prior)
            if harm_p >= harm - PRIOR_HARM_TOL:
                return f0_p, harm_p
        return f0, harm

    def _estimate(
        self,
        fr: _Frames,
        t0: float,
        attack: float,
        new: np.ndarray,
        prior: np.ndarray | None = None,
        f0_hint: float | None = None,
        hold_hint: float | None = None,
    ) -> np.ndarray:
        """One physical event vector for the onset at ``t0`` (s) with new-energy spectrum ``new``; with
        ``f0_hint`` (Hz, a transcribed note) the event is pitched at that f0, refined on the partials."""
        v = events.defaults(1)[0]
        v[_C["attack"]] = attack
        if f0_hint is not None:
            f0 = self._refine_f0(new, f0_hint)
            harm = self._harmonicity(new, f0)[0]
            pitched = f0 < self.f_max
        else:
            f0, harm = self._f0_with_prior(new, prior)
            pitched = harm > 0.55 and f0 < self.f_max
        total = float(new.sum())
        if pitched:
            self._fit_partials(v, fr, t0, f0, hold_hint)
            unexpl = max(total * (1.0 - harm), 0.0)
            ratio = math.sqrt(unexpl / max(total * harm, 1e-30))
            v[_C["noise_mix"]] = min(0.35, max(0.0, (2 / math.pi) * math.atan(ratio) - 0.1))
            self._fit_noise_band(v, new, f0)
        else:
            v[_C["pitch"]] = float(np.clip(events.hz_to_pitch(max(f0, 20.0)), 12.0, 120.0))
            v[_C["noise_mix"]] = 1.0
            v[_C["noise_attack"]] = attack
            v[_C["level"]] = 10.0 * math.log10(max(total, 1e-12)) + 3.0
            self._fit_noise_band(v, new, None)
            v[_C["noise_decay"]] = self._band_decay(fr, t0, new)
            v[_C["duration"]] = 0.01
            v[_C["release"]] = 0.01
            v[_C["t60_low"]] = 0.05
            v[_C["t60_high"]] = 0.02
        return events.clip(v)

    def _fit_noise_band(self, v: np.ndarray, new: np.ndarray, f0: float | None) -> None:
        """Noise centre/width from the power the harmonics of ``f0`` (if any) do not explain."""
        p = new.copy()
        if f0 is not None:
            self._mask_harmonics(p, f0)
        f = self.freqs_a[1:]
        w = p[1:]
        if w.sum() <= 0:
            return
        lf = np.log2(np.maximum(f, 20.0))
        mu = float((w * lf).sum() / w.sum())
        sd = float(np.sqrt((w * (lf - mu) ** 2).sum() / w.sum()))
        v[_C["noise_centre"]] = 2.0**mu
        v[_C["noise_width"]] = max(0.1, 2.0 * sd)

    def _band_decay(self, fr: _Frames, t0: float, new: np.ndarray) -> float:
        """T60 (s) of the energy in the bins of ``new`` after ``t0``."""
        w = new / max(float(new.sum()), 1e-30)
        sl = self._frames_a(t0, 0.5 * self.res_a.n_fft / self.sr, 1.0)
        env = fr.pa[sl] @ w
        if env.size < 3:
            return 0.05
        db = 10.0 * np.log10(np.maximum(env, POWER_FLOOR))
        pk = int(np.argmax(db[: max(1, env.size // 3)]))
        below = np.nonzero(db[pk:] < db[pk] - 30.0)[0]
        end = pk + (int(below[0]) if below.size else db.size - pk)
        seg = db[pk:end]
        if seg.size < 2:
            return 0.03
        t = np.arange(seg.size) * self.res_a.hop / self.sr
        slope = float(np.polyfit(t, seg, 1)[0])
        return float(np.clip(-60.0 / min(slope, -1.0), 0.005, 30.0))

    def _fit_partials(
        self, v: np.ndarray, fr: _Frames, t0: float, f0: float, hold_hint: float | None = None
    ) -> None:
        """Pitch, spectral envelope, decays and envelope times from the partial tracks of ``f0``.

        ``hold_hint`` (s after ``t0``, a transcribed note's note-off): see :func:`_note_span`.  A held note's
        decay is fitted across vibrato and matched to the input's fall over the hold."""
        sr, hop_s = self.sr, self.res_a.hop / self.sr
        v[_C["pitch"]] = float(events.hz_to_pitch(f0))
        n_part = int(min(events.MAX_PARTIALS, self.f_max // f0))
        k = np.arange(1, n_part + 1)
        fk = k * f0
        bins = np.rint(fk / self.bin_hz).astype(np.int64)
        win_s = self.res_a.n_fft / sr
        sl = self._frames_a(t0, 0.4 * win_s, events.MAX_SUPPORT_S)
        pa = fr.pa[sl]
        if pa.shape[0] < 2:
            pa = fr.pa[max(0, sl.start - 2) : sl.start + 2]
        nb = pa.shape[1]
        tracks = np.maximum.reduce([pa[:, np.clip(bins + d, 0, nb - 1)] for d in (-1, 0, 1)])  # [M, K]
        db = 10.0 * np.log10(np.maximum(tracks, POWER_FLOOR))  # dB amplitude
        t = (np.arange(db.shape[0]) + sl.start) * hop_s - t0  # frame centre relative to the onset
        env_db = 10.0 * np.log10(np.maximum(tracks.sum(axis=1), POWER_FLOOR))
        search = max(1, min(env_db.size, int(0.3 / hop_s)))
        pk = int(np.argmax(env_db[:search]))
        # valid range: until a new arrival (rise > 6 dB over running minimum) or 60 dB down
        run_min = np.minimum.accumulate(env_db[pk:])
        bad = (env_db[pk:] > run_min + 6.0) | (env_db[pk:] < env_db[pk] - 60.0)
        bad[0] = False
        end = pk + (int(np.argmax(bad)) if bad.any() else env_db.size - pk)
        end = max(end, pk + 1)
        hold_end, held, v[_C["duration"]], v[_C["release"]] = _note_span(t, env_db, pk, end, hold_hint)
        # per-partial lines over [pk, hold_end)
        seg = db[pk:hold_end]
        tt = t[pk:hold_end]
        prev_rise = seg > np.minimum.accumulate(seg, axis=0) + (HELD_RISE_DB if held else 3.0)
        floor = seg.max(axis=0, keepdims=True) - 50.0
        mask = (~np.logical_or.accumulate(prev_rise, axis=0)) & (seg > floor) & (seg > -95.0)
        amp_db, slope = _masked_lines(tt, seg, mask, at=v[_C["attack"]])
        if held:  # a held note's decay: over the partials' vibrato (each partial's wider band)
            wide = 10.0 * np.log10(
                np.maximum(_band_max(pa[pk:hold_end], bins, fk * HELD_BAND / self.bin_hz), POWER_FLOOR)
            )
            slope = _masked_lines(tt, wide, mask, at=v[_C["attack"]])[1]
        # decay → T60 per partial, then log-T60 line over log-frequency between the reference points
        t60 = np.clip(-60.0 / np.minimum(slope, -0.5), 0.005, 60.0)
        good = mask.sum(axis=0) >= 2
        wts = np.where(good, 10.0 ** (amp_db / 20.0), 0.0)
        if wts.sum() > 0:
            x = (np.log(fk) - math.log(events.REFERENCE_T60_LOW_HZ)) / math.log(
                events.REFERENCE_T60_HIGH_HZ / events.REFERENCE_T60_LOW_HZ
            )
            y = np.log(t60)
            a_mat = np.stack([1.0 - x, x], axis=1) * np.sqrt(wts)[:, None]
            reg = 0.1 * np.eye(2) * wts.sum()
            rhs = a_mat.T @ (y * np.sqrt(wts)) + reg @ np.log([2.0, 0.5])
            coef = np.linalg.solve(a_mat.T @ a_mat + reg, rhs)
            v[_C["t60_low"]] = math.exp(float(np.clip(coef[0], -4, 4.1)))
            v[_C["t60_high"]] = math.exp(float(np.clip(coef[1], -5.3, 4.1)))
            if held and hold_end - pk >= 3:  # the summed partials fall no faster than the input did
                drop = float(np.median(env_db[max(pk + 1, hold_end - 4) : hold_end]) - env_db[pk])
                _match_hold_drop(v, fk, amp_db, x, float(t[hold_end - 1] - t[pk]), drop)
        # spectral envelope: amplitudes (dB) over partial index
        top = float(amp_db.max())
        ok = amp_db > top - 60.0
        a_fit = np.maximum(amp_db, top - 60.0)
        coef, even_gain = _envelope_fit(k, a_fit, np.where(ok, 1.0, 0.2))
        v[_C["tilt"]] = coef[1]
        for j in range(1, 8):
            v[_C[f"env{j}"]] = coef[1 + j]
        v[_C["odd_even"]] = even_gain
        hi_ok = np.nonzero(amp_db > top - 45.0)[0]
        last = fk[hi_ok[-1]] if hi_ok.size else fk[0]
        v[_C["cutoff"]] = float(np.clip(last * 1.6, 50.0, 20000.0))
        amps = 10.0 ** (amp_db / 20.0)
        v[_C["level"]] = 20.0 * math.log10(max(float(np.sqrt((amps**2).sum()) * 1.8), 1e-6))


def envelope_basis(k: np.ndarray) -> np.ndarray:
    """Design matrix ``[K, 9]`` of the partial-amplitude model: 1, log2 k, cos(πj·log2(k)/6) for j=1..7."""
    u = np.log2(k) / 6.0
    cols = [np.ones_like(u), np.log2(k)] + [np.cos(np.pi * j * u) for j in range(1, 8)]
    return np.stack(cols, axis=1)


def _envelope_fit(k: np.ndarray, amp_db: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Ridge least squares of dB amplitudes → ``(coef[9], odd_even_db)``; the constant is ``coef[0]``."""
    basis = envelope_basis(k.astype(np.float64))
    even = (k % 2 == 0).astype(np.float64)[:, None]
    a_mat = np.concatenate([basis, even], axis=1)
    sw = np.sqrt(w)[:, None]
    lam = np.array([0.0, 1e-3] + [0.5 * j for j in range(1, 8)] + [2.0]) * max(float(w.sum()), 1.0) * 0.05
    lhs = (a_mat * sw).T @ (a_mat * sw) + np.diag(lam)
    rhs = (a_mat * sw).T @ (amp_db * sw[:, 0])
    coef = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    if k.size < 2:
        coef[1:] = 0.0
    even_gain = float(coef[-1]) if k.size >= 4 else 0.0
    return coef[:-1], even_gain


def _masked_lines(t: np.ndarray, y: np.ndarray, mask: np.ndarray, at: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-column LS lines ``y ≈ a + s t`` over masked rows → (value at ``t = at``, slope) ``[K]`` each."""
    w = mask.astype(np.float64)
    n = w.sum(axis=0)
    tc = t[:, None]
    st, sy = (w * tc).sum(axis=0), (w * y).sum(axis=0)
    stt, sty = (w * tc * tc).sum(axis=0), (w * tc * y).sum(axis=0)
    den = n * stt - st * st
    slope = np.where((n >= 2) & (den > 1e-12), (n * sty - st * sy) / np.where(den > 1e-12, den, 1.0), 0.0)
    slope = np.minimum(slope, 0.0)
    fallback = y.max(axis=0) if y.shape[0] else np.full(y.shape[1], -100.0)
    inter = np.where(n > 0, (sy - slope * st) / np.maximum(n, 1), fallback)
    return inter + slope * at, slope


def _match_hold_drop(
    v: np.ndarray, fk: np.ndarray, amp_db: np.ndarray, x: np.ndarray, dt: float, drop: float
) -> None:
    """Lengthen ``v``'s T60s (both by one factor, up to :data:`HELD_T60_MAX_STRETCH`) until its partials'
    summed power falls by no more than ``drop`` dB (< 0, measured on the input) over ``dt`` s.

    ``fk``/``amp_db``: the partials' frequencies (Hz) and levels; ``x``: their position (0 at 100 Hz, 1 at
    8 kHz) on the T60 line.  Per-partial slopes of a sustained, vibrating partial read as decays; the
    total is what the ear (and the note's end) follows."""
    w = 10.0 ** (amp_db / 10.0)
    if dt <= 0 or w.sum() <= 0:
        return
    xc = np.clip(x, 0.0, 1.0)
    log_t60 = (1.0 - xc) * math.log(float(v[_C["t60_low"]])) + xc * math.log(float(v[_C["t60_high"]]))

    def fall(c: float) -> float:
        return float(10.0 * np.log10((w * 10.0 ** (-6.0 * dt / (c * np.exp(log_t60)))).sum() / w.sum()))

    if fall(1.0) >= drop - HELD_DROP_TOL_DB:
        return
    lo, hi = 0.0, math.log(HELD_T60_MAX_STRETCH)
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if fall(math.exp(mid)) < drop else (lo, mid)
    c = math.exp(hi)
    v[_C["t60_low"]] = float(np.clip(v[_C["t60_low"]] * c, 0.02, 60.0))
    v[_C["t60_high"]] = float(np.clip(v[_C["t60_high"]] * c, 0.005, 60.0))


def _band_max(pa: np.ndarray, bins: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Power ``[M, K]`` of the strongest bin within ``half`` (``float[K]``, ≥ 1) bins of each of ``bins``
    (``int[K]``) in each frame of ``pa`` (``[M, B]``)."""
    nb = pa.shape[1]
    w = np.maximum(np.rint(half).astype(np.int64), 1)
    out = np.zeros((pa.shape[0], bins.size), pa.dtype)
    for d in range(-int(w.max()), int(w.max()) + 1):
        col = pa[:, np.clip(bins + d, 0, nb - 1)]
        out = np.where(np.abs(d) <= w, np.maximum(out, col), out)
    return out


def _slope(t: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` over ``t`` (0 for fewer than two points)."""
    if t.size < 2 or float(np.ptp(t)) <= 0:
        return 0.0
    return float(np.polyfit(t, y, 1)[0])


def _note_span(
    t: np.ndarray, env_db: np.ndarray, pk: int, end: int, hold_hint: float | None
) -> tuple[int, bool, float, float]:
    """How a note is held and let go, from its summed partial envelope ``env_db`` (dB over frames at ``t``
    s after the onset; peak at frame ``pk``, valid until frame ``end``) and, for a transcribed note, its
    note-off ``hold_hint`` (s): ``(hold_end, held, duration s, release s)``, where the partial decays are
    fitted over frames ``[pk, hold_end)`` and ``held`` says the note is held until it is let go.

    A two-segment release break (:func:`_release_break`) stands where there is no note-off or it lies
    within :data:`RELEASE_HINT_TOL_S` of it.  Otherwise the note-off is confirmed or not
    (:data:`RELEASE_CONFIRM_DB_S`); either way it is the ``duration``."""
    m_r, s_hold, s_rel = _release_break(t[pk:end], env_db[pk:end])
    if hold_hint is not None and (m_r is None or abs(float(t[pk + m_r]) - hold_hint) > RELEASE_HINT_TOL_S):
        h = int(np.searchsorted(t, hold_hint))
        s_h = _slope(t[pk:h], env_db[pk:h]) if h > pk + 1 else s_hold
        extra = _release_after(t, env_db, h, end, s_h)
        if extra is None or extra <= -RELEASE_CONFIRM_DB_S:  # held until the note-off, let go there
            s_rel = RELEASE_UNSEEN_DB_S if extra is None else extra
            return min(end, max(h, pk + 2)), True, max(0.01, hold_hint), _release_t60(s_rel)
        return pk + m_r if m_r is not None else end, False, max(0.01, hold_hint), UNCONFIRMED_RELEASE_S
    held = hold_hint is not None  # the release break agrees with the note-off
    if m_r is not None:
        return pk + m_r, held, max(0.01, float(t[pk + m_r])), _release_t60(s_rel)
    return end, held, float(np.clip(max(t[end - 1], 0.05) * 1.5, 0.05, 8.0)), 0.1


def _release_t60(s_rel: float) -> float:
    """The ``release`` (T60, s) of an extra decay ``s_rel`` (dB/s)."""
    return float(np.clip(-60.0 / min(s_rel, -1.0), 0.01, 4.0))


def _release_after(t: np.ndarray, env_db: np.ndarray, h: int, end: int, s_hold: float) -> float | None:
    """Extra decay (dB/s) after a note-off at frame ``h``: the slope of ``env_db`` over the frames from
    ``h`` up to :data:`RELEASE_MEASURE_S` later (and before ``end``, a new arrival) less the hold slope
    ``s_hold``; None when fewer than three frames can be measured."""
    hi = min(end, int(np.searchsorted(t, t[min(h, t.size - 1)] + RELEASE_MEASURE_S)))
    if hi - h < 3:
        return None
    return _slope(t[h:hi], env_db[h:hi]) - s_hold


def _release_break(t: np.ndarray, y: np.ndarray) -> tuple[int | None, float, float]:
    """Two-segment fit of a dB envelope: ``(break index or None, hold slope, release slope)`` in dB/s.

    A break is accepted when the release slope is at least 30 dB/s steeper and the two lines reduce the
    squared error of one line by more than half.  O(n) with prefix sums.
    """
    n = t.size
    if n < 6:
        return None, 0.0, 0.0
    z = np.zeros(1)
    c1 = np.concatenate([z, np.cumsum(np.ones(n))])
    ct = np.concatenate([z, np.cumsum(t)])
    cy = np.concatenate([z, np.cumsum(y)])
    ctt = np.concatenate([z, np.cumsum(t * t)])
    cty = np.concatenate([z, np.cumsum(t * y)])
    cyy = np.concatenate([z, np.cumsum(y * y)])

    def fit(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = c1[hi] - c1[lo]
        st, sy = ct[hi] - ct[lo], cy[hi] - cy[lo]
        stt, sty, syy = ctt[hi] - ctt[lo], cty[hi] - cty[lo], cyy[hi] - cyy[lo]
        vt = stt - st * st / k
        cov = sty - st * sy / k
        slope = np.where(vt > 1e-12, cov / np.maximum(vt, 1e-12), 0.0)
        err = np.maximum(syy - sy * sy / k - slope * cov, 0.0)
        return err, slope

    all_err, all_slope = fit(np.array([0]), np.array([n]))
    b = np.arange(3, n - 2)
    e1, s1 = fit(np.zeros_like(b), b)
    e2, s2 = fit(b, np.full_like(b, n))
    tot = np.where(s2 < s1 - 30.0, e1 + e2, np.inf)
    i = int(np.argmin(tot))
    if not np.isfinite(tot[i]) or tot[i] > 0.5 * float(all_err[0]):
        return None, float(all_slope[0]), float(all_slope[0])
    return int(b[i]), float(s1[i]), float(s2[i])
