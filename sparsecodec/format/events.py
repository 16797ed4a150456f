"""The 32-dimensional event layout: names, units, ranges, defaults and a prior.

This module is the single source of truth for what the 32 numbers of an event mean (layout version
:data:`LAYOUT_VERSION`).  ``formats/spev.md`` and ``docs/events.md`` document the same table for people.

An event *vector* is always in physical units (dB, MIDI pitch, seconds, Hz, ...), shape ``[..., 32]``.
For optimisation and quantisation every dimension also has a *unit-interval* form ``u`` in ``[0, 1]``
(linear or logarithmic in the physical value, see :class:`Dim`).

No torch import here: the container, ``inspect`` and the quantiser depend on this module.
The arithmetic helpers (:func:`to_unit`, :func:`from_unit`) use only operators and ``log``/``exp`` of the
array's own namespace, so they work on numpy arrays and on torch tensors alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

LAYOUT_VERSION = 2
"""Layout version the encoder writes: the meaning of the 32 numbers, the tables and the generator.  Layout 1
(:data:`DIMS`, one kind of event) is still read; layout 2 adds the event kind in dimension 31
(:data:`KIND_DIM`) and the voice knot (:data:`VOICE_DIMS`)."""
LAYOUTS = (1, 2)
"""Layout versions this package reads."""

N_DIMS = 32

MAX_SUPPORT_S = 10.0
"""Upper bound (seconds) on one event's support: attack + duration + release tail.  A seek pre-rolls by it."""

REFERENCE_T60_LOW_HZ = 100.0
"""Frequency at which ``t60_low`` is defined."""
REFERENCE_T60_HIGH_HZ = 8000.0
"""Frequency at which ``t60_high`` is defined; T60 is interpolated linearly in log-T60 over log-frequency."""
PITCH_DROP_TIME_S = 0.03
"""Time constant (s) of the ``pitch_drop`` offset's exponential decay."""
MAX_PARTIALS = 64
"""Maximum number of partials per event (fewer when they would exceed the cutoff or Nyquist)."""

Scale = Literal["lin", "log", "sym"]


@dataclass(frozen=True)
class Dim:
    """One dimension of the event vector.

    ``lo``/``hi`` bound the physical value; ``scale`` says whether the unit-interval form and the
    quantiser are linear in the value (``lin``), in its logarithm (``log``), or linear on a grid symmetric
    about zero so that 0 is exact (``sym``: signed dimensions whose neutral value is 0).  ``bits`` is the
    default quantisation width (0 means the dimension is not transmitted and decodes to ``default``).
    """

    index: int
    name: str
    unit: str
    lo: float
    hi: float
    scale: Scale
    default: float
    bits: int
    group: str
    doc: str


def _d(
    index: int,
    name: str,
    unit: str,
    lo: float,
    hi: float,
    scale: Scale,
    default: float,
    bits: int,
    group: str,
    doc: str,
) -> Dim:
    return Dim(index, name, unit, lo, hi, scale, default, bits, group, doc)


