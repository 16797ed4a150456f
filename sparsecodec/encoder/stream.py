"""The encoder: streaming analysis-by-synthesis from audio blocks to events (see docs/encoder.md).

For each window (≈5.94 s, hop = half a window):

1. the window's STFT ``X`` (per channel) and the power ``P`` that events already explain (at first, the
   rendered tails of events committed by earlier windows);
2. rounds: the *initialiser* (:mod:`sparsecodec.encoder.initialisers`: the analysis, the network or the
   hybrid) proposes at most one event per onset from the residual; each proposal is rendered with the real
   renderer, its ``level`` rescaled so its magnitude matches the residual, its ``pan`` set from the L/R
   energy of its bins, and it is kept only if it explains enough of the residual; kept events are
   "subtracted" (their power is added to ``P``).  Later rounds find the notes hidden under earlier ones
   (polyphony) and correct errors;
3. optional joint refinement of the window's events with the differentiable generator
   (:func:`~sparsecodec.encoder.refine.refine_window`): ``refine_steps`` (``--refine``), else
   ``local_steps``;
4. events starting in the window's first half are committed, strongest first within the hop's budget; the
   spare budget goes to noise events that fill the residual's envelope
   (:func:`~sparsecodec.encoder.fill.fill_events`); they are yielded as one :class:`EncodedChunk`.

The residual is ``sqrt(max(|X|² − P, 0)) · e^{i∠X}`` ("power subtraction"): the rendered events' seeded
phases never match the input's, so subtracting waveforms would *add* energy wherever a partial is off by a
fraction of a period; subtracting power is what audio-domain subtraction does when phases match, and never
adds energy when they do not.  Everything is deterministic: no RNG is used at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from sparsecodec.encoder import analysis
from sparsecodec.encoder.fill import fill_events
from sparsecodec.encoder.initialisers import (
    DEFAULT_INIT,
    HINT_KEEP_S,
    HybridInit,
    Initialiser,
    make_initialiser,
    resolve_init,
    weights_hash,
)
from sparsecodec.encoder.refine import refine_window
from sparsecodec.errors import InputError, UsageError
from sparsecodec.format import events

__all__ = [
    "BYTES_PER_EVENT",
    "DEFAULT_INIT",
    "ENCODER_ID",
    "EncodedChunk",
    "EncoderSettings",
    "Found",
    "HybridInit",
    "Initialiser",
    "WindowEncoder",
    "encode_stream",
    "encoder_id",
    "hop_samples",
    "make_initialiser",
    "resolve_init",
    "weights_hash",
]

ENCODER_ID = "spev-analysis-1"
"""Provenance name of this encoder (the proposal network, when used, appends its name in the settings)."""

BYTES_PER_EVENT = 16.0
"""Assumed container bytes per event (codes + time after entropy coding) for ``kbps`` → events/s."""

MAX_EVENTS_PER_SECOND = 200.0
"""Event rate used when neither ``kbps`` nor ``events_per_second`` limits it."""

MIN_EXPLAINED = 0.5
"""A proposal is kept only when at least this share of its (calibrated) power lands on residual power."""

CALIBRATION_SPAN_S = 1.0
"""Each proposal is rendered alone over at most this span to set its level and pan (speed); the round's
events are then rendered together over their full support."""
DUPLICATE_MAX_S = 1.0
"""A pitched proposal at the pitch of a found event that is still held (up to this long after its onset)
repeats it, unless the input shows the note struck again (:meth:`WindowEncoder._restruck`)."""
RESTRIKE_DB = 3.0
"""Rise (dB) of the power at a note's harmonics that marks it struck again."""
NOTE_MIN_EXPLAINED = 0.05
"""A transcribed note's event is kept when at least this share of its power lands on residual power (low:
the transcriber has already said that a note starts there; a re-bowed or re-struck note is mostly
explained by the ringing of the one before)."""
NOTE_MATCH_S = 0.05
"""A transcribed note within this long (s) and half a semitone of a committed event is that event."""

UNHEARD_MIN_EXPLAINED = 0.9
"""A pitched proposal at a pitch the transcriber does not hear while it hears other notes
(:meth:`WindowEncoder._unheard`) is kept only when this share of its power lands on residual power: fewer
spurious notes, no loss of quality measured (docs/encoder.md)."""
NOTE_CONTEXT_S = 1.0
"""The transcriber reads this long (s) of the input before each window as well (the previous window's
audio): a note that rings across the window's start is heard as held, not as a new onset."""
NOTE_LEAD_S = 0.1
"""A pitched proposal up to this long (s) before a transcribed note at its pitch is that note's swell
(a slow attack), not a note of its own."""

_REF_HOP_S = 2.0**17 / 44100.0
_C = events.INDEX


def hop_samples(sample_rate: int) -> int:
    """Chunk hop in samples at ``sample_rate`` (2^17 at 44.1 kHz, ≈2.97 s at any rate)."""
    return round(_REF_HOP_S * sample_rate)


