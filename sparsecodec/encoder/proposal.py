"""The trained proposal network: residual spectrogram in, candidate events (vector + time) out.

The encoder loads the shipped weights with :func:`load_default` (once per process) and reads the residual of
each ≈5.94 s analysis window with :meth:`ProposalNet.maps` (the hybrid's cues) or :meth:`ProposalNet.propose`
(``init="network"``); every proposal is rendered, subtracted and refined by analysis-by-synthesis, so
proposals need to be good starting points, not exact.

**Features** (:func:`features`): the mono residual is resampled to :data:`ANALYSIS_RATE` (22050 Hz, soxr),
an STFT (Hann, :data:`N_FFT` = 2048, hop :data:`HOP` = 256 → 86.1 frames/s, frame ``t`` centred on sample
``t * HOP``) is pooled in power onto :data:`N_BANDS` log-frequency bands, two per semitone from MIDI 24
(32.7 Hz) upwards, and mapped to ``(10 log10(power + 1e-10) + 50) / 25`` (full-scale sine ≈ 2, -100 dB = -2).
Levels are absolute (no per-window normalisation), so the network can read each event's level.

**Network** (:class:`ProposalModel`, fully convolutional over time, ~0.5 M parameters): a small 2-D conv stack
over (log-frequency, time) with frequency pooling, flattened to channels, then dilated 1-D residual blocks.
Three heads per frame:

- ``onset``  ``[B, T]`` logits: an event starts at this frame;
- ``pitch``  ``[B, P, T]`` logits over :data:`N_PITCH` bins (two per semitone, MIDI 12..120): a pitched event
  with this pitch starts here (multi-label, so a chord gives several peaks);
- ``vector`` ``[B, 32, T]`` logits of the event's unit-interval vector (:func:`events.to_unit` space).

Proposals are the top peaks of the onset map in the first half of the window; at each peak the pitch map's
peaks give one proposal per pitch (the vector head supplies the other 31 numbers).

Weights are a safetensors file with a JSON ``config`` in its metadata; nothing is pickled, shapes are checked.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft
import torch
from torch import nn

from sparsecodec.errors import SpevError
from sparsecodec.format import events

ANALYSIS_RATE = 22050
"""Sample rate (Hz) the network analyses at."""
N_FFT = 2048
"""STFT size (samples at :data:`ANALYSIS_RATE`)."""
HOP = 256
"""STFT hop (samples at :data:`ANALYSIS_RATE`): one frame is 11.6 ms."""
BAND_LO_MIDI = 24.0
"""Centre of the lowest log-frequency band (MIDI pitch)."""
BANDS_PER_SEMITONE = 2
N_BANDS = 208
"""Log-frequency bands: MIDI 24.0 .. 127.5 in half semitones (the top ones are capped at Nyquist)."""
PITCH_LO_MIDI = 12.0
PITCH_BINS_PER_SEMITONE = 2
N_PITCH = 217
"""Pitch classes of the pitch head: MIDI 12.0 .. 120.0 in half semitones."""
PITCH_GRID = PITCH_LO_MIDI + np.arange(N_PITCH) / PITCH_BINS_PER_SEMITONE
"""MIDI pitch of each row of :attr:`Proposal.pitch`."""
FLOOR_DB = -100.0
WEIGHTS_NAME = "proposal.safetensors"
MAX_WEIGHTS_BYTES = 64 << 20
"""Upper bound on a weights file's size; larger files are refused before reading."""
MAX_INPUT_SAMPLES = 1 << 22
"""Upper bound on one ``propose`` input (≈95 s at 44.1 kHz); the encoder passes ≈5.94 s windows."""


class WeightsError(SpevError):
    """A weights file is malformed or does not match the network's architecture."""

    exit_code = 1


# ------------------------------------------------------------------------------------------- features


