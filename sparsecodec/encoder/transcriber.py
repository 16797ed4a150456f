"""The note transcriber: which notes start where, so that each becomes one pitched event.

A small fully convolutional network (trained by ``python -m training.transcriber`` on FluidR3 renders of
generated MIDI; docs/training.md) reads the log-band spectrogram of :func:`proposal.features` (two bands per
semitone from MIDI 24, 86.1 frames/s at 22050 Hz) stacked with copies shifted by the harmonic intervals
:data:`HARMONICS` (a harmonic-stacked spectrogram, as in basic-pitch), so that a 3×3 kernel sees the partials
of a candidate f0 together.  Two heads per band and frame: **onset** (a note at this pitch starts here)
and **frame** (a note at this pitch sounds here); weights with a note-off branch (the shipped ones) add a
third, **note-off** (a note at this pitch is let go here).

:meth:`Transcriber.notes` turns the maps into notes: local maxima of the onset map (over ±2 frames and
±1 band) above :data:`ONSET_THRESHOLD`; the note lasts while its frame probability stays above
:data:`FRAME_THRESHOLD`; pitch and onset time are refined by parabolic interpolation.

Weights: ``weights/transcriber.safetensors`` (float16, a JSON ``config`` in the metadata; no pickle; size
bounded before reading, shapes are checked).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sparsecodec.encoder import analysis, proposal

HARMONICS = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
"""Harmonic intervals stacked as input channels (0.5: the sub-octave, against octave errors)."""
FRAME_S = proposal.HOP / proposal.ANALYSIS_RATE
"""Seconds per frame (11.6 ms)."""
ONSET_THRESHOLD = 0.5
FRAME_THRESHOLD = 0.3
"""A note *sounds* while its frame probability stays above this (:attr:`Note.end_s`: the encoder's held
notes)."""
OFF_THRESHOLD = 0.75
"""A note is *let go* where its frame probability falls below this (:attr:`Note.off_s`).  Training weights
sounding frames 3× (the frame loss in ``training/transcriber.py``), which moves an even chance (p = 0.5) to
p = 3·0.5/(3·0.5 + 0.5) = 0.75: the note-off is the network's median guess."""
OFFSET_PEAK_THRESHOLD = 0.6
"""A peak of the note-off map at or above this lets the note go (weights with a note-off branch; 0.6 gave
the transcriber alone offset F1 0.592 on the 16 FluidR3 tuning phrases, 0.5 gave 0.574)."""
MIN_NOTE_S = 0.03
SAME_ONSET_S = analysis.NOTE_SAME_ONSET_S
"""Notes starting within this long (s) of each other start together (:func:`_merge_near`, overtones; the
encoder's sub-octave rule reads the same)."""
OVERTONE_INTERVALS = (12.0, 19.0, 24.0)
"""Semitones above a simultaneous note where a less confident note is its partial (2nd, 3rd, 4th)."""
WEIGHTS_NAME = "transcriber.safetensors"
MAX_WEIGHTS_BYTES = 16 << 20


@dataclass(frozen=True)
class NoteConfig:
    """Architecture of :class:`NoteModel` (stored in the weights' metadata)."""

    channels: int = 16
    layers: int = 4
    time_kernel: int = 5
    offset_layers: int = 0
    """Convolutions of the note-off branch on the shared body (0: no branch, two maps)."""


@dataclass(frozen=True)
class Note:
    """A transcribed note: onset (s), MIDI pitch (float), the end of its sound (s), onset probability, and
    its note-off (s; ≤ ``end_s``, and no later than the next onset at its pitch; ``inf`` when unknown: the
    frame probability never reached :data:`OFF_THRESHOLD`)."""

    onset_s: float
    pitch: float
    end_s: float
    confidence: float
    off_s: float = math.inf


def band_shifts() -> list[int]:
    """Band offset of each harmonic in :data:`HARMONICS` (two bands per semitone)."""
    per_oct = 12 * proposal.BANDS_PER_SEMITONE
    return [round(per_oct * math.log2(h)) for h in HARMONICS]


def stack_harmonics(feats: np.ndarray) -> np.ndarray:
    """``float32[F, T]`` log-band features → ``float32[H, F, T]``: channel ``h`` at band ``f`` holds band
    ``f + shift_h`` (the floor value beyond the edges)."""
    f, t = feats.shape
    out = np.full((len(HARMONICS), f, t), -2.0, np.float32)
    for i, s in enumerate(band_shifts()):
        if s >= 0:
            out[i, : f - s] = feats[s:]
        else:
            out[i, -s:] = feats[: f + s]
    return out