def encoder_id(init: str | None = None) -> str:
    """The encoder id recorded in the header: :data:`ENCODER_ID`, or with ``+hybrid``/``+network`` when
    the proposal network takes part, and ``+notes-<hash>`` when the note transcriber does."""
    mode = resolve_init(init)
    if mode == "analysis":
        return ENCODER_ID
    if mode == "hybrid":
        from sparsecodec.encoder import transcriber

        tr = transcriber.load_default()
        if tr is not None:  # the note transcriber takes part: name its weights (first 12 hex of sha256)
            return f"{ENCODER_ID}+hybrid+notes-{tr.weights_hash[:12]}"
    return f"{ENCODER_ID}+{mode}"


@dataclass
class EncoderSettings:
    """What the encoder does.  Plain data (written into the file header's ``settings``)."""

    kbps: float | None = 4.0
    """Target bit rate; sets the event budget via :data:`BYTES_PER_EVENT`.  ``None``: no bit-rate cap."""
    events_per_second: float | None = None
    """Cap on events per second (the smaller of this and the ``kbps`` budget applies)."""
    refine_steps: int = 0
    """Joint Adam steps on all of a window's events (``--refine``); 0 = off."""
    local_steps: int = 0
    """Joint Adam steps on the window's events when ``refine_steps`` is 0 (cheap refinement); 0 = off."""
    init: str | None = None
    """``"hybrid"``, ``"network"`` or ``"analysis"``; ``None``: :data:`DEFAULT_INIT` (the hybrid)."""
    seed: int = 0
    """Seed for anything stochastic (nothing is, today: kept for provenance and the network)."""
    rounds: int = 6
    """Analysis rounds per window (each round proposes at most one event per onset)."""
    floor_db: float = -45.0
    """Drop events explaining less than this (dB) relative to the strongest event of the window."""
    lr: float = 0.03
    """Adam learning rate in unit-interval parameter space."""
    threads: int = 1
    """Torch threads for refinement (1: its tensors are small; 2 threads were 2-7x slower per step on the
    shared 2-core box)."""
    device: str = "cpu"
    """Torch device for refinement."""
    fill: bool = True
    """Spend the hop's spare event budget on noise events that fill the residual's spectral envelope."""
    voice: bool = True
    """Also code each hop as voice knots (:mod:`sparsecodec.encoder.voice`) and keep them instead of the
    hop's events when they explain the hop better (:meth:`WindowEncoder._voice_hop`)."""
    segment_hops: int = 10
    """The input is encoded in segments of this many hops (≈ 29.7 s), each on its own after
    ``preroll_hops`` of pre-roll, so that segments can go to different processes
    (:mod:`sparsecodec.jobs.encode`); the output depends on the input alone.  0: one segment."""
    preroll_hops: int = 1
    """Hops encoded before each segment but the first and then dropped: they rebuild the tails and notes
    that sound into the segment."""

    def event_rate(self) -> float:
        """The event budget in events per second."""
        rate = MAX_EVENTS_PER_SECOND
        if self.kbps is not None:
            if not self.kbps > 0:
                raise UsageError(f"kbps must be > 0, got {self.kbps}")
            rate = min(rate, self.kbps * 1000.0 / 8.0 / BYTES_PER_EVENT)
        if self.events_per_second is not None:
            if not self.events_per_second > 0:
                raise UsageError(f"events_per_second must be > 0, got {self.events_per_second}")
            rate = min(rate, self.events_per_second)
        return rate

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for the header."""
        return asdict(self)


@dataclass
class EncodedChunk:
    """Events of one hop: times are absolute integer samples at the encoder's rate, inside the range."""

    start: int
    length: int
    vectors: np.ndarray  # float64[N, 32] physical
    times: np.ndarray  # int64[N], ascending
    side: dict[str, Any] = field(default_factory=dict)


@dataclass
class Found:
    """An event the rounds kept in the current window."""

    vector: np.ndarray
    """``float64[32]``, physical units (level and pan fitted to the residual)."""
    time: int
    """Onset, absolute sample."""
    power: float
    """Residual power it explained when it was kept (ranks the window's events at commit)."""

    @property
    def pitched(self) -> bool:
        """A pitched event (``noise_mix`` below :data:`events.PITCHED_NOISE_MIX`)."""
        return bool(self.vector[_C["noise_mix"]] < events.PITCHED_NOISE_MIX)


Renderer = Callable[..., np.ndarray]


def _default_renderer() -> Renderer:
    from sparsecodec.synth import render_np  # type: ignore[attr-defined,unused-ignore]

    fn: Renderer = render_np.render
    return fn


