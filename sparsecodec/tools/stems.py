"""Stems: a ``.spev`` file's events rendered to separate WAV files (``spev decode --stems DIR``).

Groupings (``group=``):

- ``"event"`` (default): one WAV per event, starting at the event's onset and lasting its support
  (``events.support_s``, plus the room tail when its chunk has a room), named
  ``NNNNN_<time>s_<note or noise>.wav`` in time order; ``stems.json`` lists file, start time (s), pitch and
  level of each, so the stems can be laid out again in a DAW.
- ``"kind"``: two full-length stems, ``pitched.wav`` and ``noise.wav`` (``events.is_pitched``) — melody
  versus percussion/breath.  Their sum is the full decode (before the limiter).
- ``"pitch"``: one full-length stem per MIDI note (``note_060_C4.wav``...) plus ``noise.wav``.

A file's voice knots (layout 2) are one sound, not separate events: every grouping writes them as one more
full-length stem, ``voice.wav`` (listed in ``stems.json`` with ``"kind": "voice"`` for ``"event"``).

Rendering uses :mod:`render_np` (no torch).  Each event keeps the noise seed it has in the full decode
(``dsp.event_seeds`` over all events), so the stems of a grouping add up to the full decode.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparsecodec.errors import OutputExistsError, UsageError
from sparsecodec.format import events
from sparsecodec.tools.edit import Events, read_events

GROUPS = ("event", "kind", "pitch")
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MAX_STEMS = 100_000
"""Most files one call writes (``group="event"`` on a long, dense file is refused above this)."""
MAX_FULL_STEM_SAMPLES = 1 << 27
"""Bound on ``samples x channels`` of one full-length stem (``group="kind"``/``"pitch"``), which is held in
memory as float32 (512 MiB; ≈ 25 min of stereo at 44.1 kHz)."""


def note_name(midi: float) -> str:
    """``60.2`` → ``"C4"`` (nearest note)."""
    n = round(midi)
    return f"{NOTE_NAMES[n % 12]}{n // 12 - 1}"


def _write_wav(path: Path, audio: np.ndarray, rate: int, bits: str, force: bool) -> None:
    from sparsecodec.audio.io import atomic_output, ensure_writable, open_writer

    ensure_writable(path, force)
    with atomic_output(path, overwrite=force) as f:
        writer = open_writer(f, "wav", rate, audio.shape[0], audio.shape[1], bits)
        writer.write(audio)
        writer.close()


def _segments(ev: Events) -> list[tuple[float, float, dict]]:
    """``(start_s, end_s, side)`` per chunk (one segment over everything when the file has no chunks)."""
    starts = [s for s, _ in ev.sides] or [0.0]
    sides = [side for _, side in ev.sides] or [{}]
    ends = [*starts[1:], math.inf]
    return list(zip(starts, ends, sides, strict=True))


def _render_full(
    ev: Events, seeds: np.ndarray, mask: np.ndarray, rate: int, channels: int, n_out: int
) -> np.ndarray:
    """Full-length ``float32[C, n_out]`` of the events in ``mask``, each chunk with its own side data."""
    from sparsecodec.synth import render_np

    renderer = render_np.StreamRenderer(rate, channels, n_out)
    parts = []
    for start, end, side in _segments(ev):
        sel = mask & (ev.times_s >= start) & (ev.times_s < end)
        safe = min(end, n_out / rate)
        parts.append(renderer.push(ev.vectors[sel], ev.times_s[sel], side or None, safe, seeds=seeds[sel]))
        if end >= n_out / rate:
            break
    parts.append(renderer.finish())
    audio = np.concatenate(parts, axis=1) if parts else np.zeros((channels, 0), np.float32)
    out = np.zeros((channels, n_out), np.float32)
    out[:, : min(n_out, audio.shape[1])] = audio[:, :n_out]
    return out


def decode_stems(
    src: str | Path,
    outdir: str | Path,
    *,
    rate: int | None = None,
    bits: str = "16",
    force: bool = False,
    group: str = "event",
    progress: Callable[[float], None] | None = None,
) -> list[Path]:
    """Render ``src``'s events into WAV stems in ``outdir`` (created); returns the paths written.

    ``rate``: output rate (default: the file's); ``bits``: ``"16"``, ``"24"`` or ``"32f"``; ``group``: see the
    module docstring.  Existing files are refused unless ``force``.
    """
    from sparsecodec.audio.io import BITS_CHOICES, MAX_RATE, MIN_RATE

    if group not in GROUPS:
        raise UsageError(f"unknown stem grouping {group!r} (choose {', '.join(GROUPS)})")
    if bits not in BITS_CHOICES:
        raise UsageError(f"unknown bit depth {bits!r} (choose 16, 24 or 32f)")
    header, ev = read_events(src)
    out_rate = int(rate or header.sample_rate)
    if not MIN_RATE <= out_rate <= MAX_RATE:
        raise UsageError(f"--rate {out_rate}: choose {MIN_RATE}..{MAX_RATE} Hz")
    channels = int(header.channels)
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise OutputExistsError(f"{outdir}: exists and is not a folder")
    outdir.mkdir(parents=True, exist_ok=True)
    n_out = max(round(ev.duration_s * out_rate), 1)
    if group != "event" and n_out * channels > MAX_FULL_STEM_SAMPLES:
        raise UsageError(
            f"{ev.duration_s:.0f} s is too long for full-length stems (MAX_FULL_STEM_SAMPLES "
            f"{MAX_FULL_STEM_SAMPLES} samples x channels); use group 'event' or decode a shorter file"
        )
    order = np.argsort(ev.times_s, kind="stable")
    ev = ev.replace(vectors=ev.vectors[order], times_s=ev.times_s[order])
    pitched = events.is_pitched(ev.vectors)
    from sparsecodec.synth.kernels import event_seeds

    seeds = event_seeds(ev.times_s)
    out = _StemOut(outdir, out_rate, channels, bits, force, progress)
    voice = events.is_voice(ev.vectors)
    written = []
    if voice.any():  # the voice track as one stem, whatever the grouping
        written.append(out.write("voice.wav", _render_full(ev, seeds, voice, out.rate, out.channels, n_out)))
        ev = ev.subset(~voice)
        seeds, pitched = seeds[~voice], pitched[~voice]
    if group == "event":
        return written + _event_stems(ev, seeds, pitched, Path(src).name, out, bool(voice.any()))
    return written + _group_stems(ev, seeds, pitched, group, n_out, out)


@dataclass(frozen=True)
class _StemOut:
    """Where and how stems are written."""

    folder: Path
    rate: int
    channels: int
    bits: str
    force: bool
    progress: Callable[[float], None] | None

    def write(self, name: str, audio: np.ndarray) -> Path:
        """Write ``audio`` (``float32[C, n]``) as ``folder/name``; returns the path."""
        path = self.folder / name
        _write_wav(path, np.asarray(audio, np.float32), self.rate, self.bits, self.force)
        return path

    def done(self, fraction: float) -> None:
        """Report progress (fraction of the stems written)."""
        if self.progress is not None:
            self.progress(fraction)


def _event_stems(
    ev: Events, seeds: np.ndarray, pitched: np.ndarray, source: str, out: _StemOut, voice: bool = False
) -> list[Path]:
    """One WAV per event over its own support (room tail included), plus ``stems.json`` listing them."""
    from sparsecodec.audio.io import atomic_output, ensure_writable
    from sparsecodec.synth import render_np

    if len(ev) > MAX_STEMS:
        raise UsageError(f"{len(ev)} events: too many stems (max {MAX_STEMS}); use a grouping")
    support = events.support_s(ev.vectors)
    written: list[Path] = []
    index = []
    for i in range(len(ev)):
        t = float(ev.times_s[i])
        side = ev.side_at(t)
        length = support[i] + (render_np.ROOM_TAIL_S if side.get("room") else 0.0)
        n = max(math.ceil(length * out.rate), 1)
        one = slice(i, i + 1)
        audio = render_np.render(
            ev.vectors[one],
            ev.times_s[one],
            n,
            out.rate,
            side or None,
            out.channels,
            start_s=t,
            seeds=seeds[one],
        )
        label = note_name(ev.vectors[i, events.INDEX["pitch"]]) if pitched[i] else "noise"
        path = out.write(f"{i:05d}_{t:09.3f}s_{label}.wav", audio)
        written.append(path)
        index.append(
            {
                "file": path.name,
                "time": t,
                "pitch": float(ev.vectors[i, events.INDEX["pitch"]]) if pitched[i] else None,
                "level_db": float(ev.vectors[i, events.INDEX["level"]]),
            }
        )
        out.done((i + 1) / max(len(ev), 1))
    index_path = out.folder / "stems.json"
    ensure_writable(index_path, out.force)
    with atomic_output(index_path, overwrite=out.force) as f:
        if voice:
            index.insert(0, {"file": "voice.wav", "time": 0.0, "kind": "voice"})
        doc = {"source": source, "sample_rate": out.rate, "stems": index}
        f.write((json.dumps(doc, indent=1) + "\n").encode("utf-8"))
    written.append(index_path)
    return written


def _group_stems(
    ev: Events, seeds: np.ndarray, pitched: np.ndarray, group: str, n_out: int, out: _StemOut
) -> list[Path]:
    """Full-length stems that add up to the decode: by ``kind`` (pitched / noise) or by ``pitch``."""
    groups: list[tuple[str, np.ndarray]]
    if group == "kind":
        groups = [("pitched", pitched), ("noise", ~pitched)]
    else:
        notes = np.rint(ev.vectors[:, events.INDEX["pitch"]]).astype(np.int64)
        groups = [
            (f"note_{n:03d}_{note_name(n).replace('#', 's')}", pitched & (notes == n))
            for n in sorted(set(notes[pitched].tolist()))
        ]
        groups.append(("noise", ~pitched))
    written: list[Path] = []
    for k, (name, mask) in enumerate(groups):
        written.append(out.write(f"{name}.wav", _render_full(ev, seeds, mask, out.rate, out.channels, n_out)))
        out.done((k + 1) / len(groups))
    return written
