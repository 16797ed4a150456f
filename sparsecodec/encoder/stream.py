"""The encoder: streaming analysis-by-synthesis from audio blocks to events (see docs/encoder.md).

For each window (≈5.94 s, hop = half a window):

1. the window's STFT ``X`` (per channel) and the power ``P`` of what committed events already explain (the
   rendered tails of events committed by earlier windows);
2. rounds: the *initialiser* (:class:`~sparsecodec.encoder.analysis.Analyzer`, or the trained network)
   proposes at most one event per onset from the residual; each proposal is rendered with the real
   renderer, its ``level`` rescaled so its magnitude matches the residual, its ``pan`` set from the L/R
   energy of its bins, and it is kept only if it explains enough of the residual; kept events are
   "subtracted" (their power is added to ``P``).  Later rounds find the notes hidden under earlier ones
   (polyphony) and correct errors;
3. optional joint refinement of the window's events with the differentiable generator
   (:func:`refine_events`): ``refine_steps`` (``--refine``), else ``local_steps``;
4. events starting in the window's first half are committed and yielded as one :class:`EncodedChunk`.

The residual is ``sqrt(max(|X|² − P, 0)) · e^{i∠X}`` ("power subtraction"): the rendered events' seeded
phases never match the input's, so subtracting waveforms would *add* energy wherever a partial is off by a
fraction of a period; subtracting power is what audio-domain subtraction does when phases match, and never
adds energy when they do not.  Everything is deterministic: no RNG is used at all.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sparsecodec.encoder import analysis
from sparsecodec.errors import InputError, UsageError
from sparsecodec.format import events

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

FILL_BANDS_PER_SQRT = 0.9
"""Texture fill: bands ``K ≈ 0.9·sqrt(n)`` for ``n`` spare events of a hop (the rest are time segments)."""
FILL_MAX_BANDS = 16
FILL_MIN_HZ = 40.0
FILL_MAX_HZ = 16000.0
FILL_FINE_PER_BAND = 3
"""Fine log bands per fill band in the gain fit."""
FILL_WIDTH = 1.4
"""Fill noise width (2σ) in units of the band spacing (flat power when the bands are summed)."""
FILL_DECAY = 6.0
"""Fill noise T60 in segment lengths."""
FILL_POOL = 2
"""Analysis frames pooled per row of the gain fit."""
FILL_REL_FLOOR = 0.1
"""Floor (× mean residual) added to each row's residual in the fit's weights."""
FILL_GAIN = 2.0
"""Scale on the fitted fill gains (the relative-error fit under-fills: +3 dB measured best on music)."""
FILL_SCALES = (0.0, 0.25, 0.5, 1.0, 2.0)
"""Scales of a fill tile's fitted gain that :func:`_select_fill` chooses from."""
FILL_LOG_FLOOR = 1e-14
"""Power floor (amplitude-scaled, ≈ −140 dB) inside the log of the tile selection's distance."""

_REF_HOP_S = 2.0**17 / 44100.0
_C = events.INDEX


def hop_samples(sample_rate: int) -> int:
    """Chunk hop in samples at ``sample_rate`` (2^17 at 44.1 kHz, ≈2.97 s at any rate)."""
    return round(_REF_HOP_S * sample_rate)


def window_samples(sample_rate: int) -> int:
    """Analysis window in samples (two hops)."""
    return 2 * hop_samples(sample_rate)


def resolve_init(init: str | None = None) -> str:
    """The initialiser ``init`` names: ``None`` is :data:`DEFAULT_INIT`, or ``"analysis"`` when no proposal
    weights are shipped."""
    if init is not None:
        return init
    return DEFAULT_INIT if _weights_path() is not None else "analysis"


def weights_hash(init: str | None = None) -> str:
    """sha256 (hex) of the shipped proposal weights file, or ``"none"`` when there is none or the
    initialiser ``init`` (``None``: :data:`DEFAULT_INIT`) does not use it (provenance for the header)."""
    path = _weights_path()
    if path is None or resolve_init(init) == "analysis":
        return "none"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def encoder_id(init: str | None = None) -> str:
    """The encoder id recorded in the header: :data:`ENCODER_ID`, or with ``+hybrid``/``+network`` when
    the proposal network takes part."""
    mode = resolve_init(init)
    return ENCODER_ID if mode == "analysis" else f"{ENCODER_ID}+{mode}"