# fmt: off
DIMS: tuple[Dim, ...] = (
    _d(0, "level", "dBFS", -90.0, 6.0, "lin", -20.0, 8, "level & pitch",
       "Sine-equivalent peak level: at the envelope's peak the event's power (partials + noise) "
       "equals that of a sine peaking at this level; before pan and room."),
    _d(1, "pitch", "MIDI", 12.0, 120.0, "lin", 60.0, 12, "level & pitch",
       "Fundamental as a continuous MIDI note number (69 = A4 = 440 Hz)."),
    _d(2, "glide", "semitones/s", -24.0, 24.0, "sym", 0.0, 6, "level & pitch",
       "Linear pitch slope after the onset."),
    _d(3, "vibrato_rate", "Hz", 0.0, 12.0, "lin", 5.0, 4, "level & pitch",
       "Vibrato frequency."),
    _d(4, "vibrato_depth", "cents", 0.0, 200.0, "lin", 0.0, 5, "level & pitch",
       "Vibrato peak deviation."),
    _d(5, "inharmonicity", "log10 B", -7.0, -1.0, "lin", -7.0, 5, "harmonic timbre",
       "Stiff-string inharmonicity: partial k sits at k*f0*sqrt(1 + B k^2)."),
    _d(6, "tilt", "dB/octave", -40.0, 12.0, "lin", -6.0, 6, "harmonic timbre",
       "Spectral slope of partial amplitudes over log2 of the partial index."),
    _d(7, "env1", "dB", -20.0, 20.0, "sym", 0.0, 5, "harmonic timbre",
       "Cosine spectral-envelope coefficient 1 over u = log2(k)/6 (k = partial index)."),
    _d(8, "env2", "dB", -20.0, 20.0, "sym", 0.0, 5, "harmonic timbre", "Cosine envelope coefficient 2."),
    _d(9, "env3", "dB", -20.0, 20.0, "sym", 0.0, 5, "harmonic timbre", "Cosine envelope coefficient 3."),
    _d(10, "env4", "dB", -20.0, 20.0, "sym", 0.0, 5, "harmonic timbre", "Cosine envelope coefficient 4."),
    _d(11, "env5", "dB", -20.0, 20.0, "sym", 0.0, 5, "harmonic timbre", "Cosine envelope coefficient 5."),
    _d(12, "env6", "dB", -20.0, 20.0, "sym", 0.0, 5, "harmonic timbre", "Cosine envelope coefficient 6."),
    _d(13, "env7", "dB", -20.0, 20.0, "sym", 0.0, 5, "harmonic timbre", "Cosine envelope coefficient 7."),
    _d(14, "odd_even", "dB", -40.0, 20.0, "sym", 0.0, 5, "harmonic timbre",
       "Gain of even partials relative to odd ones (-40: clarinet-like, odd only)."),
    _d(15, "detune", "cents", 0.0, 40.0, "lin", 0.0, 4, "harmonic timbre",
       "Ensemble detuning: each partial is a pair of equal partials this far apart (slow beating)."),
    _d(16, "cutoff", "Hz", 50.0, 20000.0, "log", 20000.0, 6, "harmonic timbre",
       "Low-pass corner of the partials (48 dB/octave); partials far above it are not rendered."),
    _d(17, "attack", "s", 0.001, 2.0, "log", 0.005, 6, "envelope",
       "Rise time of the event from silence to its peak (raised-cosine ramp)."),
    _d(18, "duration", "s", 0.01, 8.0, "log", 0.5, 7, "envelope",
       "Hold time from the onset to the start of the release."),
    _d(19, "release", "s", 0.01, 4.0, "log", 0.2, 5, "envelope",
       "T60 of the release that starts after `duration`."),
    _d(20, "t60_low", "s", 0.02, 60.0, "log", 2.0, 6, "resonance decay",
       "Time for partials at 100 Hz to decay by 60 dB while held (large = sustained)."),
    _d(21, "t60_high", "s", 0.005, 60.0, "log", 0.5, 6, "resonance decay",
       "Time for partials at 8 kHz to decay by 60 dB (log-interpolated in between)."),
    _d(22, "noise_mix", "ratio", 0.0, 1.0, "lin", 0.0, 5, "noise",
       "Equal-power balance of noise vs partials: 0 = partials only, 1 = noise only (unpitched)."),
    _d(23, "noise_centre", "Hz", 30.0, 20000.0, "log", 3000.0, 6, "noise",
       "Centre frequency of the noise band (log-Gaussian band-pass)."),
    _d(24, "noise_width", "octaves", 0.1, 10.0, "log", 2.0, 5, "noise",
       "Width of the noise band (two standard deviations, in octaves)."),
    _d(25, "noise_decay", "s", 0.005, 30.0, "log", 0.05, 5, "noise",
       "T60 of the noise part (large = sustained breath or bow noise)."),
    _d(26, "noise_attack", "s", 0.001, 2.0, "log", 0.002, 5, "noise",
       "Rise time of the noise part."),
    _d(27, "wet", "ratio", 0.0, 1.0, "lin", 0.0, 4, "room & place",
       "Send level to the chunk's room (reverb); the dry part is kept at full level."),
    _d(28, "pan", "position", -1.0, 1.0, "sym", 0.0, 5, "room & place",
       "Stereo position, equal-power: -1 left, 0 centre, +1 right (ignored for mono output)."),
    _d(29, "jitter", "cents", 0.0, 50.0, "lin", 0.0, 4, "level & pitch",
       "Slow random pitch wander (seeded from the event), standard deviation."),
    _d(30, "pitch_drop", "semitones", -12.0, 24.0, "sym", 0.0, 5, "level & pitch",
       "Initial pitch offset that decays exponentially with a 30 ms time constant (drums, plucks)."),
    _d(31, "reserved", "-", 0.0, 0.0, "lin", 0.0, 0, "reserved",
       "Reserved for a future layout; always 0 in layout 1 and not transmitted."),
)
# fmt: on

assert len(DIMS) == N_DIMS and all(d.index == i for i, d in enumerate(DIMS))