def encode_stream(
    blocks: Iterable[np.ndarray],
    sample_rate: int,
    channels: int,
    settings: EncoderSettings,
    progress: Callable[[float], None] | None = None,
    total_samples: int | None = None,
    offset: int = 0,
) -> Iterator[EncodedChunk]:
    """Encode ``float32[channels, k]`` blocks (any ``k``) into one :class:`EncodedChunk` per hop.

    Memory stays flat: one window of audio plus the events whose tails reach into it.  The result does not
    depend on how the input is cut into blocks.  ``progress`` gets the fraction done when ``total_samples``
    is given, else the seconds encoded so far.  ``offset``: the absolute sample of the first block (a
    multiple of the hop; a segment's pre-roll, see :mod:`sparsecodec.jobs.encode`).
    """
    if sample_rate <= 0 or channels <= 0:
        raise UsageError(f"bad stream: {sample_rate} Hz, {channels} channels")
    enc = WindowEncoder(sample_rate, channels, settings, total_samples=total_samples)
    hop, win = enc.hop, enc.win
    if offset % hop:
        raise UsageError(f"stream offset {offset} is not a multiple of the hop ({hop})")
    buf = np.zeros((channels, win), np.float32)
    fill = 0  # samples of buf holding audio
    start = offset  # absolute sample of buf[:, 0]
    for block in blocks:
        b = np.asarray(block, dtype=np.float32)
        if b.ndim != 2 or b.shape[0] != channels:
            raise InputError(f"audio block of shape {b.shape}, expected ({channels}, k)")
        if not np.all(np.isfinite(b)):
            b = np.nan_to_num(b, nan=0.0, posinf=1.0, neginf=-1.0)
        pos = 0
        while pos < b.shape[1]:
            take = min(win - fill, b.shape[1] - pos)
            buf[:, fill : fill + take] = b[:, pos : pos + take]
            fill += take
            pos += take
            if fill == win:
                yield enc.process(buf, start, start + hop)
                buf[:, :hop] = buf[:, hop:]
                fill -= hop
                start += hop
                _report(progress, start, sample_rate, total_samples)
    end = start + fill
    while start < end:
        buf[:, fill:] = 0.0
        last = end - start <= hop
        yield enc.process(
            buf, start, end if last else start + hop, length=end - start if last else hop, valid=end - start
        )
        if last:
            break
        buf[:, :hop] = buf[:, hop:]
        fill -= hop
        start += hop
        _report(progress, start, sample_rate, total_samples)
    _report(progress, end, sample_rate, total_samples)


VOICE_MARGIN_DB = 0.1
"""How much closer (mean dB over bands and frames) voice knots must come to a hop than its events."""
DISTANCE_BANDS = 160
"""Bands of :func:`band_distance_db`: log-spaced from 100 Hz to 16 kHz (or Nyquist), narrow enough to
resolve a voice's harmonics up to about 3 kHz (40 bands could not tell speech from a melody)."""
DISTANCE_RANGE_DB = 60.0
"""Band powers more than this below the hop's strongest are floored (silence does not count)."""


def band_distance_db(ref: np.ndarray, test: np.ndarray, sample_rate: int, res: analysis.Resolution) -> float:
    """Mean absolute difference (dB) between the band powers of two power spectrograms ``[C, F, B]``:
    :data:`DISTANCE_BANDS` log-spaced bands, both floored :data:`DISTANCE_RANGE_DB` below ``ref``'s
    strongest band."""
    n_bins = ref.shape[-1]
    freqs = np.arange(n_bins) * (sample_rate / res.n_fft)
    edges = np.geomspace(100.0, min(16000.0, sample_rate / 2.0), DISTANCE_BANDS + 1)
    band = np.searchsorted(edges, freqs, side="right") - 1
    ok = (band >= 0) & (band < DISTANCE_BANDS)
    pool = np.zeros((n_bins, DISTANCE_BANDS), np.float32)
    pool[np.flatnonzero(ok), band[ok]] = 1.0
    r, t = ref.sum(axis=0) @ pool, test.sum(axis=0) @ pool  # [F, bands]
    floor = max(float(r.max(initial=0.0)), 1e-20) * 10.0 ** (-DISTANCE_RANGE_DB / 10.0)
    return float(np.mean(np.abs(10.0 * np.log10((r + floor) / (t + floor)))))


def _report(progress: Callable[[float], None] | None, done: int, rate: int, total: int | None) -> None:
    if progress is not None:
        progress(min(1.0, done / total) if total else done / rate)