@functools.lru_cache(maxsize=4)
def band_matrix(n_fft: int = N_FFT, sample_rate: int = ANALYSIS_RATE) -> np.ndarray:
    """Pooling weights ``float32[N_BANDS, n_fft // 2 + 1]`` from STFT power bins to log-frequency bands.

    Each band is a triangle half a semitone wide on each side (in pitch), or one FFT bin wide where the
    bins are coarser than that (below ≈370 Hz bands then interpolate between bins).  Not normalised: above
    that the triangles form a partition of unity, so a sinusoid's power lands in the bands whole.
    """
    n_bins = n_fft // 2 + 1
    freqs = np.arange(n_bins) * sample_rate / n_fft
    centres = BAND_LO_MIDI + np.arange(N_BANDS) / BANDS_PER_SEMITONE
    centre_hz = np.minimum(events.pitch_to_hz(centres), sample_rate / 2.0)
    with np.errstate(divide="ignore"):
        bin_pitch = np.where(freqs > 0, events.hz_to_pitch(np.maximum(freqs, 1e-9)), -np.inf)
    step = 1.0 / BANDS_PER_SEMITONE
    tri_pitch = np.maximum(0.0, 1.0 - np.abs(bin_pitch[None, :] - centres[:, None]) / step)
    bin_width = sample_rate / n_fft
    tri_bin = np.maximum(0.0, 1.0 - np.abs(freqs[None, :] - centre_hz[:, None]) / bin_width)
    # Where half a semitone is narrower than one bin, the pitch triangle misses bins: interpolate instead.
    semitone_hz = centre_hz * (2.0 ** (step / 12.0) - 1.0)
    coarse = (semitone_hz < bin_width)[:, None]
    return np.where(coarse, tri_bin, tri_pitch).astype(np.float32)