NAMES: tuple[str, ...] = tuple(d.name for d in DIMS)
INDEX: dict[str, int] = {d.name: d.index for d in DIMS}
LO = np.array([d.lo for d in DIMS], dtype=np.float64)
HI = np.array([d.hi for d in DIMS], dtype=np.float64)
IS_LOG = np.array([d.scale == "log" for d in DIMS], dtype=bool)
DEFAULT = np.array([d.default for d in DIMS], dtype=np.float64)
BITS = np.array([d.bits for d in DIMS], dtype=np.int64)

PITCHED_NOISE_MIX = 0.5
"""Events with ``noise_mix`` below this are *pitched* (exports give them a MIDI pitch)."""


# ------------------------------------------------------------------------------------ layout 2: event kinds

KIND_DIM = 31
"""Layout 2: dimension 31 is the event's kind (:data:`KINDS`); in layout 1 it is reserved and 0 (a note)."""
KIND_NOTE, KIND_VOICE = 0, 1
KINDS = ("note", "voice")
"""Layout-2 kinds by code: ``note`` (dimensions 0-30 as in :data:`DIMS`: notes, drums and noise fill) and
``voice`` (a knot of the file's voice track, :data:`VOICE_DIMS`)."""

KIND = _d(31, "kind", "code", 0.0, 3.0, "lin", 0.0, 2, "kind",
          "Event kind (layout 2): 0 note (dimensions 0-30 as in layout 1), 1 voice knot; 2 and 3 are "
          "reserved and refused by this reader.")  # fmt: skip

NOTE_DIMS: tuple[Dim, ...] = (*DIMS[:KIND_DIM], KIND)
"""Layout 2, kind ``note``: layout 1's dimensions with :data:`KIND` in dimension 31."""

VOICE_CEPS = 16
"""Mel-cepstra per voice knot (:mod:`sparsecodec.synth.voice`)."""
VOICE_CEPS_STEP = 0.3
"""Quantiser step (log10 power units) of the first voice cepstrum; each later one is 15 % coarser."""


def _spare(index: int) -> Dim:
    return _d(index, f"spare{index}", "-", 0.0, 0.0, "lin", 0.0, 0, "reserved",
              "Not used by a voice knot; always 0 and not transmitted.")  # fmt: skip


def _ceps(j: int) -> Dim:
    m = 63 * VOICE_CEPS_STEP * (1.0 + 0.15 * (j - 1))  # 7 bits: steps of VOICE_CEPS_STEP x 1.15^...
    return _d(5 + j, f"ceps{j}", "log10", -m, m, "sym", 0.0, 7, "voice envelope",
              f"Mel-cepstral coefficient {j}: DCT term {j} of the log10 power envelope on 40 mel-spaced "
              "points from 60 Hz to 7.8 kHz (absolute frequency: formants stay put when the pitch "
              "moves).")  # fmt: skip


# fmt: off
VOICE_DIMS: tuple[Dim, ...] = (
    _d(0, "level", "dBFS", -120.0, 6.0, "lin", -120.0, 6, "level & pitch",
       "Power of the voice at the knot (mean square, dB full scale); -120 is silence."),
    _d(1, "pitch", "MIDI", 24.0, 87.5, "lin", 60.0, 7, "level & pitch",
       "Fundamental as a MIDI note number; the track glides to the next knot in log frequency."),
    *(_d(1 + b, f"voicing{b}", "ratio", 0.0, 1.0, "lin", 0.0, 2, "voicing",
         f"Harmonic share of the power in band {b} ({band}); the rest is noise.")
      for b, band in enumerate(("0-1 kHz", "1-2 kHz", "2-4 kHz", "4-8 kHz"), start=1)),
    *(_ceps(j) for j in range(1, VOICE_CEPS + 1)),
    *(_spare(i) for i in range(22, 28)),
    _d(28, "pan", "position", -1.0, 1.0, "sym", 0.0, 5, "room & place",
       "Stereo position, equal-power, as for notes (ignored for mono output)."),
    _spare(29),
    _spare(30),
    KIND,
)
# fmt: on
assert len(VOICE_DIMS) == N_DIMS and all(d.index == i for i, d in enumerate(VOICE_DIMS))
VOICE_INDEX: dict[str, int] = {d.name: d.index for d in VOICE_DIMS}
VOICE_PARAMS: tuple[str, ...] = tuple(d.name for d in VOICE_DIMS if d.bits and d.index != KIND_DIM)
"""A voice knot's transmitted parameters by name (level, pitch, voicing1-4, ceps1-16, pan): what inspect
and export list for it."""

KIND_DIMS: dict[str, tuple[Dim, ...]] = {"note": NOTE_DIMS, "voice": VOICE_DIMS}
"""Layout 2's dimension table of each kind."""