class WindowEncoder:
    """Encodes one window at a time, keeping the committed events whose tails reach later windows."""

    def __init__(
        self,
        sample_rate: int,
        channels: int,
        settings: EncoderSettings,
        renderer: Renderer | None = None,
        initialiser: Initialiser | None = None,
        total_samples: int | None = None,
    ) -> None:
        self.sr = int(sample_rate)
        self.total_samples = total_samples
        """The input's length when known: voice knots leave its share of the file's header and index."""
        self.channels = int(channels)
        self.settings = settings
        self.hop = hop_samples(self.sr)
        self.win = 2 * self.hop
        self.rate = settings.event_rate()
        self.render = renderer or _default_renderer()
        self.init = initialiser or make_initialiser(settings.init, self.sr)
        self.res = analysis.resolutions(self.sr)[1]
        self.n_frames = self.res.n_frames(self.win)
        self.committed_v = np.zeros((0, events.N_DIMS))
        self.committed_t = np.zeros(0, np.int64)
        self.held = np.zeros((0, 3))
        """Transcribed notes that may still sound: ``float[M, 3]`` (onset sample, pitch, end sample)."""
        self._peak_db = 0.0
        self._note_prev: np.ndarray | None = None
        """The last :data:`NOTE_CONTEXT_S` of mono input before the current window (the transcriber's)."""
        self._voice_prev: np.ndarray | None = None
        """The last ``voice.CONTEXT_S`` of audio before the current window (the voice analysis's context)."""

    # -- one window ---------------------------------------------------------------------------------
    def process(
        self, x: np.ndarray, start: int, commit_end: int, length: int | None = None, valid: int | None = None
    ) -> EncodedChunk:
        """Encode window ``x`` (``float32[C, win]``, absolute ``start``); commit ``[start, commit_end)``.

        ``length`` is the chunk length (default ``commit_end - start``); ``valid`` the samples of ``x``
        that are input (default all; the rest is the zero padding after the end).
        """
        spec = analysis.stft(x, self.res)  # [C, F, B]
        self._peak_db = 20.0 * math.log10(max(float(np.abs(x).max()), 1e-9))
        mag2 = (np.abs(spec) ** 2).astype(np.float32)
        explained = self._tails_power(start)  # power of what events explain; grows as events are kept
        tails = explained.copy() if self.settings.voice else explained
        found = self._rounds(spec, mag2, explained, start, self._note_input(x))
        steps = self.settings.refine_steps or self.settings.local_steps
        if steps > 0 and found:
            refined = refine_window(
                np.stack([f.vector for f in found]),
                np.asarray([f.time for f in found]),
                x,
                start,
                min(self.win, commit_end - start + self.hop // 2),  # the commit range plus half a hop
                self._tails_audio(start),
                self.sr,
                steps,
                lr=self.settings.lr,
                threads=self.settings.threads,
                device=self.settings.device,
            )
            for f, v in zip(found, refined, strict=True):
                f.vector = v
        hop_budget = max(1, math.ceil(self.rate * (commit_end - start) / self.sr))
        vec, tim = self._select(found, start, commit_end, hop_budget)
        if self.settings.fill and hop_budget > len(tim):
            fv, ft = fill_events(
                mag2,
                explained,
                start,
                commit_end,
                hop_budget - len(tim),
                sample_rate=self.sr,
                res=self.res,
                n_frames=self.n_frames,
                render=self.render,
            )
            if len(ft):
                vec, tim = np.concatenate([vec, fv]), np.concatenate([tim, ft])
                order = np.argsort(tim, kind="stable")
                vec, tim = vec[order], tim[order]
        kept_v, kept_t = vec, tim  # the events whose tails sound into the next windows
        if self.settings.voice:
            knots = self._voice_hop(x, start, commit_end, mag2, tails, vec, tim, valid or self.win)
            if knots is not None:  # the hop is a voice: its events are dropped, their tails never sound
                kept_v, kept_t = np.zeros((0, events.N_DIMS)), np.zeros(0, np.int64)
                vec, tim = knots
        self._commit(kept_v, kept_t, start + self.hop)
        return EncodedChunk(
            start=start,
            length=int(length if length is not None else commit_end - start),
            vectors=vec,
            times=tim,
            side={},
        )

    def _voice_hop(
        self,
        x: np.ndarray,
        start: int,
        commit_end: int,
        mag2: np.ndarray,
        tails: np.ndarray,
        vec: np.ndarray,
        tim: np.ndarray,
        valid: int,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The hop's voice knots when they explain its spectrum better than its events do, else None.

        A hop that is :func:`voice.speech_like` gets voice knots costing what its events cost; both are
        rendered over the window (the events with the tails of earlier ones) and compared with the input
        by :func:`band_distance_db` over the frames of ``[start, commit_end)``.  When the knots win by
        :data:`VOICE_MARGIN_DB`, the hop is coded as knots at the full bit budget."""
        from sparsecodec.encoder import voice
        from sparsecodec.format import container, quantize

        ctx = min(round(voice.CONTEXT_S * self.sr), self.hop)
        prev = (
            self._voice_prev if self._voice_prev is not None else np.zeros((self.channels, ctx), np.float32)
        )
        self._voice_prev = np.array(x[:, self.hop - ctx : self.hop], np.float32)
        region = np.concatenate([prev, x[:, : min(self.win, valid)]], axis=1)
        hop = voice.analyse_hop(region, self.sr, start - ctx, start, commit_end)
        if hop is None:
            return None
        table = quantize.TABLES["layout2"]
        codes = quantize.quantize(vec, table)
        events_bits = 8 * container.chunk_file_bytes(tim, codes, start, commit_end - start, table)
        kv, kt = voice.hop_knots(hop, events_bits)
        frames = slice(0, min(self.n_frames, -(-(commit_end - start) // self.res.hop)))
        d_voice = band_distance_db(
            mag2[:, frames], self._voice_power(kv, kt, start)[:, frames], self.sr, self.res
        )
        p_events = tails + (self._events_power(vec, tim, start) if len(tim) else 0.0)
        d_events = band_distance_db(mag2[:, frames], p_events[:, frames], self.sr, self.res)
        if not d_voice < d_events - VOICE_MARGIN_DB:
            return None
        budget = voice.voice_budget(self.settings.kbps, commit_end - start, self.sr, self.total_samples)
        return voice.hop_knots(hop, budget)

    def _voice_power(self, kv: np.ndarray, kt: np.ndarray, start: int) -> np.ndarray:
        """Power spectrogram ``float32[C, F, B]`` of voice knots over this window."""
        from sparsecodec.synth import voice as synth_voice

        audio = synth_voice.render_span(
            synth_voice.from_vectors(kv, kt), self.sr, start, start + self.win, self.channels
        )
        return (np.abs(analysis.stft(audio, self.res)) ** 2).astype(np.float32)

    def _note_input(self, x: np.ndarray) -> np.ndarray:
        """The transcriber's input for window ``x`` (``float32[C, win]``): mono ``float32[ctx + win]``, the
        last :data:`NOTE_CONTEXT_S` before the window (silence before the stream's first) and the window;
        remembers the context for the next window."""
        ctx = min(round(NOTE_CONTEXT_S * self.sr), self.hop)
        mono = x.mean(axis=0).astype(np.float32)
        prev = self._note_prev if self._note_prev is not None else np.zeros(ctx, np.float32)
        self._note_prev = np.array(mono[self.hop - ctx : self.hop], np.float32)
        return np.concatenate([prev, mono])

    def _rounds(
        self, spec: np.ndarray, mag2: np.ndarray, explained: np.ndarray, start: int, note_input: np.ndarray
    ) -> list[Found]:
        """The analysis-by-synthesis rounds of the window at ``start``: the events kept, in order.

        ``spec``/``mag2``: the input's STFT and power ``[C, F, B]``; ``explained`` (same shape) is updated in
        place with each kept event's power.  ``note_input``: the transcriber's input (:meth:`_note_input`).
        """
        sr = self.sr
        budget = max(1, math.ceil(self.rate * self.win / sr))
        found: list[Found] = []
        cues: analysis.Cues | None = None
        for i in range(max(1, self.settings.rounds)):
            if len(found) >= budget:
                break
            mono = self._residual_audio(spec, mag2, explained).mean(axis=0)
            if i == 0:  # the initialiser's cues (first residual) and notes (input): once per window
                cues = self.init.cues(mono, sr)
                rel = self._window_notes(note_input)
                if rel is not None:
                    self._hold(rel, start)
                    notes = self._new_notes(rel, start)
                    vecs, times = self._note_proposals(mono, notes, start)
                    self._take(vecs, times, start, mag2, explained, found, NOTE_MIN_EXPLAINED, notes=True)
            vecs, times, _scores = self._propose(mono, budget - len(found), found, start, cues)
            new = self._take(vecs, times, start, mag2, explained, found, MIN_EXPLAINED)
            if not new:
                break
            new_t = np.asarray([f.time for f in new], np.int64)
            if cues is not None:  # hints that found nothing are not examined again
                cues = cues.keep_hints((new_t - start) / sr, HINT_KEEP_S)
        return found

    def _take(
        self,
        vecs: np.ndarray,
        times: np.ndarray,
        start: int,
        mag2: np.ndarray,
        explained: np.ndarray,
        found: list[Found],
        min_explained: float,
        notes: bool = False,
    ) -> list[Found]:
        """Fit and subtract each proposal (times in s from ``start``) that is in the window and new; append
        the kept ones to ``found`` and return them.

        The kept events' exact (full-support) power then replaces, in ``explained``, the calibration
        renders' (which covered only CALIBRATION_SPAN_S of each event).
        """
        explained_before = explained.copy()
        new: list[Found] = []
        for v, t in zip(vecs, times, strict=False):
            ti = start + round(float(t) * self.sr)
            if not start <= ti < start + self.win or self._duplicate(v, ti, found, mag2, start, notes):
                continue
            v = np.asarray(v, np.float64)
            need = min_explained
            if self._unheard(v, ti):
                need = max(need, UNHEARD_MIN_EXPLAINED)
            kept = self._fit_and_subtract(v, ti, start, mag2, explained, need)
            if kept is not None:
                found.append(Found(kept[0], ti, kept[1]))
                new.append(found[-1])
        if new:
            new_t = np.asarray([f.time for f in new], np.int64)
            explained[...] = explained_before + self._events_power(
                np.stack([f.vector for f in new]), new_t, start
            )
        return new

    def _window_notes(self, note_input: np.ndarray) -> np.ndarray | None:
        """The transcriber's notes (:meth:`Initialiser.notes`) in the window, s from its start: those that
        start in the context before it are dropped, those within :data:`NOTE_MATCH_S` before it start at 0
        (the previous window may have seen them just after its end)."""
        ctx = len(note_input) - self.win
        rel = self.init.notes(note_input, self.sr)
        if rel is None:
            return None
        rel = rel.copy()
        rel[:, [0, 2, 3]] -= ctx / self.sr
        rel = rel[rel[:, 0] >= -NOTE_MATCH_S]
        rel[:, 0] = np.maximum(rel[:, 0], 0.0)
        return rel

    def _hold(self, rel: np.ndarray, start: int) -> None:
        """Remember the window's transcribed notes ``rel`` (``float[K, 4]``: onset s from ``start``, pitch,
        end of sound s, note-off s) as :attr:`held` (onset, pitch, end of sound); forget those that ended
        before ``start``."""
        new = np.stack([start + rel[:, 0] * self.sr, rel[:, 1], start + rel[:, 2] * self.sr], axis=1)
        held = np.concatenate([self.held, new.reshape(-1, 3)])
        self.held = held[held[:, 2] > start]

    def _held(self, pitch: float, ti: int) -> bool:
        """True when a transcribed note at ``pitch`` sounds at ``ti`` (sample) and none starts near it: a
        pitched proposal there continues that note (bowing, vibrato) rather than starting one."""
        same = np.abs(self.held[:, 1] - pitch) < 0.5
        if not same.any():
            return False
        on, end = self.held[same, 0], self.held[same, 2]
        if (np.abs(on - ti) <= NOTE_MATCH_S * self.sr).any():
            return False
        return bool(((on - NOTE_LEAD_S * self.sr < ti) & (ti < end)).any())

    def _unheard(self, v: np.ndarray, ti: int) -> bool:
        """True when ``v`` is pitched and transcribed notes sound at ``ti``, none of them at its pitch.

        Where the transcriber hears no note at all (speech, noise, a gap) a pitched proposal is judged as
        before the note round: the network was trained on notes, and its silence there says nothing.
        """
        if self.held.shape[0] == 0 or v[_C["noise_mix"]] >= events.PITCHED_NOISE_MIX:
            return False
        near = (self.held[:, 0] - NOTE_MATCH_S * self.sr <= ti) & (ti < self.held[:, 2])
        if not near.any():
            return False
        same = np.abs(self.held[:, 1] - float(v[_C["pitch"]])) < 0.5
        return not bool((same & near).any())

    def _new_notes(self, rel: np.ndarray, start: int) -> np.ndarray:
        """Transcribed notes (:meth:`Initialiser.notes`, s from ``start``) → ``float[K, 3]`` (absolute
        sample, pitch, absolute note-off sample), without
        those that started before the window or that a committed event already plays."""
        t = start + np.rint(np.asarray(rel[:, 0]) * self.sr)
        keep = t >= start
        if len(self.committed_t):
            cv = self.committed_v
            pitched = cv[:, _C["noise_mix"]] < events.PITCHED_NOISE_MIX
            ct, cp = self.committed_t[pitched], cv[pitched, _C["pitch"]]
            if len(ct):
                dup = (np.abs(t[:, None] - ct[None, :]) <= NOTE_MATCH_S * self.sr) & (
                    np.abs(rel[:, 1][:, None] - cp[None, :]) <= 0.5
                )
                keep &= ~dup.any(axis=1)
        end = start + np.rint(np.asarray(rel[:, 3]) * self.sr)
        return np.stack([t[keep], rel[keep, 1], end[keep]], axis=1) if keep.any() else np.zeros((0, 3))

    def _note_proposals(
        self, mono: np.ndarray, notes: np.ndarray, start: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """One event vector per note (:meth:`Initialiser.propose_notes`): ``(vectors, times)``, times in
        seconds from ``start``."""
        if len(notes) == 0:
            return np.zeros((0, events.N_DIMS)), np.zeros(0)
        pad = self.init.lead_in if start == 0 else 0
        if pad:
            mono = np.concatenate([np.zeros(pad, np.float32), mono])
        rel = np.stack(
            [(notes[:, 0] - start + pad) / self.sr, notes[:, 1], (notes[:, 2] - start + pad) / self.sr], 1
        )
        vecs, times, _ = self.init.propose_notes(mono, self.sr, rel)
        return vecs, np.maximum(times - pad / self.sr, 0.0)

    def _select(
        self, found: list[Found], start: int, commit_end: int, hop_budget: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The events to commit: those starting in ``[start, commit_end)`` within
        :attr:`EncoderSettings.floor_db` of the window's strongest, the strongest first, at most
        ``hop_budget``; ``(float64[N, 32], int64[N])`` in time order (ties: stronger first)."""
        best = max((f.power for f in found), default=0.0)
        floor = best * 10.0 ** (self.settings.floor_db / 10.0)
        keep = [f for f in found if start <= f.time < commit_end and f.power >= floor]
        keep = sorted(keep, key=lambda f: -f.power)[:hop_budget]
        keep = sorted(keep, key=lambda f: (f.time, -f.power))
        vec = np.stack([f.vector for f in keep]) if keep else np.zeros((0, events.N_DIMS))
        return vec, np.asarray([f.time for f in keep], np.int64)

    def _propose(
        self,
        mono: np.ndarray,
        k: int,
        found: list[Found],
        start: int,
        cues: analysis.Cues | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ask the initialiser for up to ``k`` events, excluding the pitched events already ``found``.

        The stream's first window gets the initialiser's :attr:`~Initialiser.lead_in` of silence in front,
        so sound that is already there at sample 0 shows as an onset (spectral flux needs a frame before it).
        """
        pad = self.init.lead_in if start == 0 else 0
        ex = [((f.time - start + pad) / self.sr, float(f.vector[_C["pitch"]])) for f in found if f.pitched]
        exclude = np.asarray(ex, np.float64).reshape(-1, 2)
        if pad:
            mono = np.concatenate([np.zeros(pad, np.float32), mono])
        if cues is not None and pad:
            cues = cues.shifted(pad / self.sr)
        vecs, times, scores = self.init.propose(mono, self.sr, k, exclude=exclude, cues=cues)
        return vecs, np.maximum(times - pad / self.sr, 0.0), scores

    def _restruck(self, pitch: float, ti: int, start: int, mag2: np.ndarray) -> bool:
        """True when the input's power at the harmonics of ``pitch`` rises by :data:`RESTRIKE_DB` around
        ``ti`` (a note struck again), rather than sustaining."""
        f0 = float(events.pitch_to_hz(pitch))
        bin_hz = self.sr / self.res.n_fft
        k = np.arange(1, max(2, int(min(8000.0, 0.45 * self.sr) / f0)) + 1)
        c = np.rint(k * f0 / bin_hz).astype(np.int64)
        cols = np.clip(np.concatenate([c - 1, c, c + 1]), 0, mag2.shape[-1] - 1)
        hop_s = self.res.hop / self.sr
        t = (ti - start) / self.sr

        def frames(a: float, b: float) -> slice:
            lo = max(0, math.ceil((t + a) / hop_s))
            return slice(lo, max(lo + 1, math.ceil((t + b) / hop_s)))

        env = mag2[:, :, cols].sum(axis=(0, 2))
        before = env[frames(-0.12, -0.05)]
        after = env[frames(0.03, 0.15)]
        if before.size == 0 or after.size == 0:
            return True
        return float(after.max()) > float(before.mean()) * 10.0 ** (RESTRIKE_DB / 10.0)

    def _duplicate(
        self,
        v: np.ndarray,
        ti: int,
        found: list[Found],
        mag2: np.ndarray | None = None,
        start: int = 0,
        notes: bool = False,
    ) -> bool:
        """True when ``v`` repeats a found event: same pitch within −50…+200 ms of its onset, or later while
        that event is held unless the input shows the note struck again (pitched), or a noise band centred
        within an octave within ±50 ms (unpitched).  ``notes``: ``v`` is a transcribed note's event, which
        repeats a found event at its pitch only within :data:`NOTE_MATCH_S` (the transcriber tells a
        re-strike from a held note)."""
        pitched = v[_C["noise_mix"]] < events.PITCHED_NOISE_MIX
        if pitched and self._held(float(v[_C["pitch"]]), ti):
            return True
        for f in found:
            dt = (ti - f.time) / self.sr
            if pitched != f.pitched:
                continue
            if pitched and abs(f.vector[_C["pitch"]] - v[_C["pitch"]]) < 0.5:
                if notes:
                    if abs(dt) <= NOTE_MATCH_S:
                        return True
                    continue
                held = float(f.vector[_C["attack"]] + f.vector[_C["duration"]])
                if -0.05 < dt < 0.2:
                    return True
                if 0.2 <= dt < min(held, DUPLICATE_MAX_S) and (
                    mag2 is None or not self._restruck(float(v[_C["pitch"]]), ti, start, mag2)
                ):
                    return True
            if (
                not pitched
                and abs(dt) < 0.05
                and abs(math.log2(f.vector[_C["noise_centre"]] / v[_C["noise_centre"]])) < 1.0
            ):
                return True
        return False

    def _commit(self, vec: np.ndarray, tim: np.ndarray, next_start: int) -> None:
        """Remember committed events; forget those whose support ends before the next window."""
        v = np.concatenate([self.committed_v, vec])
        t = np.concatenate([self.committed_t, tim])
        ends = t + np.ceil(events.support_s(v) * self.sr).astype(np.int64) if len(v) else t
        keep = ends > next_start
        self.committed_v, self.committed_t = v[keep], t[keep]

    def _tails(self, start: int) -> np.ndarray | None:
        """Committed events rendered over the window at ``start``: ``float32[C, win]`` (``None``: none)."""
        if len(self.committed_v) == 0:
            return None
        audio = self.render(
            self.committed_v,
            self.committed_t / self.sr,
            self.win,
            self.sr,
            channels=self.channels,
            start_s=start / self.sr,
        )
        return np.asarray(audio, np.float32)

    def _tails_audio(self, start: int) -> np.ndarray | None:
        """Mono mix ``float32[win]`` of the committed events rendered over this window (``None``: none)."""
        tails = self._tails(start)
        return None if tails is None else tails.mean(axis=0)

    def _tails_power(self, start: int) -> np.ndarray:
        """Power spectrogram ``float32[C, F, B]`` of the committed events rendered over this window."""
        power = np.zeros((self.channels, self.n_frames, self.res.n_bins()), np.float32)
        tails = self._tails(start)
        if tails is not None:
            power += np.abs(analysis.stft(tails, self.res)) ** 2
        return power

    def _events_power(self, vec: np.ndarray, tim: np.ndarray, start: int) -> np.ndarray:
        """Power spectrogram ``float32[C, F, B]`` of ``vec`` at absolute samples ``tim``, over this window."""
        out = np.zeros((self.channels, self.n_frames, self.res.n_bins()), np.float32)
        off = tim - start
        a = int(off.min())
        b = int(min(self.win, (off + np.ceil(events.support_s(vec) * self.sr)).max() + 1))
        audio = self.render(
            vec, tim / self.sr, b - a, self.sr, channels=self.channels, start_s=(start + a) / self.sr
        )
        m_lo, seg = analysis.stft_segment(np.asarray(audio, np.float32), a, self.n_frames, self.res)
        out[:, m_lo : m_lo + seg.shape[-2]] = np.abs(seg) ** 2
        return out

    def _residual_audio(self, spec: np.ndarray, mag2: np.ndarray, explained: np.ndarray) -> np.ndarray:
        """Residual audio ``float32[C, win]``: the input's STFT with its power reduced by ``explained``."""
        gain = np.sqrt(np.maximum(1.0 - explained / np.maximum(mag2, 1e-20), 0.0))
        return analysis.istft(spec * gain, self.res, self.win)

    def _pan_gains(self, pan: float) -> np.ndarray:
        """Equal-power channel gains ``[C]`` for ``pan`` (mono: ``[1]``)."""
        if self.channels != 2:
            return np.ones(self.channels)
        theta = (pan + 1.0) * math.pi / 4.0
        return np.array([math.cos(theta), math.sin(theta)])

    def _fit_and_subtract(
        self,
        v: np.ndarray,
        ti: int,
        start: int,
        mag2: np.ndarray,
        explained: np.ndarray,
        min_explained: float = MIN_EXPLAINED,
    ) -> tuple[np.ndarray, float] | None:
        """Render ``v`` at ``ti``, set its level and pan from the residual, add its power to ``explained``.

        Returns ``(vector, residual power it explains)`` or ``None`` when the event explains too little.
        """
        sr = self.sr
        v = events.clip(v)
        offset = ti - start
        support = min(float(events.support_s(v[None])[0]), CALIBRATION_SPAN_S)
        n = int(min(math.ceil(support * sr) + 1, self.win - offset))
        if n <= 0:
            return None
        mono = self.render(v[None], np.array([ti / sr]), n, sr, channels=1, start_s=ti / sr)
        m_lo, e_spec = analysis.stft_segment(np.asarray(mono, np.float32)[0], offset, self.n_frames, self.res)
        m_hi = m_lo + e_spec.shape[0]
        e2 = np.abs(e_spec) ** 2  # [M, B]
        if e_spec.shape[0] == 0 or float(e2.sum()) <= 0:
            return None
        r2 = np.maximum(mag2[:, m_lo:m_hi] - explained[:, m_lo:m_hi], 0.0)  # [C, M, B]
        if self.channels == 2:
            w = e2 / e2.sum()
            el, er = float((w * r2[0]).sum()), float((w * r2[1]).sum())
            pan = (4.0 / math.pi) * math.atan2(math.sqrt(er), math.sqrt(el)) - 1.0 if el + er > 0 else 0.0
            v[_C["pan"]] = float(np.clip(pan, -1.0, 1.0))
        gains = self._pan_gains(float(v[_C["pan"]]))
        e_mag, r_mag = np.sqrt(e2), np.sqrt(r2)
        num = float(sum(gains[c] * (e_mag * r_mag[c]).sum() for c in range(self.channels)))
        den = float(sum(gains[c] ** 2 * e2.sum() for c in range(self.channels)))
        g = num / den if den > 0 else 0.0
        if g <= 1e-4 or float(v[_C["level"]]) + 20.0 * math.log10(g) > self._peak_db + 6.0:
            return None
        new_level = float(v[_C["level"]]) + 20.0 * math.log10(g)
        v[_C["level"]] = min(max(new_level, events.LO[0]), events.HI[0])
        g *= 10.0 ** ((v[_C["level"]] - new_level) / 20.0)  # the clipped level's actual gain
        contrib = (g * g) * (gains[:, None, None] ** 2) * e2[None]
        power = float(np.minimum(r2, contrib).sum())
        if power < min_explained * float(contrib.sum()) or power <= 0.0:
            return None
        explained[:, m_lo:m_hi] += contrib.astype(np.float32)
        return v, power