class NoteModel(nn.Module):
    """``[B, H, F, T]`` harmonic-stacked features → ``[B, M, F, T]`` logits: onset, frame and, with
    ``offset_layers``, note-off (M = 3; the branch reads the body's features, so the first two maps do not
    depend on it)."""

    def __init__(self, config: NoteConfig | None = None) -> None:
        super().__init__()
        self.config = config or NoteConfig()
        c = self.config.channels
        self.body = nn.Sequential(*self._convs(len(HARMONICS), self.config.layers))
        self.head = nn.Conv2d(c, 2, 1)
        branch = self._convs(c, self.config.offset_layers)
        self.offset = nn.Sequential(*branch, nn.Conv2d(c, 1, 1)) if branch else None

    def _convs(self, cin: int, n: int) -> list[nn.Module]:
        """``n`` × (3 × time_kernel convolution to ``channels``, GELU), time dilation 1, 2, 1, 2, …"""
        c, k = self.config.channels, self.config.time_kernel
        layers: list[nn.Module] = []
        for i in range(n):
            dil = 1 if i % 2 == 0 else 2
            layers += [nn.Conv2d(cin, c, (3, k), padding=(1, dil * (k // 2)), dilation=(1, dil)), nn.GELU()]
            cin = c
        return layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        out = self.head(h)
        return out if self.offset is None else torch.cat([out, self.offset(h)], dim=1)


def save_weights(model: NoteModel, path: str | Path, meta: dict[str, str] | None = None) -> str:
    """Write float16 safetensors with the config in the metadata; returns the file's sha256."""
    from safetensors.torch import save_file

    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    metadata = {"config": json.dumps(asdict(model.config)), **(meta or {})}
    save_file(state, str(path), metadata=metadata)
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _parse(data: bytes) -> NoteModel:
    from safetensors import safe_open
    from safetensors.torch import load

    from sparsecodec.encoder.proposal import WeightsError

    try:
        state = load(data)
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".safetensors") as tmp:
            tmp.write(data)
            tmp.flush()
            with safe_open(tmp.name, framework="pt") as f:
                meta = f.metadata() or {}
        raw = json.loads(meta.get("config", "{}"))
        config = NoteConfig(**{k: int(v) for k, v in raw.items() if k in NoteConfig.__dataclass_fields__})
    except Exception as exc:  # any malformed file is one error class
        raise WeightsError(f"transcriber weights are malformed: {exc}") from None
    model = NoteModel(config)
    want = model.state_dict()
    if set(state) != set(want) or any(state[k].shape != want[k].shape for k in want):
        raise WeightsError("transcriber weights do not match the network's architecture")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.eval()
    return model


class Transcriber:
    """Runs :class:`NoteModel` on mono audio and decodes its maps into notes."""

    def __init__(self, model: NoteModel, weights_hash: str = "") -> None:
        self.model = model
        self.weights_hash = weights_hash

    @classmethod
    def from_bytes(cls, data: bytes) -> Transcriber:
        return cls(_parse(data), hashlib.sha256(data).hexdigest())

    def maps(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Onset, frame and note-off probabilities ``float32[F, T]`` each for mono ``float[n]`` (note-off
        ``None`` for weights without the branch)."""
        feats = proposal.features(audio, sample_rate)
        x = torch.from_numpy(stack_harmonics(feats))[None]
        with torch.inference_mode():
            logits = self.model(x)[0]
        probs = torch.sigmoid(logits).numpy()
        return probs[0], probs[1], (probs[2] if len(probs) > 2 else None)

    def notes(self, audio: np.ndarray, sample_rate: int) -> list[Note]:
        """The notes of mono ``float[n]`` at ``sample_rate``, in onset order."""
        onset, frame, offset = self.maps(audio, sample_rate)
        return decode_notes(onset, frame, offset=offset)


def decode_notes(
    onset: np.ndarray,
    frame: np.ndarray,
    onset_threshold: float = ONSET_THRESHOLD,
    frame_threshold: float = FRAME_THRESHOLD,
    off_threshold: float = OFF_THRESHOLD,
    offset: np.ndarray | None = None,
    offset_threshold: float = OFFSET_PEAK_THRESHOLD,
) -> list[Note]:
    """Notes from onset and frame maps ``float[F, T]`` (bands of :mod:`proposal`, frames of FRAME_S); with a
    note-off map ``offset`` (same shape), a note's note-off is its first peak above ``offset_threshold``
    after the onset and before the sound ends (the frame rule where there is none)."""
    from scipy import ndimage

    n_bands, n_frames = onset.shape
    local = ndimage.maximum_filter(onset, size=(3, 5), mode="constant")
    peaks = np.argwhere((onset >= local) & (onset >= onset_threshold))
    fr = ndimage.maximum_filter1d(frame, size=3, axis=0)  # ±1 band: vibrato
    offs = None if offset is None else ndimage.maximum_filter1d(offset, size=3, axis=0)
    off_th = max(off_threshold, frame_threshold)  # a note is let go no later than its sound ends
    notes = []
    for b, t in peaks:
        b, t = int(b), int(t)
        # sub-band / sub-frame refinement
        db = _parabolic(onset[max(0, b - 1) : b + 2, t]) if 0 < b < n_bands - 1 else 0.0
        dt = _parabolic(onset[b, max(0, t - 1) : t + 2]) if 0 < t < n_frames - 1 else 0.0
        pitch = proposal.BAND_LO_MIDI + (b + db) / proposal.BANDS_PER_SEMITONE
        onset_s = max(0.0, (t + dt) * FRAME_S)
        end = _run_end(fr[b], t, frame_threshold)
        end_s = max(onset_s + MIN_NOTE_S, end * FRAME_S)
        sure = np.flatnonzero(fr[b, t:end] >= off_th)
        off_s = math.inf  # the network never was sure the note sounds: its note-off is unknown
        if sure.size:
            off = _run_end(fr[b], t + int(sure[0]), off_th)
            off_s = min(max(onset_s + MIN_NOTE_S, off * FRAME_S), end_s)
        if offs is not None:
            peak = _first_peak(offs[b], t + 2, end + 1, offset_threshold)
            if peak is not None:
                off_s = min(max(onset_s + MIN_NOTE_S, peak * FRAME_S), end_s)
        notes.append(Note(onset_s, float(pitch), float(end_s), float(onset[b, t]), off_s))
    notes.sort(key=lambda n: (n.onset_s, n.pitch))
    return _end_at_restrike(_drop_overtones(_merge_near(notes)))


def _first_peak(row: np.ndarray, a: int, z: int, threshold: float) -> float | None:
    """The first local maximum of ``row`` (``float[T]``) in frames ``[a, z)`` at or above ``threshold``,
    refined by parabolic interpolation (frames), or ``None``."""
    a, z = max(a, 1), min(z, len(row) - 1)
    seg = row[a:z]
    hit = np.flatnonzero((seg >= threshold) & (seg >= row[a - 1 : z - 1]) & (seg >= row[a + 1 : z + 1]))
    if not hit.size:
        return None
    t = a + int(hit[0])
    return t + _parabolic(row[t - 1 : t + 2])


def _run_end(row: np.ndarray, t: int, threshold: float) -> int:
    """The frame after ``t`` where ``row`` (``float[T]``) has stayed below ``threshold`` for two frames
    (the first of them), or ``len(row)``."""
    below = np.flatnonzero(row[t + 1 :] < threshold)
    two = below[1:][np.diff(below) == 1]  # the second of two consecutive frames below
    return int(t + 1 + two[0] - 1) if two.size else len(row)


def _end_at_restrike(notes: list[Note]) -> list[Note]:
    """A note's note-off comes no later than the next note at its pitch (within half a semitone) starts: a
    re-struck key lets the old note go (the frame map stays on across the strike).  An unknown note-off
    stays unknown."""
    out = []
    for i, n in enumerate(notes):
        if math.isinf(n.off_s):
            out.append(n)
            continue
        nxt = [k.onset_s for k in notes[i + 1 :] if k.onset_s > n.onset_s and abs(k.pitch - n.pitch) < 0.5]
        off = min([n.off_s, *nxt])
        out.append(replace(n, off_s=max(off, n.onset_s + MIN_NOTE_S)) if off < n.off_s else n)
    return out


def _merge_near(notes: list[Note]) -> list[Note]:
    """Keep the more confident of two notes within 50 ms and half a semitone of each other."""
    keep: list[Note] = []
    for n in sorted(notes, key=lambda n: -n.confidence):
        if all(abs(n.onset_s - k.onset_s) > SAME_ONSET_S or abs(n.pitch - k.pitch) > 0.5 for k in keep):
            keep.append(n)
    keep.sort(key=lambda n: (n.onset_s, n.pitch))
    return keep


def _drop_overtones(notes: list[Note]) -> list[Note]:
    """Drop a note that lies :data:`OVERTONE_INTERVALS` above a note starting within :data:`SAME_ONSET_S`
    and is less confident than it: the network's commonest false note is a strong partial of a real one (an
    octave on guitar, violin, piano).  A real octave in a chord survives when the network is at least as sure
    of it.  On 16 FluidR3 tuning phrases the transcriber alone went from note F1 0.858 to 0.884 (precision
    0.858 -> 0.918, recall 0.870 -> 0.858)."""
    out = []
    for n in notes:
        below = [
            k.confidence
            for k in notes
            if abs(k.onset_s - n.onset_s) <= SAME_ONSET_S
            and min(abs(n.pitch - k.pitch - h) for h in OVERTONE_INTERVALS) < 0.5
        ]
        if not below or n.confidence >= max(below):
            out.append(n)
    return out


def _parabolic(y: np.ndarray) -> float:
    if y.size != 3:
        return 0.0
    a, b, c = (float(v) for v in y)
    den = a - 2 * b + c
    return float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den < 0 else 0.0


def default_weights_path() -> Path:
    """The shipped weights (inside the package)."""
    return Path(str(importlib.resources.files("sparsecodec.encoder") / "weights" / WEIGHTS_NAME))


def load_default() -> Transcriber | None:
    """The shipped transcriber, loaded once per process (``None`` when no weights are shipped)."""
    path = default_weights_path()
    if not path.is_file():
        return None
    return _load_once(path)


@functools.lru_cache(maxsize=2)
def _load_once(path: Path) -> Transcriber:
    from sparsecodec.encoder.proposal import WeightsError

    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise WeightsError(f"{path}: {size} bytes is more than a transcriber's weights can be")
    return Transcriber.from_bytes(path.read_bytes())