def kinds(vectors: np.ndarray) -> np.ndarray:
    """``int64[N]``: the kind code of each event (layout-1 vectors, whose dimension 31 is 0, are notes)."""
    v = np.asarray(vectors)
    return np.rint(np.nan_to_num(v[..., KIND_DIM])).astype(np.int64)


def is_note(vectors: np.ndarray) -> np.ndarray:
    """Boolean ``[N]``: events of kind ``note`` (everything in a layout-1 file)."""
    return kinds(vectors) == KIND_NOTE


def is_voice(vectors: np.ndarray) -> np.ndarray:
    """Boolean ``[N]``: voice knots (layout 2)."""
    return kinds(vectors) == KIND_VOICE


def voice_defaults(n: int = 1) -> np.ndarray:
    """``n`` silent voice knots, ``float64[n, 32]`` (kind :data:`KIND_VOICE`)."""
    v = np.tile(np.array([d.default for d in VOICE_DIMS], dtype=np.float64), (n, 1))
    v[:, KIND_DIM] = KIND_VOICE
    return v


def defaults(n: int = 1) -> np.ndarray:
    """Return ``n`` default vectors, ``float64[n, 32]``."""
    return np.tile(DEFAULT, (n, 1))


VOICE_LO = np.array([d.lo for d in VOICE_DIMS], dtype=np.float64)
VOICE_HI = np.array([d.hi for d in VOICE_DIMS], dtype=np.float64)
VOICE_LO[KIND_DIM] = VOICE_HI[KIND_DIM] = KIND_VOICE


def clip(vectors: np.ndarray) -> np.ndarray:
    """Clip physical vectors ``[..., 32]`` into their kind's ranges (returns a new array); anything but a
    voice knot is a note (kind 0)."""
    v = np.asarray(vectors, dtype=np.float64)
    out = np.clip(v, LO, HI)
    voice = is_voice(v)
    if np.any(voice):
        out[voice] = np.clip(v[voice], VOICE_LO, VOICE_HI)
    return out


_LO_MAPPED = np.where(IS_LOG, np.log(np.where(IS_LOG, LO, 1.0)), LO)
_SPAN_MAPPED = np.where(IS_LOG, np.log(np.where(IS_LOG, HI, 1.0)), HI) - _LO_MAPPED
_SPAN_SAFE = np.where(_SPAN_MAPPED > 0, _SPAN_MAPPED, 1.0)


def to_unit(vectors: Any) -> Any:
    """Physical ``[..., 32]`` → unit interval ``[..., 32]`` (numpy array or torch tensor; not clipped).

    Linear dims map ``lo..hi`` to ``0..1``; log dims map ``log(lo)..log(hi)`` to ``0..1``.
    The reserved dimension (``lo == hi``) maps to 0.
    """
    if isinstance(vectors, np.ndarray):
        mapped = np.where(IS_LOG, np.log(np.maximum(vectors, 1e-12)), vectors)
        return (mapped - _LO_MAPPED) / _SPAN_SAFE
    is_log = _like(vectors, IS_LOG)
    mapped = vectors.clamp(min=1e-12).log().where(is_log, vectors)
    return (mapped - _like(vectors, _LO_MAPPED)) / _like(vectors, _SPAN_SAFE)


def from_unit(unit: Any) -> Any:
    """Unit interval ``[..., 32]`` → physical ``[..., 32]`` (inverse of :func:`to_unit`)."""
    if isinstance(unit, np.ndarray):
        mapped = unit * _SPAN_MAPPED + _LO_MAPPED
        return np.where(IS_LOG, np.exp(mapped), mapped)
    mapped = unit * _like(unit, _SPAN_MAPPED) + _like(unit, _LO_MAPPED)
    return mapped.exp().where(_like(unit, IS_LOG), mapped)


def _like(ref: Any, arr: np.ndarray) -> Any:
    """``arr`` as a torch tensor matching ``ref``'s dtype (bool stays bool) and device."""
    import torch  # only reached when the caller already uses torch

    dtype = torch.bool if arr.dtype == bool else ref.dtype
    return torch.as_tensor(arr, dtype=dtype, device=ref.device)


def pitch_to_hz(pitch: Any) -> Any:
    """MIDI pitch → frequency in Hz (numpy or torch)."""
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)


def hz_to_pitch(hz: Any) -> Any:
    """Frequency in Hz → MIDI pitch (numpy)."""
    return 69.0 + 12.0 * np.log2(np.asarray(hz, dtype=np.float64) / 440.0)


