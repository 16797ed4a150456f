"""Initialisers: what proposes events from a window's residual (the analysis, the network, the hybrid).

Every initialiser satisfies :class:`Initialiser`, which carries all the streaming encoder
(:mod:`sparsecodec.encoder.stream`) needs from it: a name, the hash of the weights it runs, how much silence
it wants in front of the stream's first window, its cues for a window, and its proposals.
:func:`make_initialiser` builds the one the settings name.  The proposal network is loaded once per process
through :func:`sparsecodec.encoder.proposal.load_default` (the one weights locator), and :func:`weights_hash`
reports the hash that the *loaded* network carries, so a ``.spev`` header names exactly the bytes that were
parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from sparsecodec.encoder import analysis
from sparsecodec.errors import UsageError

if TYPE_CHECKING:
    from sparsecodec.encoder.proposal import ProposalNet

DEFAULT_INIT = "hybrid"
"""What ``init=None`` means (when the proposal weights are shipped): the analysis guided by the network.
In the benchmark (docs/benchmark.md) it beats the plain analysis on music, notes and speech at the same
budget and steps."""

INITS = ("hybrid", "network", "analysis")
"""The initialisers :func:`make_initialiser` knows."""

NO_WEIGHTS = "none"
"""The weights hash of an initialiser that runs no network."""

HINT_MIN_SCORE = 0.2
"""Network onsets at least this probable are examined by the analysis as onsets (hints)."""
HINT_KEEP_S = 0.05
"""A hint stays for the next round only if an event was found within this many seconds of it."""


class Initialiser(Protocol):
    """Anything that proposes events from a mono residual (the analyser, the proposal network, the hybrid).

    ``lead_in``: samples of silence the encoder puts in front of the stream's first window before asking
    (the analysis needs a frame before a sound that is already there at sample 0 to see its onset).
    ``cues(mono, sample_rate)`` is called once per window on its first residual; what it returns is passed
    to every ``propose`` of that window (on the proposal's clock, after the lead-in).  ``propose`` returns
    ``(vectors float64[K, 32], times_s float64[K] from residual[0], scores float64[K])``, ``K ≤ max_events``;
    ``exclude`` (``float[K, 2]``: time_s, pitch) lists pitched events already found.
    """

    @property
    def name(self) -> str: ...

    @property
    def weights_hash(self) -> str: ...

    @property
    def lead_in(self) -> int: ...

    def cues(self, mono: np.ndarray, sample_rate: int) -> analysis.Cues | None: ...

    def propose(
        self,
        residual: np.ndarray,
        sample_rate: int,
        max_events: int,
        exclude: np.ndarray | None = None,
        cues: analysis.Cues | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def notes(self, mono: np.ndarray, sample_rate: int) -> np.ndarray | None: ...

    def propose_notes(
        self, residual: np.ndarray, sample_rate: int, notes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


@dataclass
class AnalysisInit:
    """The plain analysis (:class:`analysis.Analyzer`): no network, no cues."""

    analyzer: analysis.Analyzer
    name = "analysis"

    @property
    def weights_hash(self) -> str:
        """:data:`NO_WEIGHTS`: no network runs."""
        return NO_WEIGHTS

    @property
    def lead_in(self) -> int:
        """One analysis-resolution window (spectral flux needs a frame before an onset)."""
        return self.analyzer.res_a.n_fft

    def cues(self, mono: np.ndarray, sample_rate: int) -> analysis.Cues | None:
        """None: the plain analysis has no second detector."""
        return None

    def propose(
        self,
        residual: np.ndarray,
        sample_rate: int,
        max_events: int,
        exclude: np.ndarray | None = None,
        cues: analysis.Cues | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`analysis.Analyzer.propose` with the window's ``cues`` (from :meth:`cues`)."""
        return self.analyzer.propose(residual, sample_rate, max_events, exclude=exclude, cues=cues)

    def notes(self, mono: np.ndarray, sample_rate: int) -> np.ndarray | None:
        """None: the plain analysis runs no transcriber (its notes come from its onsets)."""
        return None

    def propose_notes(
        self, residual: np.ndarray, sample_rate: int, notes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One pitched event per note (:meth:`analysis.Analyzer.propose_notes`)."""
        return self.analyzer.propose_notes(residual, sample_rate, notes)


@dataclass
class HybridInit(AnalysisInit):
    """The analysis, guided by the proposal network run once per window on its first residual
    (:class:`analysis.Cues`): the network's onsets are examined as well as the flux peaks (it finds slow
    attacks that spectral flux misses) and its pitch map weights the analysis' f0 salience at each onset
    (fewer octave errors); the analysis fits every vector (:meth:`AnalysisInit.propose`, given these
    cues)."""

    net: ProposalNet
    name = "hybrid"

    @property
    def weights_hash(self) -> str:
        """sha256 (hex) of the weights bytes the network was parsed from."""
        return self.net.weights_hash

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

    def notes(self, mono: np.ndarray, sample_rate: int) -> np.ndarray | None:
        """The transcriber's notes in a window's mono input ``float[n]``: ``float[K, 4]`` (onset s from
        ``mono[0]``, MIDI pitch, end of its sound s, note-off s), or None when no transcriber weights are
        shipped."""
        from sparsecodec.encoder import transcriber

        tr = transcriber.load_default()
        if tr is None:
            return None
        found = tr.notes(np.asarray(mono, np.float32), sample_rate)
        return np.asarray([(n.onset_s, n.pitch, n.end_s, n.off_s) for n in found], np.float64).reshape(-1, 4)


@dataclass
class NetworkInit:
    """The proposal network alone (:meth:`proposal.ProposalNet.propose`): no lead-in, no cues, and what was
    already found is not excluded (the network sees only the residual)."""

    net: ProposalNet
    name = "network"
    lead_in = 0

    @property
    def weights_hash(self) -> str:
        """sha256 (hex) of the weights bytes the network was parsed from."""
        return self.net.weights_hash

    def cues(self, mono: np.ndarray, sample_rate: int) -> analysis.Cues | None:
        """None: the network's maps are its proposals."""
        return None

    def propose(
        self,
        residual: np.ndarray,
        sample_rate: int,
        max_events: int,
        exclude: np.ndarray | None = None,
        cues: analysis.Cues | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The network's proposals (``exclude`` and ``cues`` are not used)."""
        return self.net.propose(residual, sample_rate, max_events)

    def notes(self, mono: np.ndarray, sample_rate: int) -> np.ndarray | None:
        """None: the network alone proposes every event."""
        return None

    def propose_notes(
        self, residual: np.ndarray, sample_rate: int, notes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nothing (never called: :meth:`notes` is None)."""
        return np.zeros((0, 32)), np.zeros(0), np.zeros(0)


def _network(mode: str) -> ProposalNet:
    """The shipped proposal network (loaded once per process), or a :class:`UsageError` naming ``mode``."""
    from sparsecodec.encoder import proposal

    net = proposal.load_default()
    if net is None:
        raise UsageError(f"init={mode!r} but no proposal network is available")
    return net


def resolve_init(init: str | None = None) -> str:
    """The initialiser ``init`` names: ``None`` is :data:`DEFAULT_INIT`, or ``"analysis"`` when no proposal
    weights are shipped."""
    if init is not None:
        return init
    from sparsecodec.encoder import proposal

    return DEFAULT_INIT if proposal.default_weights_path().is_file() else "analysis"


def make_initialiser(init: str | None, sample_rate: int) -> Initialiser:
    """The initialiser ``init`` names (``None``: :func:`resolve_init`), for audio at ``sample_rate``."""
    if init is not None and init not in INITS:
        raise UsageError(f"unknown encoder init {init!r}: use 'hybrid', 'network' or 'analysis'")
    mode = resolve_init(init)
    if mode == "analysis":
        return AnalysisInit(analysis.Analyzer(sample_rate))
    net = _network(mode)
    if mode == "hybrid":
        return HybridInit(analysis.Analyzer(sample_rate), net)
    return NetworkInit(net)


def weights_hash(init: str | None = None) -> str:
    """The weights hash for a ``.spev`` header: the sha256 (hex) that the loaded proposal network carries
    (of the very bytes it was parsed from; the network :func:`make_initialiser` hands the encoder is the
    same object), or :data:`NO_WEIGHTS` when the initialiser ``init`` (``None``: :func:`resolve_init`) runs
    no network."""
    mode = resolve_init(init)
    if mode == "analysis":
        return NO_WEIGHTS
    return _network(mode).weights_hash