def features(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log-band spectrogram of mono audio: ``float32[N_BANDS, T]`` with ``T = ceil(n / HOP)`` at 22050 Hz.

    ``audio`` is ``float[n]`` (mono, nominal [-1, 1]) at ``sample_rate`` Hz; it is resampled with soxr.
    """
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if sample_rate != ANALYSIS_RATE:
        import soxr

        x = soxr.resample(x, sample_rate, ANALYSIS_RATE).astype(np.float32, copy=False)
    n = x.shape[0]
    n_frames = max(1, -(-n // HOP))
    half = N_FFT // 2
    padded = np.zeros(n_frames * HOP + N_FFT, dtype=np.float32)
    padded[half : half + n] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    spec = scipy.fft.rfft(frames * window, axis=-1)
    scale = 2.0 / float(window.sum())  # a full-scale sine has peak bin magnitude ~1
    power = (spec.real**2 + spec.imag**2).astype(np.float32) * np.float32(scale * scale)
    bands = band_matrix() @ power.T
    return ((10.0 * np.log10(bands + 1e-10) - FLOOR_DB / 2.0) / (-FLOOR_DB / 4.0)).astype(np.float32)


def pitch_bin(pitch: np.ndarray) -> np.ndarray:
    """MIDI pitch → fractional index into the pitch head's bins (float64, same shape)."""
    return (np.asarray(pitch, dtype=np.float64) - PITCH_LO_MIDI) * PITCH_BINS_PER_SEMITONE


# ---------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters (stored in the weights' metadata)."""

    c2d: tuple[int, int, int] = (8, 12, 16)
    """Channels of the three 2-D conv layers (the last two are followed by 2x frequency pooling)."""
    hidden: int = 128
    """Channels of the 1-D temporal stack."""
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1)
    """Dilations of the residual temporal blocks (kernel 3)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Validated config from JSON data (bounded sizes; raises :class:`WeightsError`)."""
        try:
            c2d = tuple(int(c) for c in d["c2d"])
            hidden = int(d["hidden"])
            dil = tuple(int(x) for x in d["dilations"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"bad proposal config: {exc}") from None
        if len(c2d) != 3 or not all(1 <= c <= 128 for c in c2d):
            raise WeightsError("bad proposal config: c2d")
        if not 8 <= hidden <= 1024 or not 1 <= len(dil) <= 16 or not all(1 <= x <= 64 for x in dil):
            raise WeightsError("bad proposal config: hidden/dilations")
        return cls(c2d=(c2d[0], c2d[1], c2d[2]), hidden=hidden, dilations=dil)


class _Block(nn.Module):
    """Residual dilated temporal conv: ``x + conv1x1(gelu(conv3(x)))``, ``[B, C, T]``."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.mix = nn.Conv1d(channels, channels, 1)
        self.norm = nn.GroupNorm(1, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(nn.functional.gelu(self.conv(self.norm(x))))


class ProposalModel(nn.Module):
    """Features ``[B, N_BANDS, T]`` → logits onset ``[B, T]``, pitch ``[B, P, T]``, vector ``[B, 32, T]``."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c1, c2, c3 = self.config.c2d
        h = self.config.hidden
        self.conv1 = nn.Conv2d(1, c1, (5, 3), padding=(2, 1))
        self.conv2 = nn.Conv2d(c1, c2, (5, 3), padding=(2, 1))
        self.conv3 = nn.Conv2d(c2, c3, (5, 3), padding=(2, 1))
        self.proj = nn.Conv1d(c3 * (N_BANDS // 4), h, 1)
        self.blocks = nn.ModuleList(_Block(h, d) for d in self.config.dilations)
        self.out_norm = nn.GroupNorm(1, h)
        self.onset = nn.Conv1d(h, 1, 1)
        self.pitch = nn.Conv1d(h, N_PITCH, 1)
        self.vector = nn.Conv1d(h, events.N_DIMS, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, f, t = x.shape
        if f != N_BANDS:
            raise ValueError(f"expected {N_BANDS} bands, got {f}")
        gelu = nn.functional.gelu
        y = gelu(self.conv1(x.unsqueeze(1)))
        y = nn.functional.max_pool2d(gelu(self.conv2(y)), (2, 1))
        y = nn.functional.max_pool2d(gelu(self.conv3(y)), (2, 1))
        y = self.proj(y.reshape(b, -1, t))
        for block in self.blocks:
            y = block(y)
        y = gelu(self.out_norm(y))
        return self.onset(y)[:, 0], self.pitch(y), self.vector(y)


# -------------------------------------------------------------------------------------------- loading


def _config_metadata(config: ModelConfig) -> dict[str, str]:
    d = asdict(config)
    meta = {
        "format": "spev-proposal",
        "version": "1",
        "config": json.dumps(d, sort_keys=True),
        "analysis_rate": str(ANALYSIS_RATE),
        "n_fft": str(N_FFT),
        "hop": str(HOP),
        "n_bands": str(N_BANDS),
        "n_pitch": str(N_PITCH),
        "layout_version": str(events.LAYOUT_VERSION),
    }
    return meta


def save_weights(
    model: ProposalModel, path: str | Path, *, half: bool = True, extra: dict | None = None
) -> str:
    """Write ``model``'s weights as safetensors (float16 when ``half``); return the file's sha256 (hex)."""
    from safetensors.torch import save_file

    dtype = torch.float16 if half else torch.float32
    tensors = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    meta = _config_metadata(model.config)
    if extra:
        meta.update({str(k): str(v) for k, v in extra.items()})
    save_file(tensors, str(path), metadata=meta)
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _parse(data: bytes) -> ProposalModel:
    """Model from safetensors bytes (checked metadata, names and shapes)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    if len(data) < 8:
        raise WeightsError("weights file is truncated")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > min(len(data) - 8, 1 << 20):
        raise WeightsError("weights header length out of bounds")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except ValueError:
        raise WeightsError("weights header is not JSON") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != "spev-proposal":
        raise WeightsError("not a spev proposal weights file")
    expected = {
        "analysis_rate": ANALYSIS_RATE,
        "n_fft": N_FFT,
        "hop": HOP,
        "n_bands": N_BANDS,
        "n_pitch": N_PITCH,
    }
    for key, value in expected.items():
        if meta.get(key) != str(value):
            raise WeightsError(f"weights were trained for {key}={meta.get(key)}, this code uses {value}")
    try:
        config = ModelConfig.from_dict(json.loads(meta["config"]))
    except (KeyError, ValueError, TypeError):
        raise WeightsError("weights config missing or unreadable") from None
    model = ProposalModel(config)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as exc:
        raise WeightsError(f"cannot read weights: {exc}") from None
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if got != want:
        missing = sorted(set(want) - set(got))
        wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
        raise WeightsError(
            f"weights do not match the architecture (missing {missing[:3]}, shape {wrong[:3]})"
        )
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    model.eval()
    return model


@dataclass
class Proposal:
    """Raw network output for one window (numpy, frames at :data:`HOP` / :data:`ANALYSIS_RATE`)."""

    onset: np.ndarray  # float32[T] probabilities
    pitch: np.ndarray  # float32[N_PITCH, T] probabilities
    unit: np.ndarray  # float32[32, T] unit-interval vectors


class ProposalNet:
    """A loaded proposal network: :meth:`propose` turns a residual into candidate events."""

    def __init__(self, model: ProposalModel, weights_hash: str, threads: int | None = None) -> None:
        self.model = model.eval()
        self.weights_hash = weights_hash
        """sha256 (hex) of the bytes the weights were parsed from (:meth:`from_bytes`; provenance for the
        ``.spev`` header)."""
        self.threads = threads

    @classmethod
    def from_bytes(cls, data: bytes) -> ProposalNet:
        """Load from the bytes of a safetensors weights file (raises :class:`WeightsError`)."""
        if len(data) > MAX_WEIGHTS_BYTES:
            raise WeightsError("weights file too large")
        return cls(_parse(data), hashlib.sha256(data).hexdigest())

    @classmethod
    def from_file(cls, path: str | Path) -> ProposalNet:
        """Load from a weights file path (raises :class:`WeightsError`)."""
        p = Path(path)
        if p.stat().st_size > MAX_WEIGHTS_BYTES:
            raise WeightsError(f"{p}: weights file too large")
        return cls.from_bytes(p.read_bytes())

    def maps(self, feats: np.ndarray) -> Proposal:
        """Network maps for features ``float32[N_BANDS, T]`` from :func:`features`."""
        with torch.inference_mode():
            onset, pitch, vec = self.model(torch.from_numpy(np.ascontiguousarray(feats, np.float32))[None])
        return Proposal(
            onset=torch.sigmoid(onset[0]).numpy(),
            pitch=torch.sigmoid(pitch[0]).numpy(),
            unit=torch.sigmoid(vec[0]).numpy(),
        )

    def run(self, residual: np.ndarray, sample_rate: int) -> Proposal:
        """Network maps for mono ``residual`` (``float[n]`` at ``sample_rate``); see :class:`Proposal`."""
        return self.maps(_checked_features(residual, sample_rate))

    def propose(
        self,
        residual: np.ndarray,
        sample_rate: int,
        max_events: int,
        *,
        first_half: bool = True,
        min_score: float = 0.02,
        max_pitches: int = 3,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidate events for mono ``residual`` (``float32[n]`` at ``sample_rate`` Hz).

        Returns ``(vectors float64[K, 32]`` physical units, ``times_s float64[K]`` seconds from the start of
        ``residual``, ``scores float64[K]`` in (0, 1], best first) with ``K <= max_events``.  With
        ``first_half`` only events starting before ``n / 2`` are proposed (the rest is context).
        """
        n = int(np.asarray(residual).size)
        if max_events <= 0 or n == 0:
            return (np.zeros((0, events.N_DIMS)), np.zeros(0), np.zeros(0))
        feats = _checked_features(residual, sample_rate)
        return self.propose_features(
            feats,
            n / sample_rate,
            max_events,
            first_half=first_half,
            min_score=min_score,
            max_pitches=max_pitches,
        )

    def propose_features(
        self,
        feats: np.ndarray,
        duration_s: float,
        max_events: int,
        *,
        first_half: bool = True,
        min_score: float = 0.02,
        max_pitches: int = 3,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`propose` on precomputed features ``float32[N_BANDS, T]`` of ``duration_s`` seconds.

        Pitch: at each onset peak, harmonic summation over the energy that is *new* at the onset
        (:func:`onset_salience`), weighted by the network's pitch map, gives up to ``max_pitches``
        candidates by iterative cancellation of the chosen notes' harmonics.
        """
        empty = (np.zeros((0, events.N_DIMS)), np.zeros(0), np.zeros(0))
        if max_events <= 0:
            return empty
        out = self.maps(feats)
        onset, pitch, unit = out.onset.astype(np.float64), out.pitch.astype(np.float64), out.unit
        t_frames = onset.shape[0]
        limit_s = duration_s / (2.0 if first_half else 1.0)
        frame_s = HOP / ANALYSIS_RATE
        power = 10.0 ** ((np.asarray(feats, np.float64) * (-FLOOR_DB / 4.0) + FLOOR_DB / 2.0) / 10.0)
        cands: list[tuple[float, float, int, float | None]] = []  # score, time, frame, pitch
        peaks = [f for f in _peaks_1d(onset, min_score) if (f + _parabolic(onset, f)) * frame_s < limit_s]
        # each peak's best candidate scores onset[f], the others less: the top max_events peaks suffice
        peaks = sorted(peaks, key=lambda f: -onset[f])[:max_events]
        for f in peaks:
            t_s = (f + _parabolic(onset, f)) * frame_s
            if float(unit[events.INDEX["noise_mix"], f]) >= events.PITCHED_NOISE_MIX:
                cands.append((float(onset[f]), t_s, f, None))
                continue
            prior = pitch[:, max(0, f - 1) : min(t_frames, f + 2)].max(axis=1)
            for p, w in _onset_pitches(power, f, prior, max_pitches):
                cands.append((float(onset[f]) * w, t_s, f, p))
        cands.sort(key=lambda c: -c[0])
        cands = cands[:max_events]
        if not cands:
            return empty
        u = np.stack([unit[:, c[2]] for c in cands]).astype(np.float64)
        vec = events.from_unit(np.clip(u, 0.0, 1.0))
        for j, c in enumerate(cands):
            if c[3] is not None:
                vec[j, events.INDEX["pitch"]] = c[3]
        vec[:, events.INDEX["reserved"]] = 0.0
        vec = events.clip(vec)
        times = np.array([max(0.0, c[1]) for c in cands], dtype=np.float64)
        scores = np.array([c[0] for c in cands], dtype=np.float64)
        return vec, times, scores


def _checked_features(residual: np.ndarray, sample_rate: int) -> np.ndarray:
    x = np.asarray(residual, dtype=np.float32).reshape(-1)
    if x.shape[0] > MAX_INPUT_SAMPLES:
        raise ValueError(f"residual longer than {MAX_INPUT_SAMPLES} samples")
    return features(x, sample_rate)


HS_HARMONICS = 10
"""Harmonics summed by :func:`onset_salience`."""
HS_CANDIDATES = np.arange(24.0, 108.01, 0.5)
"""Candidate pitches (MIDI) of the harmonic summation."""
_BAND_PITCH = BAND_LO_MIDI + np.arange(N_BANDS) / BANDS_PER_SEMITONE


def new_energy(power: np.ndarray, f: int) -> np.ndarray:
    """Band amplitude ``float64[N_BANDS]`` new at frame ``f``: sqrt of (after − before) power, ≥ 0."""
    t = power.shape[1]
    after = power[:, min(t - 1, f + 1) : min(t, f + 4)].mean(axis=1)
    before = power[:, max(0, f - 4) : max(1, f - 1)].mean(axis=1) if f >= 2 else np.zeros(power.shape[0])
    return np.sqrt(np.maximum(after - before, 0.0))


def onset_salience(amp: np.ndarray) -> np.ndarray:
    """Harmonic summation ``float64[len(HS_CANDIDATES)]`` of band amplitudes (weights ``k ** -0.6``)."""
    s = np.zeros(HS_CANDIDATES.size)
    for k in range(1, HS_HARMONICS + 1):
        s += k**-0.6 * np.interp(HS_CANDIDATES + 12.0 * math.log2(k), _BAND_PITCH, amp, right=0.0)
    return s


def _onset_pitches(
    power: np.ndarray, f: int, prior: np.ndarray, max_pitches: int
) -> list[tuple[float, float]]:
    """``(pitch MIDI, weight in (0, 1])`` of the notes starting at frame ``f``, best first."""
    amp = new_energy(power, f)
    prior_c = np.interp(HS_CANDIDATES, PITCH_GRID, prior)
    out: list[tuple[float, float]] = []
    best = 0.0
    for _ in range(max_pitches):
        sal = onset_salience(amp) * (0.05 + prior_c)
        i = int(np.argmax(sal))
        if sal[i] <= 0.0 or (best and sal[i] < 0.3 * best):
            break
        best = best or float(sal[i])
        p = float(HS_CANDIDATES[i] + _parabolic(sal, i) * 0.5)
        out.append((p, float(sal[i]) / best))
        for k in range(1, HS_HARMONICS + 1):  # cancel this note's harmonics before the next pick
            amp[np.abs(_BAND_PITCH - (p + 12.0 * math.log2(k))) <= 0.75] = 0.0
    return out


def _peaks_1d(x: np.ndarray, threshold: float) -> list[int]:
    """Indices of local maxima of ``x`` (``>=`` left, ``>`` right neighbour) at or above ``threshold``."""
    if x.size == 0:
        return []
    left = np.concatenate([[-np.inf], x[:-1]])
    right = np.concatenate([x[1:], [-np.inf]])
    return [int(i) for i in np.flatnonzero((x >= left) & (x > right) & (x >= threshold))]


def _parabolic(x: np.ndarray, i: int) -> float:
    """Sub-sample offset in [-0.5, 0.5] of the peak at ``i`` from a parabola through its neighbours."""
    if i <= 0 or i >= x.size - 1:
        return 0.0
    a, b, c = float(x[i - 1]), float(x[i]), float(x[i + 1])
    den = a - 2.0 * b + c
    return 0.0 if den >= 0.0 else float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))


def default_weights_path() -> Path:
    """Where the shipped weights live inside the package (may not exist): the one weights locator, used by
    :func:`load_default` and, through it, by the encoder's header (:func:`initialisers.weights_hash`)."""
    return Path(str(importlib.resources.files("sparsecodec.encoder").joinpath("weights", WEIGHTS_NAME)))


def load_default() -> ProposalNet | None:
    """The shipped proposal network, or ``None`` when the package has no weights file (offline, no pickle).

    Loaded once per process and path: every later call returns the same object, so what the encoder runs
    and the :attr:`ProposalNet.weights_hash` its header records come from one read of the file (a file
    replaced afterwards at the same path is not read again).
    """
    path = default_weights_path()
    if not path.is_file():
        return None
    return _load_once(path)


@functools.lru_cache(maxsize=1)
def _load_once(path: Path) -> ProposalNet:
    return ProposalNet.from_file(path)