def _weights_path() -> Path | None:
    folder = Path(__file__).with_name("weights")
    files = sorted(folder.glob("proposal*.safetensors")) if folder.is_dir() else []
    return files[0] if files else None


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


class Initialiser(Protocol):
    """Anything that proposes events from a mono residual (the analyser, the proposal network)."""

    def propose(
        self, residual: np.ndarray, sample_rate: int, max_events: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


Renderer = Callable[..., np.ndarray]


DEFAULT_INIT = "hybrid"
"""What ``init=None`` means (when the proposal weights are shipped): the analysis guided by the network.
In the benchmark (docs/benchmark.md) it beats the plain analysis on music, notes and speech at the same
budget and steps."""


def make_initialiser(settings: EncoderSettings, sample_rate: int) -> tuple[str, Initialiser]:
    """``(name, initialiser)`` for ``settings.init`` (``None``: :data:`DEFAULT_INIT`)."""
    if settings.init not in (None, "network", "analysis", "hybrid"):
        raise UsageError(f"unknown encoder init {settings.init!r}: use 'hybrid', 'network' or 'analysis'")
    mode = resolve_init(settings.init)
    if mode == "analysis":
        return "analysis", analysis.Analyzer(sample_rate)
    net = _load_network()
    if net is None:
        raise UsageError(f"init={mode!r} but no proposal network is available")
    if mode == "hybrid":
        return "hybrid", HybridInit(analysis.Analyzer(sample_rate), net)
    return "network", net


HINT_MIN_SCORE = 0.2
"""Network onsets at least this probable are examined by the analysis as onsets (hints)."""
HINT_KEEP_S = 0.05
"""A hint stays for the next round only if an event was found within this many seconds of it."""


@dataclass
class HybridInit:
    """The analysis, guided by the proposal network run once per window on its first residual
    (:class:`analysis.Cues`): the network's onsets are examined as well as the flux peaks (it finds slow
    attacks that spectral flux misses) and its pitch map weights the analysis' f0 salience at each onset
    (fewer octave errors); the analysis fits every vector."""

    analyzer: analysis.Analyzer
    net: Any

    def cues(self, mono: np.ndarray, sample_rate: int) -> analysis.Cues:
        """The network's maps of a window's mono residual ``float[n]`` (clock: s from ``mono[0]``)."""
        from sparsecodec.encoder import proposal

        maps = self.net.maps(proposal.features(np.asarray(mono, np.float32), sample_rate))
        return analysis.Cues(
            onset=np.asarray(maps.onset, np.float64),
            pitch=np.asarray(maps.pitch, np.float64),
            pitch_grid=proposal.PITCH_GRID,
            frame_s=proposal.HOP / proposal.ANALYSIS_RATE,
            hint_min=HINT_MIN_SCORE,
        )

    def propose(
        self, residual: np.ndarray, sample_rate: int, max_events: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The analysis' proposals for ``residual`` with the network's cues."""
        cues = self.cues(residual, sample_rate)
        return self.analyzer.propose(residual, sample_rate, max_events, cues=cues)


def _load_network() -> Initialiser | None:
    try:
        from sparsecodec.encoder import proposal
    except ImportError:
        return None
    loader = getattr(proposal, "load_default", None)
    return loader() if loader is not None else None


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
) -> Iterator[EncodedChunk]:
    """Encode ``float32[channels, k]`` blocks (any ``k``) into one :class:`EncodedChunk` per hop.

    Memory stays flat: one window of audio plus the events whose tails reach into it.  The result does not
    depend on how the input is cut into blocks.  ``progress`` gets the fraction done when ``total_samples``
    is given, else the seconds encoded so far.
    """
    if sample_rate <= 0 or channels <= 0:
        raise UsageError(f"bad stream: {sample_rate} Hz, {channels} channels")
    enc = WindowEncoder(sample_rate, channels, settings)
    hop, win = enc.hop, enc.win
    buf = np.zeros((channels, win), np.float32)
    fill = 0  # samples of buf holding audio
    start = 0  # absolute sample of buf[:, 0]
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
        yield enc.process(buf, start, end if last else start + hop, length=end - start if last else hop)
        if last:
            break
        buf[:, :hop] = buf[:, hop:]
        fill -= hop
        start += hop
        _report(progress, start, sample_rate, total_samples)
    _report(progress, end, sample_rate, total_samples)


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
    ) -> None:
        self.sr = int(sample_rate)
        self.channels = int(channels)
        self.settings = settings
        self.hop = hop_samples(self.sr)
        self.win = 2 * self.hop
        self.rate = settings.event_rate()
        self.render = renderer or _default_renderer()
        if initialiser is None:
            self.init_name, self.init = make_initialiser(settings, self.sr)
        else:
            self.init_name, self.init = "custom", initialiser
        self.res = analysis.resolutions(self.sr)[1]
        self.n_frames = self.res.n_frames(self.win)
        self.committed_v = np.zeros((0, events.N_DIMS))
        self.committed_t = np.zeros(0, np.int64)
        self._peak_db = 0.0

    # -- one window ---------------------------------------------------------------------------------
    def process(self, x: np.ndarray, start: int, commit_end: int, length: int | None = None) -> EncodedChunk:
        """Encode window ``x`` (``float32[C, win]``, absolute ``start``); commit ``[start, commit_end)``.

        ``length`` is the chunk length (default ``commit_end - start``).
        """
        sr, res = self.sr, self.res
        spec = analysis.stft(x, res)  # [C, F, B]
        self._peak_db = 20.0 * math.log10(max(float(np.abs(x).max()), 1e-9))
        mag2 = (np.abs(spec) ** 2).astype(np.float32)
        model = self._tails_power(start)
        budget = max(1, math.ceil(self.rate * self.win / sr))
        found_v: list[np.ndarray] = []
        found_t: list[int] = []
        found_e: list[float] = []
        best = 0.0
        cues: analysis.Cues | None = None
        for _ in range(max(1, self.settings.rounds)):
            if len(found_v) >= budget:
                break
            resid = self._residual_audio(spec, mag2, model)
            mono = resid.mean(axis=0)
            if cues is None and isinstance(self.init, HybridInit):  # once per window, on the first residual
                cues = self.init.cues(mono, sr)
            k = budget - len(found_v)
            vecs, times, _scores = self._propose(mono, k, found_v, found_t, start, cues)
            model_before = model.copy()
            n_new = 0
            for v, t in zip(vecs, times, strict=False):
                ti = start + round(float(t) * sr)
                if not start <= ti < start + self.win or self._duplicate(v, ti, found_v, found_t):
                    continue
                kept = self._fit_and_subtract(np.asarray(v, np.float64), ti, start, mag2, model)
                if kept is None:
                    continue
                v_fit, explained = kept
                best = max(best, explained)
                found_v.append(v_fit)
                found_t.append(ti)
                found_e.append(explained)
                n_new += 1
            if n_new == 0:
                break
            if cues is not None:  # hints that found nothing are not examined again
                cues = cues.keep_hints((np.asarray(found_t[-n_new:]) - start) / sr, HINT_KEEP_S)
            # the round's events: local refinement, then their exact (full-support) power replaces the
            # calibration renders' (which covered only CALIBRATION_SPAN_S of each event)
            new_v, new_t = np.stack(found_v[-n_new:]), np.asarray(found_t[-n_new:], np.int64)
            model = model_before
            model += self._events_power(new_v, new_t, start)
        steps = self.settings.refine_steps or self.settings.local_steps
        if steps > 0 and found_v:
            found_v = list(self._refine(np.stack(found_v), np.asarray(found_t), start, x, commit_end, steps))
        # commit: events that start in [start, commit_end), strongest first within the hop budget
        floor = best * 10.0 ** (self.settings.floor_db / 10.0)
        hop_budget = max(1, math.ceil(self.rate * (commit_end - start) / sr))
        idx = [i for i in range(len(found_v)) if start <= found_t[i] < commit_end and found_e[i] >= floor]
        idx = sorted(idx, key=lambda i: -found_e[i])[:hop_budget]
        idx = sorted(idx, key=lambda i: (found_t[i], -found_e[i]))
        vec = np.stack([found_v[i] for i in idx]) if idx else np.zeros((0, events.N_DIMS))
        tim = np.asarray([found_t[i] for i in idx], np.int64)
        if self.settings.fill and hop_budget > len(idx):
            fv, ft = self._fill(mag2, model, start, commit_end, hop_budget - len(idx))
            if len(ft):
                vec, tim = np.concatenate([vec, fv]), np.concatenate([tim, ft])
                order = np.argsort(tim, kind="stable")
                vec, tim = vec[order], tim[order]
        self._commit(vec, tim, start + self.hop)
        return EncodedChunk(
            start=start,
            length=int(length if length is not None else commit_end - start),
            vectors=vec,
            times=tim,
            side={},
        )

    def _propose(
        self,
        mono: np.ndarray,
        k: int,
        found_v: list[np.ndarray],
        found_t: list[int],
        start: int,
        cues: analysis.Cues | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ask the initialiser for up to ``k`` events (the analyser also learns what was found).

        The stream's first window gets one analysis window of silence in front, so sound that is already
        there at sample 0 shows as an onset (spectral flux needs a frame before it).
        """
        analyzer = self.init.analyzer if isinstance(self.init, HybridInit) else self.init
        if isinstance(analyzer, analysis.Analyzer):
            pad = self.res.n_fft if start == 0 else 0
            ex = [
                ((t - start + pad) / self.sr, float(v[_C["pitch"]]))
                for v, t in zip(found_v, found_t, strict=True)
                if v[_C["noise_mix"]] < events.PITCHED_NOISE_MIX
            ]
            exclude = np.asarray(ex, np.float64).reshape(-1, 2)
            if pad:
                mono = np.concatenate([np.zeros(pad, np.float32), mono])
            if cues is not None and pad:
                cues = cues.shifted(pad / self.sr)
            vecs, times, scores = analyzer.propose(mono, self.sr, k, exclude=exclude, cues=cues)
            return vecs, np.maximum(times - pad / self.sr, 0.0), scores
        return self.init.propose(mono, self.sr, k)

    def _duplicate(self, v: np.ndarray, ti: int, found_v: list[np.ndarray], found_t: list[int]) -> bool:
        """True when ``v`` repeats a found event: same pitch within −50…+200 ms of its onset (pitched), or
        a noise band centred within an octave within ±50 ms (unpitched)."""
        pitched = v[_C["noise_mix"]] < events.PITCHED_NOISE_MIX
        for fv, ft in zip(found_v, found_t, strict=True):
            dt = (ti - ft) / self.sr
            if pitched != (fv[_C["noise_mix"]] < events.PITCHED_NOISE_MIX):
                continue
            if pitched and -0.05 < dt < 0.2 and abs(fv[_C["pitch"]] - v[_C["pitch"]]) < 0.5:
                return True
            if (
                not pitched
                and abs(dt) < 0.05
                and abs(math.log2(fv[_C["noise_centre"]] / v[_C["noise_centre"]])) < 1.0
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

    def _tails_power(self, start: int) -> np.ndarray:
        """Power spectrogram ``float32[C, F, B]`` of the committed events rendered over this window."""
        model = np.zeros((self.channels, self.n_frames, self.res.n_bins()), np.float32)
        tails = self._tails(start)
        if tails is not None:
            model += np.abs(analysis.stft(tails, self.res)) ** 2
        return model

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

    def _residual_audio(self, spec: np.ndarray, mag2: np.ndarray, model: np.ndarray) -> np.ndarray:
        """Residual audio ``float32[C, win]``: the input's STFT with its power reduced by ``model``."""
        gain = np.sqrt(np.maximum(1.0 - model / np.maximum(mag2, 1e-20), 0.0))
        return analysis.istft(spec * gain, self.res, self.win)

    def _pan_gains(self, pan: float) -> np.ndarray:
        """Equal-power channel gains ``[C]`` for ``pan`` (mono: ``[1]``)."""
        if self.channels != 2:
            return np.ones(self.channels)
        theta = (pan + 1.0) * math.pi / 4.0
        return np.array([math.cos(theta), math.sin(theta)])

    def _fit_and_subtract(
        self, v: np.ndarray, ti: int, start: int, mag2: np.ndarray, model: np.ndarray
    ) -> tuple[np.ndarray, float] | None:
        """Render ``v`` at ``ti``, set its level and pan from the residual, add its power to ``model``.

        Returns ``(vector, explained power)`` or ``None`` when the event explains too little.
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
        r2 = np.maximum(mag2[:, m_lo:m_hi] - model[:, m_lo:m_hi], 0.0)  # [C, M, B]
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
        explained = float(np.minimum(r2, contrib).sum())
        if explained < MIN_EXPLAINED * float(contrib.sum()) or explained <= 0.0:
            return None
        model[:, m_lo:m_hi] += contrib.astype(np.float32)
        return v, explained

    # -- texture fill -------------------------------------------------------------------------------
    def _fill(
        self, mag2: np.ndarray, model: np.ndarray, start: int, commit_end: int, n_max: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Noise events that fill what the onset events left: ``(float64[N, 32], int64[N])``, ``N ≤ n_max``.

        The commit range is tiled by ``K`` log-spaced bands × ``J`` segments (``K·J ≤ n_max``).  Each tile is
        one unpitched event (``noise_mix`` 1) rising over half a segment and decaying with a T60 of
        :data:`FILL_DECAY` segments; the band's unit-level event is rendered once, its power spectrogram
        shifted per segment, and all gains are fitted at once by non-negative least squares on the residual
        power (channels summed) in fine log bands, each row weighted by 1 / its residual (relative error,
        close to the benchmark's log-spectral distance).  Each tile's gain is then chosen by the log-spectral
        distance it leaves (:func:`_select_fill`).  Pan from the L/R residual under each tile.
        """
        from scipy.optimize import nnls

        sr, res = self.sr, self.res
        empty = (np.zeros((0, events.N_DIMS)), np.zeros(0, np.int64))
        span = commit_end - start
        n_k = int(np.clip(round(FILL_BANDS_PER_SQRT * math.sqrt(n_max)), 2, FILL_MAX_BANDS))
        n_j = n_max // n_k
        if n_j < 1 or span < res.hop:
            return empty
        seg_fr = max(1, round(span / n_j / res.hop))  # segment length in analysis frames
        seg_s = seg_fr * res.hop / sr
        seg_starts = np.arange(0, span, seg_fr * res.hop)[:n_j]
        f_hi = min(FILL_MAX_HZ, 0.45 * sr)
        edges = np.geomspace(FILL_MIN_HZ, f_hi, n_k + 1)
        octs = math.log2(f_hi / FILL_MIN_HZ) / n_k
        freqs = np.fft.rfftfreq(res.n_fft, 1.0 / sr)
        fine = np.geomspace(FILL_MIN_HZ, f_hi, FILL_FINE_PER_BAND * n_k + 1)
        q_of_bin = np.searchsorted(fine, freqs, side="right") - 1
        q_ok = (q_of_bin >= 0) & (q_of_bin < len(fine) - 1)
        n_q = len(fine) - 1
        pool = np.zeros((res.n_bins(), n_q))
        pool[np.nonzero(q_ok)[0], q_of_bin[q_ok]] = 1.0
        base = events.defaults(n_k)
        base[:, _C["noise_mix"]] = 1.0
        base[:, _C["level"]] = 0.0
        base[:, _C["noise_centre"]] = np.sqrt(edges[:-1] * edges[1:])
        base[:, _C["noise_width"]] = FILL_WIDTH * octs
        base[:, _C["noise_attack"]] = 0.5 * seg_s
        base[:, _C["noise_decay"]] = FILL_DECAY * seg_s
        base[:, _C["duration"]] = events.HI[_C["duration"]]
        base[:, _C["release"]] = 0.2
        base = events.clip(base)
        # observation frames: the commit range plus the tiles' tails, pooled by FILL_POOL frames
        m0 = 0
        n_obs = min(self.n_frames, (span + int(events.support_s(base[:1])[0] * sr)) // res.hop + 1)
        n_rows = -(-n_obs // FILL_POOL)
        r2 = np.maximum(mag2[:, m0:n_obs] - model[:, m0:n_obs], 0.0)  # [C, M, B]
        r_ch = r2 @ pool  # [C, M, Q]
        r_ch = _pool_frames(r_ch, FILL_POOL, n_rows)
        r = r_ch.sum(axis=0)  # [rows, Q]
        if float(r.sum()) <= 0.0:
            return empty
        cols = np.zeros((n_k * n_j, n_rows, n_q))
        tile_a = [int(s0) // res.hop for s0 in seg_starts]  # each segment's first frame
        unit_bins: list[tuple[int, np.ndarray]] = []  # per band: first bin, unit tile power [M, bins]
        bin_of = np.searchsorted(freqs, edges)
        for k in range(n_k):
            n = math.ceil(float(events.support_s(base[k : k + 1])[0]) * sr) + 1
            mono = self.render(base[k : k + 1], np.zeros(1), n, sr, channels=1, start_s=0.0)
            _, e_spec = analysis.stft_segment(np.asarray(mono, np.float32)[0], 0, n_obs, res)
            p_bins = np.abs(e_spec) ** 2  # [M, B]
            b0, b1 = bin_of[max(k - 1, 0)], bin_of[min(k + 2, n_k)]  # the band and its neighbours
            unit_bins.append((int(b0), p_bins[:, b0:b1].copy()))
            e2 = p_bins @ pool  # [M, Q], frames from 0
            for j, a in enumerate(tile_a):
                m = min(e2.shape[0], n_obs - a)
                if m <= 0:
                    continue
                full = np.zeros((n_obs, n_q))
                full[a : a + m] = e2[:m]
                cols[k * n_j + j] = _pool_frames(full[None], FILL_POOL, n_rows)[0]
        w = 1.0 / (r + FILL_REL_FLOOR * float(r.mean()) + 1e-20)
        a_mat = (cols * w[None]).reshape(len(cols), -1).T
        gains, _ = nnls(a_mat, (w * r).ravel(), maxiter=50 * len(cols))
        obs = (mag2[:, :n_obs], model[:, :n_obs])
        gains = _select_fill(gains * FILL_GAIN, unit_bins, tile_a, seg_fr, *obs, bin_of)
        vecs, times = [], []
        for k in range(n_k):
            for j, s0 in enumerate(seg_starts):
                g = float(gains[k * n_j + j])
                if g <= 0.0 or 10.0 * math.log10(g) < events.LO[_C["level"]] + 10.0:
                    continue
                v = base[k].copy()
                v[_C["level"]] = min(10.0 * math.log10(g), events.HI[_C["level"]])
                if self.channels == 2:
                    c = cols[k * n_j + j]
                    el, er = float((c * r_ch[0]).sum()), float((c * r_ch[1]).sum())
                    if el + er > 0:
                        v[_C["pan"]] = (4.0 / math.pi) * math.atan2(math.sqrt(er), math.sqrt(el)) - 1.0
                vecs.append(v)
                times.append(start + int(s0))
        if not vecs:
            return empty
        return events.clip(np.stack(vecs)), np.asarray(times, np.int64)

    # -- refinement ---------------------------------------------------------------------------------
    def _mono_offsets(self, vec: np.ndarray) -> np.ndarray:
        """Level offsets (dB) ``[N]`` that make a mono render equal each event's share of the channel mean.

        Equal-power pan sends ``cos θ · s`` and ``sin θ · s`` to L/R; their mean is ``s (cos θ + sin θ) / 2``.
        """
        if self.channels != 2:
            return np.zeros(len(vec))
        theta = (vec[:, _C["pan"]] + 1.0) * math.pi / 4.0
        return 20.0 * np.log10(np.maximum((np.cos(theta) + np.sin(theta)) / 2.0, 1e-6))

    def _fit(
        self,
        vec: np.ndarray,
        tim: np.ndarray,
        start: int,
        target: np.ndarray,
        fixed: np.ndarray | None,
        span: tuple[int, int],
        steps: int,
    ) -> np.ndarray:
        """Adam on ``vec`` (``float[N, 32]`` at absolute samples ``tim``) so that their mono render plus
        ``fixed`` matches ``target`` in magnitude (:func:`refine_events`) over window samples ``span``.

        ``target`` and ``fixed`` are mono ``float[win]`` in window coordinates.  Returns ``float64[N, 32]``.
        """
        a, b = max(0, span[0]), min(self.win, span[1])
        if steps <= 0 or len(vec) == 0 or b - a < loss_sizes(self.sr)[0]:
            return vec
        off = self._mono_offsets(vec)
        mono_v = vec.copy()
        mono_v[:, _C["level"]] += off
        out = refine_events(
            mono_v,
            (tim - start - a) / self.sr,
            target[a:b],
            self.sr,
            steps,
            fixed=None if fixed is None else fixed[a:b],
            lr=self.settings.lr,
            threads=self.settings.threads,
            device=self.settings.device,
        )
        out[:, _C["level"]] -= off
        return np.asarray(events.clip(out))

    def _refine(
        self, vec: np.ndarray, tim: np.ndarray, start: int, x: np.ndarray, commit_end: int, steps: int
    ) -> np.ndarray:
        """``steps`` of joint refinement of the window's events against the input.

        The committed events' tails are fixed context; the loss covers the commit range plus half a hop, and
        events starting after it are left as they are.  Returns ``float64[N, 32]``.
        """
        target = x.mean(axis=0)
        fixed = self._tails_audio(start)
        end = min(self.win, commit_end - start + self.hop // 2)
        keep = (tim - start) < end
        if not keep.any():
            return vec
        out = vec.copy()
        span = (int(tim[keep].min() - start) - loss_sizes(self.sr)[0], end)
        out[keep] = self._fit(vec[keep], tim[keep], start, target, fixed, span, steps)
        return out

    def _tails_audio(self, start: int) -> np.ndarray | None:
        """Mono mix ``float32[win]`` of the committed events rendered over this window (``None``: none)."""
        tails = self._tails(start)
        return None if tails is None else tails.mean(axis=0)


# ------------------------------------------------------------------------------------ joint refinement

FROZEN_DIMS = (
    "glide",
    "vibrato_rate",
    "vibrato_depth",
    "detune",
    "wet",
    "pan",
    "jitter",
    "pitch_drop",
    "reserved",
)
"""Dimensions refinement leaves alone: pitch modulations (their gradients go through detached phases or
seeded randomness), the room send (no per-chunk room yet), pan (set from the L/R energy; the loss is mono)."""

STEP_SCALE = np.ones(events.N_DIMS)
"""Per-dimension scale of the Adam step in the unit interval (0 = frozen): a unit step of pitch is 108
semitones and of level 96 dB, so those move in finer steps (≈0.05 semitone, ≈0.6 dB at lr 0.03)."""
STEP_SCALE[[_C[n] for n in FROZEN_DIMS]] = 0.0
STEP_SCALE[_C["pitch"]] = 0.015
STEP_SCALE[_C["level"]] = 0.2

LOSS_EPS = 1e-5
"""Magnitude floor (amplitude-scaled STFT) inside the log of the refinement loss (−100 dBFS)."""


def loss_sizes(sample_rate: int) -> tuple[int, ...]:
    """FFT sizes of the refinement loss: 2048/512/128 at 22.05 kHz, scaled with the rate (same seconds)."""
    scale = 2.0 ** round(math.log2(sample_rate / 22050.0))
    return tuple(max(32, int(n * scale)) for n in (2048, 512, 128))


def refine_events(
    vectors: np.ndarray,
    times_s: np.ndarray,
    target: np.ndarray,
    sample_rate: int,
    steps: int,
    fixed: np.ndarray | None = None,
    lr: float = 0.03,
    lr_end_ratio: float = 0.1,
    threads: int = 1,
    device: str = "cpu",
) -> np.ndarray:
    """Jointly fit ``vectors`` (``float[N, 32]``, physical, onsets ``times_s`` [N] in seconds relative to
    ``target[0]``) so that their mono render (+ ``fixed``, ``float[T]``) matches ``target`` (``float[T]``).

    Loss: mean over FFT sizes :func:`loss_sizes` (Hann, 75 % overlap) of the log-magnitude L1
    (``log10(|S| + 1e-5)``) plus the linear-magnitude L1 relative to the target's mean magnitude — magnitude
    only, because rendered phases are seeded and never match real audio.  Adam in the unit interval
    (:func:`events.to_unit`) with per-dimension step scales :data:`STEP_SCALE` (frozen dims: 0), cosine
    decay from ``lr`` to ``lr * lr_end_ratio``; times are fixed.  Deterministic (no randomness).  Returns
    the iterate with the lowest loss seen (never worse than the start), ``float64[N, 32]``.
    """
    import torch

    from sparsecodec.synth import render_torch as generator  # type: ignore[attr-defined,unused-ignore]

    if steps <= 0 or len(vectors) == 0:
        return np.asarray(vectors, np.float64)
    torch.set_num_threads(max(1, threads))
    dev = torch.device(device)
    f64 = torch.float64
    n = int(target.shape[-1])
    sizes = [s for s in loss_sizes(sample_rate) if s <= n]
    if not sizes:
        return np.asarray(vectors, np.float64)
    windows = {s: torch.hann_window(s, dtype=f64, device=dev) for s in sizes}

    def mags(x: torch.Tensor) -> list[torch.Tensor]:
        return [
            torch.stft(x, s, s // 4, window=windows[s], center=True, return_complex=True).abs() * (4.0 / s)
            for s in sizes
        ]

    tgt = torch.as_tensor(np.asarray(target, np.float64), device=dev)
    fix = None if fixed is None else torch.as_tensor(np.asarray(fixed, np.float64), device=dev)
    with torch.no_grad():
        tmags = mags(tgt)
        tlogs = [torch.log10(m + LOSS_EPS) for m in tmags]
        tmeans = [float(m.mean()) + LOSS_EPS for m in tmags]
    times = np.asarray(times_s, np.float64)

    def loss_of(u: torch.Tensor) -> torch.Tensor:
        y = generator.render(events.from_unit(u), times, n, sample_rate, channels=1)[0]
        if fix is not None:
            y = y + fix
        total = torch.zeros((), dtype=f64, device=dev)
        for mm, tl, tm, mean in zip(mags(y), tlogs, tmags, tmeans, strict=True):
            total = total + (torch.log10(mm + LOSS_EPS) - tl).abs().mean() + (mm - tm).abs().mean() / mean
        return total / len(sizes)

    u0 = torch.as_tensor(np.clip(events.to_unit(np.asarray(vectors, np.float64)), 0.0, 1.0), device=dev)
    scale = torch.as_tensor(STEP_SCALE, dtype=f64, device=dev)
    delta = torch.zeros_like(u0, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    best_u, best_loss = u0.clone(), math.inf
    for i in range(steps + 1):
        u = (u0 + scale * delta).clamp(0.0, 1.0)
        loss = loss_of(u)
        value = float(loss.detach())
        if value < best_loss:
            best_u, best_loss = u.detach().clone(), value
        if i == steps:
            break
        for group in opt.param_groups:
            group["lr"] = lr * (
                lr_end_ratio + (1.0 - lr_end_ratio) * 0.5 * (1.0 + math.cos(math.pi * i / steps))
            )
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = events.from_unit(best_u.cpu().numpy())
    return np.asarray(events.clip(out), np.float64)


def _select_fill(
    gains: np.ndarray,
    unit_bins: list[tuple[int, np.ndarray]],
    tile_a: list[int],
    seg_fr: int,
    mag2: np.ndarray,
    model: np.ndarray,
    bin_of: np.ndarray,
) -> np.ndarray:
    """Rescale fill gains ``[K·J]`` (band-major) tile by tile, each by the factor in :data:`FILL_SCALES`
    that minimises the mean ``|log10 P_model − log10 P_input|`` over its band's bins and two segments of
    frames from its start, given the events and every other tile.

    ``unit_bins[k]``: ``(b0, power)``, band ``k``'s unit tile power ``[M, bins]`` from frame 0 and bin
    ``b0``; ``tile_a[j]``: segment ``j``'s first frame; ``mag2``/``model``: input and event power
    ``[C, M, B]`` (channels summed); ``bin_of``: the first bin of each band edge ``[K + 1]``.  The
    benchmark's mrstft is this distance on the decoded audio: fill goes where the input has a noise floor
    the events leave empty, and stays out of the gaps between clean partials.
    """
    log_in = np.log10(mag2.sum(axis=0) + FILL_LOG_FLOOR)
    n_obs = log_in.shape[0]
    n_j = len(tile_a)
    total = model.sum(axis=0).astype(np.float64) + FILL_LOG_FLOOR

    def add(t: int, scale: float) -> None:
        b0, unit = unit_bins[t // n_j]
        a = tile_a[t % n_j]
        m = min(unit.shape[0], n_obs - a)
        if m > 0:
            total[a : a + m, b0 : b0 + unit.shape[1]] += scale * unit[:m]

    live = np.nonzero(gains > 0)[0]
    for t in live:
        add(int(t), float(gains[t]))
    out = gains.copy()
    for t in live:
        k, a = int(t) // n_j, tile_a[int(t) % n_j]
        b0, unit = unit_bins[k]
        lo, hi = int(bin_of[k]) - b0, int(bin_of[k + 1]) - b0
        r1 = min(a + 2 * seg_fr, a + unit.shape[0], n_obs)
        if hi <= lo or r1 <= a:
            continue
        own = out[t] * unit[: r1 - a, lo:hi]
        rest = np.maximum(total[a:r1, b0 + lo : b0 + hi] - own, FILL_LOG_FLOOR)
        ref = log_in[a:r1, b0 + lo : b0 + hi]
        dist = [float(np.abs(np.log10(rest + s * own) - ref).mean()) for s in FILL_SCALES]
        scale = FILL_SCALES[int(np.argmin(dist))]
        add(int(t), (scale - 1.0) * float(out[t]))
        out[t] *= scale
    return out


def _pool_frames(x: np.ndarray, factor: int, n_rows: int) -> np.ndarray:
    """Sum ``float[..., M, Q]`` over groups of ``factor`` frames → ``float[..., n_rows, Q]`` (zero-padded)."""
    pad = n_rows * factor - x.shape[-2]
    if pad > 0:
        x = np.concatenate([x, np.zeros((*x.shape[:-2], pad, x.shape[-1]), x.dtype)], axis=-2)
    x = x[..., : n_rows * factor, :]
    return x.reshape(*x.shape[:-2], n_rows, factor, x.shape[-1]).sum(axis=-2)