def is_pitched(vectors: np.ndarray) -> np.ndarray:
    """Boolean ``[N]``: notes whose partials dominate their noise (voice knots are not notes)."""
    v = np.asarray(vectors)
    return (v[..., INDEX["noise_mix"]] < PITCHED_NOISE_MIX) & is_note(v)


def support_s(vectors: np.ndarray) -> np.ndarray:
    """Upper bound of each event's audible support in seconds, ``[N]`` (≤ :data:`MAX_SUPPORT_S`).

    The partials last at most attack + duration + release, and no longer than their longest T60;
    the noise part lasts at most noise_attack + noise_decay (bounded by the same envelope).
    """
    v = np.asarray(vectors, dtype=np.float64)
    col = INDEX
    body = v[..., col["attack"]] + np.minimum(
        v[..., col["duration"]] + v[..., col["release"]],
        np.maximum(v[..., col["t60_low"]], v[..., col["t60_high"]]),
    )
    noise = v[..., col["noise_attack"]] + v[..., col["noise_decay"]]
    return np.minimum(np.maximum(body, noise), MAX_SUPPORT_S)


def sample_prior(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw ``n`` plausible random events, ``float64[n, 32]`` in physical units.

    Roughly: 80 % pitched notes (MIDI 36–96, plucked to sustained), 20 % noise hits (drum-like);
    vibrato, glide, detune, jitter and odd/even are mostly off, as in real instrument notes.
    """
    v = defaults(n)
    c = INDEX

    def logu(lo: float, hi: float) -> np.ndarray:
        return np.exp(rng.uniform(math.log(lo), math.log(hi), n))

    def sometimes(p: float, values: np.ndarray) -> np.ndarray:
        return np.where(rng.random(n) < p, values, 0.0)

    v[:, c["level"]] = rng.uniform(-45.0, -6.0, n)
    v[:, c["pitch"]] = rng.uniform(36.0, 96.0, n)
    v[:, c["glide"]] = sometimes(0.1, rng.normal(0.0, 3.0, n))
    v[:, c["vibrato_rate"]] = rng.uniform(3.0, 7.0, n)
    v[:, c["vibrato_depth"]] = sometimes(0.2, rng.uniform(5.0, 60.0, n))
    v[:, c["inharmonicity"]] = np.where(rng.random(n) < 0.6, -7.0, rng.uniform(-6.0, -2.5, n))
    v[:, c["tilt"]] = rng.normal(-7.0, 4.0, n)
    for j in range(1, 8):
        v[:, c[f"env{j}"]] = rng.normal(0.0, 6.0 / j, n)
    v[:, c["odd_even"]] = sometimes(0.2, rng.uniform(-30.0, 0.0, n))
    v[:, c["detune"]] = sometimes(0.15, rng.uniform(2.0, 25.0, n))
    v[:, c["cutoff"]] = logu(1500.0, 20000.0)
    v[:, c["attack"]] = logu(0.001, 0.15)
    v[:, c["duration"]] = logu(0.08, 3.0)
    v[:, c["release"]] = logu(0.03, 1.0)
    t60_low = logu(0.2, 12.0)
    v[:, c["t60_low"]] = t60_low
    v[:, c["t60_high"]] = t60_low * np.exp(rng.uniform(math.log(0.05), 0.0, n))
    noisy = rng.random(n) < 0.2
    v[:, c["noise_mix"]] = np.where(noisy, rng.uniform(0.85, 1.0, n), rng.beta(1.0, 6.0, n) * 0.6)
    v[:, c["noise_centre"]] = logu(150.0, 12000.0)
    v[:, c["noise_width"]] = logu(0.3, 6.0)
    v[:, c["noise_decay"]] = logu(0.01, 0.6)
    v[:, c["noise_attack"]] = logu(0.001, 0.02)
    v[:, c["wet"]] = rng.uniform(0.0, 0.5, n)
    v[:, c["pan"]] = np.clip(rng.normal(0.0, 0.3, n), -1.0, 1.0)
    v[:, c["jitter"]] = sometimes(0.1, rng.uniform(1.0, 15.0, n))
    v[:, c["pitch_drop"]] = sometimes(0.1, rng.uniform(-2.0, 12.0, n))
    return clip(v)


def describe(dims: tuple[Dim, ...] = DIMS) -> list[dict[str, Any]]:
    """A dimension table as plain data (for ``inspect --json``, docs and the container's table)."""
    return [
        {
            "index": d.index,
            "name": d.name,
            "unit": d.unit,
            "lo": d.lo,
            "hi": d.hi,
            "scale": d.scale,
            "default": d.default,
            "bits": d.bits,
            "group": d.group,
            "doc": d.doc,
        }
        for d in dims
    ]
