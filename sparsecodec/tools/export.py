"""Export events to JSON, CSV and MIDI; import JSON/CSV events back into ``.spev`` files.

JSON: ``{"format": "spev-events", "version": 1, "header": {...}, "events": [...]}``.  Each event is::

    {"time": 1.25,            # start, seconds
     "pitch": 60.02,          # MIDI float; null when unpitched (events.is_pitched)
     "f0_hz": 262.0,          # null when unpitched
     "level_db": -18.0,       # dBFS
     "end": 1.91,             # note end, absolute seconds (note_lengths_s); null when unpitched
     "velocity": 80,          # MIDI velocity 1..127 from the level (midi_velocity); null when unpitched
     "params": {"level": -18.0, "pitch": 60.02, ...}}   # all 32 dimensions by name, physical units

``params`` always holds every dimension (the pitch of an unpitched event included), which is what makes
export → import lossless at quantised precision: every value is printed with Python's shortest round-trip
repr, so it re-quantises to the same code.  CSV has the same columns flattened (``time, pitch, f0_hz,
level_db, end, velocity, params.level, ..., params.reserved`` — what ``pandas.json_normalize`` makes of
the JSON).  ``end`` and ``velocity`` are computed from ``params``; import checks that they are numbers (or
null) and otherwise ignores them (a note's length is changed through ``duration``, its velocity through
``level``).

MIDI: one note per pitched event (never the unpitched ones, the noise fill included), in one track, or
with ``tracks`` in several: k-means on the events' timbre dimensions (:data:`TIMBRE_DIMS`), one track and
channel per cluster (:func:`timbre_clusters`).

Import accepts that shape and a friendlier one for authoring: any dimension name may also appear at the top
level of an event (``{"time": 0.5, "pitch": 64, "duration": 1.0}``); ``f0_hz`` sets the pitch and
``level_db`` the level; dimensions not given take their layout default.  Unknown names, out-of-range or
non-finite values and contradicting duplicates are :class:`~sparsecodec.errors.UsageError`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from sparsecodec import __version__
from sparsecodec.errors import InputError, UsageError
from sparsecodec.format import events, quantize
from sparsecodec.tools.edit import MAX_EVENTS, Events, check_value, read_events, write_events

FORMAT_NAME = "spev-events"
FORMAT_VERSION = 1
EXPORT_FORMATS = ("json", "csv", "midi")
DERIVED = ("time", "pitch", "f0_hz", "level_db", "end", "velocity")
"""Top-level per-event fields besides ``params``."""
OUTPUT_ONLY = ("end", "velocity")
"""Derived fields that import checks for type and otherwise ignores (they follow from ``params``)."""
VOICE_PARAMS = events.VOICE_PARAMS
"""A voice knot's parameters in an export (layout 2): level, pitch, voicing1-4, ceps1-16, pan."""
VOICE_ONLY = tuple(n for n in VOICE_PARAMS if n not in events.INDEX)
"""Voice parameters that are not also note dimensions (CSV columns ``voice.<name>``)."""
CSV_COLUMNS = (*DERIVED, *(f"params.{name}" for name in events.NAMES))
CSV_VOICE_COLUMNS = ("kind", *(f"voice.{name}" for name in VOICE_ONLY))
"""Appended when a file holds voice knots: ``kind`` (0 note, 1 voice) and the voice-only parameters (a
knot's level, pitch and pan are in ``params.level``, ``params.pitch`` and ``params.pan``)."""

MAX_IMPORT_BYTES = 1 << 28
"""Largest JSON/CSV file ``import`` reads (256 MiB: parsed JSON costs several times its size in memory)."""
DEFAULT_RATE = 44100
"""Sample rate of an imported file whose header gives none."""
DEFAULT_HOP_S = 2**17 / 44100
"""Chunk hop (seconds) of an imported file whose header gives none: the encoder's half window."""
MAX_CHANNELS = 2
MIN_RATE, MAX_RATE = 1000, 384000
MAX_SAMPLES = 24 * 3600 * MAX_RATE

MIDI_TICKS_PER_BEAT = 480
MIDI_TEMPO_US = 500_000
"""120 beats per minute: one tick is 1/960 s."""
MIDI_BEND_RANGE = 2.0
"""Pitch-bend range in semitones assumed by the exported bends (the General MIDI default)."""
MIDI_CHANNELS = tuple(c for c in range(16) if c != 9)
"""The 15 melodic channels (0-based; channel 10, the General MIDI drum channel, is skipped)."""

NOTE_END_DB = 30.0
"""A note ends where its partials' summed power has fallen this far below its peak (or at the release)."""

TIMBRE_DIMS = (
    "tilt",
    *(f"env{j}" for j in range(1, 8)),
    "odd_even",
    "inharmonicity",
    "t60_low",
    "t60_high",
    "attack",
    "noise_mix",
    "detune",
    "cutoff",
)
"""The dimensions ``--tracks`` clusters on (in the unit interval, :func:`events.to_unit`): how a note
sounds, not which note or how loud."""
MAX_TRACKS = len(MIDI_CHANNELS)
"""``--tracks N`` allows 1..15 (one channel each)."""
AUTO_MAX_TRACKS = 8
"""``--tracks auto`` tries 1..8 clusters."""
AUTO_MIN_EVENTS = 8
"""``--tracks auto`` gives one track to fewer pitched events than this."""
AUTO_MIN_SILHOUETTE = 0.25
"""``--tracks auto`` keeps one track unless some k >= 2 reaches this mean silhouette (below it the
clusters are not a real structure: Kaufman & Rousseeuw's 'no substantial structure')."""
AUTO_SILHOUETTE_SLACK = 0.05
"""... and then takes the smallest k whose silhouette is within this of the best: when the scores are close,
fewer tracks (an instrument split over two tracks is worse than two similar ones sharing one)."""
KMEANS_SEED = 0
KMEANS_N_INIT = 4
KMEANS_FIT_SAMPLE = 20000
"""k-means is fitted on a fixed random sample of at most this many events (then predicts all of them)."""
SILHOUETTE_SAMPLE = 2000
"""Silhouette scores are computed on a fixed random sample of this many events (the score is O(N^2))."""


# ------------------------------------------------------------------------------------------- export


def _jsonable(value: Any) -> Any:
    """Header values → JSON-compatible values (numpy scalars/arrays, bytes as hex, tuples as lists)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def header_record(header: Any) -> dict[str, Any]:
    """The header as a JSON-compatible dict (every field of the container's ``Header``)."""
    if dataclasses.is_dataclass(header) and not isinstance(header, type):
        raw = {f.name: getattr(header, f.name) for f in dataclasses.fields(header)}
    else:
        raw = dict(header)
    return dict(_jsonable(raw))


def voice_records(ev: Events) -> dict[int, dict[str, Any]]:
    """The record of each voice knot by event index: f0 at the knot and where its glide ends (the next
    knot of its track, or the knot itself), the first three formants (Hz, from the envelope), and its
    parameters by :data:`VOICE_PARAMS` name."""
    from sparsecodec.synth import voice

    idx = np.flatnonzero(events.is_voice(ev.vectors))
    if not len(idx):
        return {}
    idx = idx[np.argsort(ev.times_s[idx], kind="stable")]
    v, t = ev.vectors[idx], ev.times_s[idx]
    track = voice.from_vectors(v, np.arange(len(idx)))
    joined = np.append(voice.joins(t, track.level_db, voice.MAX_GAP_S), False)
    nxt = np.minimum(np.arange(len(idx)) + 1, len(idx) - 1)
    ends = np.where(joined, t[nxt], t)
    f0_end = np.where(joined, track.f0[nxt], track.f0)
    fmt = voice.formants(track.ceps)
    out = {}
    for j, i in enumerate(idx):
        out[int(i)] = {
            "kind": "voice",
            "end": float(ends[j]),
            "f0_end_hz": float(f0_end[j]),
            "formants_hz": [None if np.isnan(f) else float(f) for f in fmt[j]],
            "params": {name: float(v[j, events.VOICE_INDEX[name]]) for name in VOICE_PARAMS},
        }
    return out


def event_records(ev: Events, sample_rate: int | None = None) -> list[dict[str, Any]]:
    """One JSON-compatible dict per event, in time order (see the module docstring).

    ``sample_rate``: the rate the note ends are computed for (the file's; see :func:`note_lengths_s`).
    """
    voices = voice_records(ev)
    order = np.argsort(ev.times_s, kind="stable")
    pitched = events.is_pitched(ev.vectors)
    ends = np.full(len(ev), np.nan)
    ends[pitched] = ev.times_s[pitched] + note_lengths_s(ev.vectors[pitched], sample_rate)
    velocity = midi_velocity(ev.vectors[:, events.INDEX["level"]])
    out = []
    for i in order:
        v = ev.vectors[i]
        pitch = float(v[events.INDEX["pitch"]])
        if int(i) in voices:
            rec = voices[int(i)]
            head = {"time": float(ev.times_s[i]), "kind": "voice", "pitch": pitch}
            f0 = {"f0_hz": float(events.pitch_to_hz(pitch)), "f0_end_hz": rec["f0_end_hz"]}
            level = {"level_db": float(v[events.INDEX["level"]]), "end": rec["end"], "velocity": None}
            out.append({**head, **f0, **level, "formants_hz": rec["formants_hz"], "params": rec["params"]})
            continue
        is_p = bool(pitched[i])
        out.append(
            {
                "time": float(ev.times_s[i]),
                "pitch": pitch if is_p else None,
                "f0_hz": float(events.pitch_to_hz(pitch)) if is_p else None,
                "level_db": float(v[events.INDEX["level"]]),
                "end": float(ends[i]) if is_p else None,
                "velocity": int(velocity[i]) if is_p else None,
                "params": {name: float(v[j]) for j, name in enumerate(events.NAMES)},
            }
        )
    return out


def _rate(header: Any) -> int | None:
    rate = getattr(header, "sample_rate", None)
    if rate is None and isinstance(header, Mapping):
        rate = header.get("sample_rate")
    return int(rate) if isinstance(rate, int | np.integer) and rate > 0 else None


def to_json(header: Any, ev: Events) -> str:
    """The JSON document (text, one event per line for readable diffs)."""
    head = json.dumps(header_record(header), allow_nan=False, sort_keys=True)
    lines = [json.dumps(rec, allow_nan=False) for rec in event_records(ev, _rate(header))]
    body = ",\n  ".join(lines)
    events_part = f"[\n  {body}\n]" if lines else "[]"
    return (
        f'{{"format": "{FORMAT_NAME}", "version": {FORMAT_VERSION}, "software": "spev {__version__}",\n'
        f' "header": {head},\n "events": {events_part}}}\n'
    )


def to_csv(ev: Events, sample_rate: int | None = None) -> str:
    """CSV text with :data:`CSV_COLUMNS` (empty cells for nulls; velocity as an integer)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    voice = bool(np.any(events.is_voice(ev.vectors)))
    writer.writerow((*CSV_COLUMNS, *CSV_VOICE_COLUMNS) if voice else CSV_COLUMNS)
    for rec in event_records(ev, sample_rate):
        p = rec["params"]
        if rec.get("kind") == "voice":
            row = [rec[k] for k in DERIVED] + [p.get(name) for name in events.NAMES]
            row += [1] + [p[name] for name in VOICE_ONLY]
        else:
            row = [rec[k] for k in DERIVED] + [p[name] for name in events.NAMES]
            row += [0] + [None] * len(VOICE_ONLY) if voice else []
        writer.writerow(["" if x is None else str(x) if isinstance(x, int) else repr(float(x)) for x in row])
    return buf.getvalue()


def midi_velocity(level_db: np.ndarray) -> np.ndarray:
    """MIDI velocity 1..127 from a level in dBFS: ``dB = 40 log10(velocity / 127)`` (velocity² ∝ power)."""
    vel = np.rint(127.0 * 10.0 ** (np.asarray(level_db, dtype=np.float64) / 40.0))
    return np.clip(vel, 1, 127).astype(np.int64)


def note_lengths_s(vectors: np.ndarray, sample_rate: int | None = None) -> np.ndarray:
    """Where each note ends, in seconds after its onset: the first time its partials' summed power, as the
    renderer shapes it, has fallen :data:`NOTE_END_DB` (30 dB) below its peak, or the start of its release
    (τ = ``duration``) if that comes first — a note-off: the key is let go there, and what rings on after
    it is the release.

    The power is solved from the vector by :func:`kernels.partials_fall_s` (each partial's amplitude and
    T60 from the renderer's own functions; ``sample_rate`` drops the partials the renderer would not render
    at that rate), not rendered; about 1 s per 10^5 events.  Meant for pitched events: the noise part is
    not counted.
    """
    from sparsecodec.synth.kernels import partials_fall_s

    v = np.asarray(vectors, dtype=np.float64).reshape(-1, events.N_DIMS)
    return np.minimum(partials_fall_s(v, NOTE_END_DB, sample_rate), v[:, events.INDEX["duration"]])


def timbre_features(vectors: np.ndarray) -> np.ndarray:
    """``float64[N, len(TIMBRE_DIMS)]``: the :data:`TIMBRE_DIMS` of each event in the unit interval."""
    unit = events.to_unit(np.asarray(vectors, dtype=np.float64).reshape(-1, events.N_DIMS))
    return np.asarray(unit[:, [events.INDEX[name] for name in TIMBRE_DIMS]], dtype=np.float64)


def _kmeans(x: np.ndarray, k: int) -> np.ndarray:
    """k-means labels of the rows of ``x``: fitted on at most :data:`KMEANS_FIT_SAMPLE` of them (a fixed
    random sample), then every row to its nearest centre.  One thread: fast on small inputs, and the same
    float summation order, hence the same labels, on every machine."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    fit = x
    if len(x) > KMEANS_FIT_SAMPLE:
        pick = np.random.default_rng(KMEANS_SEED).choice(len(x), KMEANS_FIT_SAMPLE, replace=False)
        fit = x[np.sort(pick)]
    model = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=KMEANS_SEED, algorithm="lloyd")
    with threadpool_limits(limits=1):
        model.fit(fit)
        return np.asarray(model.predict(x), dtype=np.int64)


def _silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    if len(x) > SILHOUETTE_SAMPLE:
        pick = np.random.default_rng(KMEANS_SEED).choice(len(x), SILHOUETTE_SAMPLE, replace=False)
        x, labels = x[pick], labels[pick]
    if len(np.unique(labels)) < 2:
        return -1.0
    return float(silhouette_score(x, labels))


def parse_tracks(value: int | str) -> int | str:
    """``--tracks``: an integer 1..:data:`MAX_TRACKS` or ``"auto"`` (UsageError otherwise)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        try:
            value = int(text)
        except ValueError:
            raise UsageError(f"--tracks: expected 1..{MAX_TRACKS} or auto, not {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TRACKS:
        raise UsageError(f"--tracks: expected 1..{MAX_TRACKS} or auto, not {value!r}")
    return value


def timbre_clusters(vectors: np.ndarray, tracks: int | str) -> np.ndarray:
    """``int64[N]`` cluster of each event (pitched ones, in time order), numbered 0.. by first appearance.

    k-means (scikit-learn, fixed ``random_state`` and ``n_init``: deterministic) on
    :func:`timbre_features`.  ``tracks``: the number of clusters (at most the number of distinct timbres),
    or ``"auto"``: if the best mean silhouette of k = 2..:data:`AUTO_MAX_TRACKS` reaches
    :data:`AUTO_MIN_SILHOUETTE`, the smallest k within :data:`AUTO_SILHOUETTE_SLACK` of it, else 1; fewer
    than :data:`AUTO_MIN_EVENTS` events get 1.
    """
    tracks = parse_tracks(tracks)
    x = timbre_features(vectors)
    n = len(x)
    distinct = len(np.unique(x, axis=0)) if n else 0
    if tracks == "auto":
        k = 1
        if n >= AUTO_MIN_EVENTS:
            scores = {
                c: _silhouette(x, _kmeans(x, c)) for c in range(2, min(AUTO_MAX_TRACKS, distinct, n - 1) + 1)
            }
            best = max(scores.values(), default=-1.0)
            if best >= AUTO_MIN_SILHOUETTE:
                k = min(c for c, score in scores.items() if score >= best - AUTO_SILHOUETTE_SLACK)
    else:
        k = min(int(tracks), distinct)
    if k <= 1:
        return np.zeros(n, dtype=np.int64)
    labels = _kmeans(x, k)
    first = np.unique(labels, return_index=True)[1]  # first event of each raw label
    renumber = np.empty(k, dtype=np.int64)
    renumber[labels[np.sort(first)]] = np.arange(len(first))
    return renumber[labels]


def _end_held_notes(
    channel: np.ndarray, note: np.ndarray, on: np.ndarray, off: np.ndarray, velocity: np.ndarray
) -> np.ndarray:
    """Make the notes playable: no note may start on the channel and key of one still sounding (a MIDI
    player would stop the newer note at the older one's note-off).  The older note ends where the newer one
    starts (``off`` changed in place); notes on the same channel, key and tick become one, the longest, at
    the group's highest velocity (``velocity`` changed in place).  Returns the keep-mask."""
    order = np.lexsort((-off, on, note, channel))  # by channel, key, onset; the longest first
    key = np.stack([channel, note, on], axis=1)[order]
    dup = np.r_[False, np.all(key[1:] == key[:-1], axis=1)] if len(order) else np.zeros(0, dtype=bool)
    group = np.cumsum(~dup) - 1
    first = order[~dup]
    loudest = np.zeros(len(first), dtype=velocity.dtype)
    np.maximum.at(loudest, group, velocity[order])
    velocity[first] = loudest
    keep = np.ones(len(on), dtype=bool)
    keep[order[dup]] = False
    same = (channel[first[1:]] == channel[first[:-1]]) & (note[first[1:]] == note[first[:-1]])
    older, newer = first[:-1][same], first[1:][same]
    off[older] = np.minimum(off[older], on[newer])
    return keep


def to_midi(
    ev: Events, *, pitch_bend: bool = False, tracks: int | str = 1, sample_rate: int | None = None
) -> bytes:
    """A Standard MIDI File (120 bpm, 480 ticks/beat) of the pitched events (never the unpitched ones).

    Note = round(pitch); velocity from level (:func:`midi_velocity`); note-off at :func:`note_lengths_s`
    (for ``sample_rate``).  ``tracks`` = 1 (the default): type 0, one track on channel 1.  ``tracks`` = N
    or ``"auto"``: type 1, a tempo track and one track per timbre cluster (:func:`timbre_clusters`), named
    ``cluster 1``.. in order of first appearance, each on its own channel (1, 2, .. with 10, the drum
    channel, skipped).  With ``pitch_bend`` (one track only) each note gets its own channel (round robin,
    drum channel skipped) and a bend for its fractional pitch (±2 semitone range).  A note that starts on
    the channel and key of one still sounding ends the older one there.  Same input → same bytes.
    """
    import mido

    tracks = parse_tracks(tracks)
    if pitch_bend and tracks != 1:
        raise UsageError("--pitch-bend gives every note its own channel: it needs --tracks 1")
    pitched = events.is_pitched(ev.vectors)
    order = np.argsort(ev.times_s[pitched], kind="stable")
    v = ev.vectors[pitched][order]
    t = ev.times_s[pitched][order]
    pitch = v[:, events.INDEX["pitch"]]
    notes = np.clip(np.rint(pitch), 0, 127).astype(np.int64)
    vel = midi_velocity(v[:, events.INDEX["level"]])
    ticks_per_s = MIDI_TICKS_PER_BEAT * 1e6 / MIDI_TEMPO_US
    on = np.rint(t * ticks_per_s).astype(np.int64)
    off = np.maximum(np.rint((t + note_lengths_s(v, sample_rate)) * ticks_per_s).astype(np.int64), on + 1)
    cluster = np.zeros(len(t), dtype=np.int64) if tracks == 1 else timbre_clusters(v, tracks)
    n_tracks = int(cluster.max()) + 1 if len(t) else 1
    chans = np.asarray(MIDI_CHANNELS, dtype=np.int64)
    if pitch_bend:
        channel = chans[np.arange(len(t)) % len(chans)]
    else:
        channel = chans[cluster] if tracks != 1 else np.zeros(len(t), dtype=np.int64)
    keep = _end_held_notes(channel, notes, on, off, vel)
    # (tick, order, k, message) per track: note-offs sort before note-ons at the same tick.
    timelines: list[list[tuple[int, int, int, Any]]] = [[] for _ in range(n_tracks)]
    for k in np.flatnonzero(keep):
        ch = int(channel[k])
        line = timelines[int(cluster[k])]
        if pitch_bend:
            bend = int(np.clip(round((pitch[k] - notes[k]) / MIDI_BEND_RANGE * 8192), -8192, 8191))
            line.append((int(on[k]), 1, int(k), mido.Message("pitchwheel", channel=ch, pitch=bend)))
        msg_on = mido.Message("note_on", channel=ch, note=int(notes[k]), velocity=int(vel[k]))
        line.append((int(on[k]), 2, int(k), msg_on))
        msg_off = mido.Message("note_off", channel=ch, note=int(notes[k]), velocity=0)
        line.append((int(off[k]), 0, int(k), msg_off))
    tempo = mido.MetaMessage("set_tempo", tempo=MIDI_TEMPO_US, time=0)
    if tracks == 1:
        mid = mido.MidiFile(type=0, ticks_per_beat=MIDI_TICKS_PER_BEAT)
        mid.tracks.append(_midi_track([tempo], timelines[0]))
    else:
        mid = mido.MidiFile(type=1, ticks_per_beat=MIDI_TICKS_PER_BEAT)
        mid.tracks.append(_midi_track([mido.MetaMessage("track_name", name="spev", time=0), tempo], []))
        for i, line in enumerate(timelines):
            name = mido.MetaMessage("track_name", name=f"cluster {i + 1}", time=0)
            mid.tracks.append(_midi_track([name], line))
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def _midi_track(head: list[Any], timeline: list[tuple[int, int, int, Any]]) -> Any:
    """A track: the ``head`` meta messages at tick 0, the timeline's messages in order, end of track."""
    import mido

    track = mido.MidiTrack(head)
    now = 0
    for tick, _, _, msg in sorted(timeline, key=lambda item: (item[0], item[1], item[2])):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def export_bytes(src: str | Path, fmt: str, *, pitch_bend: bool = False, tracks: int | str = 1) -> bytes:
    """Read ``src`` and return its export in ``fmt`` (``json``, ``csv`` or ``midi``) as bytes.

    Note ends are computed at the file's sample rate; ``pitch_bend`` and ``tracks`` are MIDI's
    (:func:`to_midi`)."""
    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {fmt!r} (choose {', '.join(EXPORT_FORMATS)})")
    tracks = parse_tracks(tracks)
    if pitch_bend and tracks != 1:
        raise UsageError("--pitch-bend gives every note its own channel: it needs --tracks 1")
    header, ev = read_events(src)
    if fmt == "json":
        return to_json(header, ev).encode("utf-8")
    if fmt == "csv":
        return to_csv(ev, _rate(header)).encode("utf-8")
    return to_midi(ev, pitch_bend=pitch_bend, tracks=tracks, sample_rate=_rate(header))


def export_file(
    src: str | Path,
    dst: str | Path | BinaryIO,
    fmt: str,
    *,
    force: bool = False,
    pitch_bend: bool = False,
    tracks: int | str = 1,
) -> int:
    """Export ``src`` to ``dst`` (a path, written atomically, or a binary stream).  Returns bytes written."""
    data = export_bytes(src, fmt, pitch_bend=pitch_bend, tracks=tracks)
    if isinstance(dst, str | Path):
        from sparsecodec.audio.io import atomic_output, ensure_writable

        ensure_writable(dst, force)
        with atomic_output(dst, overwrite=force) as f:
            f.write(data)
    else:
        dst.write(data)
        dst.flush()
    return len(data)


# ------------------------------------------------------------------------------------------- import


def _reject_constant(name: str) -> float:
    raise UsageError(f"non-finite number {name} in the input (NaN and Infinity are not allowed)")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{where}: expected a number, not {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise UsageError(f"{where}: value must be finite")
    return x


def _set_once(values: dict[str, float], name: str, value: float, where: str) -> None:
    """Record ``name = value``; a second, different value for the same dimension is an error."""
    old = values.get(name)
    if old is not None and not math.isclose(old, value, rel_tol=1e-9, abs_tol=1e-9):
        raise UsageError(f"{where}: {name} given twice with different values ({old!r} and {value!r})")
    if old is None:
        values[name] = value


def parse_event(rec: Any, index: int) -> tuple[float, np.ndarray]:
    """One event record → ``(time_s, vector float64[32])``, validated (see the module docstring)."""
    where = f"event {index}"
    if not isinstance(rec, Mapping):
        raise UsageError(f"{where}: expected an object")
    if "time" not in rec:
        raise UsageError(f"{where}: missing 'time'")
    time = _number(rec["time"], f"{where}.time")
    if time < 0:
        raise UsageError(f"{where}.time: must be >= 0, not {time}")
    kind = rec.get("kind", "note")
    if kind not in events.KINDS:
        raise UsageError(f"{where}.kind: expected one of {list(events.KINDS)}, not {kind!r}")
    if kind == "voice":
        return time, _parse_voice(rec, where)
    values: dict[str, float] = {}
    params = rec.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise UsageError(f"{where}.params: expected an object")
    for name, value in params.items():
        if name not in events.INDEX:
            raise UsageError(f"{where}.params: unknown dimension {name!r}")
        _set_once(values, name, _number(value, f"{where}.params.{name}"), where)
    for key, value in rec.items():
        if key in ("time", "params", "kind"):
            continue
        if key == "f0_hz":
            if value is not None:
                hz = _number(value, f"{where}.f0_hz")
                if hz <= 0:
                    raise UsageError(f"{where}.f0_hz: must be > 0")
                _set_once(values, "pitch", float(events.hz_to_pitch(hz)), where)
        elif key == "level_db":
            if value is not None:
                _set_once(values, "level", _number(value, f"{where}.level_db"), where)
        elif key in OUTPUT_ONLY:
            if value is not None:  # derived from params on export; checked for type, then ignored
                _number(value, f"{where}.{key}")
        elif key in events.INDEX:
            if value is not None:  # "pitch": null marks an unpitched event: no information
                _set_once(values, key, _number(value, f"{where}.{key}"), where)
        else:
            raise UsageError(f"{where}: unknown field {key!r}")
    vec = events.DEFAULT.copy()
    for name, value in values.items():
        try:
            check_value(name, value)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
        vec[events.INDEX[name]] = value
    return time, events.clip(vec)


VOICE_OUTPUT_ONLY = ("end", "velocity", "f0_end_hz", "formants_hz")


def _parse_voice(rec: Mapping[str, Any], where: str) -> np.ndarray:
    """A voice knot's record → its vector (``params`` by :data:`VOICE_PARAMS` name; ``pitch``, ``f0_hz``
    and ``level_db`` at the top level too; the derived fields are checked for type and ignored)."""
    values: dict[str, float] = {}
    params = rec.get("params") or {}
    if not isinstance(params, Mapping):
        raise UsageError(f"{where}.params: expected an object")
    for name, value in params.items():
        if name not in VOICE_PARAMS:
            raise UsageError(f"{where}.params: {name!r} is not a voice parameter")
        _set_once(values, name, _number(value, f"{where}.params.{name}"), where)
    for key, value in rec.items():
        if key in ("time", "params", "kind") or value is None:
            continue
        if key == "f0_hz":
            hz = _number(value, f"{where}.f0_hz")
            if hz <= 0:
                raise UsageError(f"{where}.f0_hz: must be > 0")
            _set_once(values, "pitch", float(events.hz_to_pitch(hz)), where)
        elif key == "level_db":
            _set_once(values, "level", _number(value, f"{where}.level_db"), where)
        elif key == "formants_hz":
            if not isinstance(value, list) or not all(x is None or isinstance(x, int | float) for x in value):
                raise UsageError(f"{where}.formants_hz: expected a list of numbers")
        elif key in VOICE_OUTPUT_ONLY:
            _number(value, f"{where}.{key}")
        elif key in VOICE_PARAMS:
            _set_once(values, key, _number(value, f"{where}.{key}"), where)
        else:
            raise UsageError(f"{where}: unknown field {key!r} for a voice knot")
    vec = events.voice_defaults(1)[0]
    for name, value in values.items():
        try:
            check_value(name, value, events.VOICE_DIMS)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
        vec[events.VOICE_INDEX[name]] = value
    return np.asarray(events.clip(vec[None]))[0]


def _int_field(head: Mapping[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = head.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UsageError(f"header.{key}: expected an integer in {lo}..{hi}, not {value!r}")
    return int(value)


def build_header(head: Mapping[str, Any], ev: Events, *, source: str) -> Any:
    """A container ``Header`` for imported events: fields from ``head`` (validated) or defaults.

    Provenance fields of an exported header (encoder id, weights hash, settings, tags, history) are kept;
    an ``import`` entry is appended to the history.
    """
    from sparsecodec.format.container import Header

    if not isinstance(head, Mapping):
        raise UsageError("header: expected an object")
    layout = _int_field(head, "layout_version", events.LAYOUT_VERSION, 0, 1 << 16)
    if layout not in events.LAYOUTS:
        raise UsageError(f"header.layout_version {layout}: this spev writes layouts {list(events.LAYOUTS)}")
    rate = _int_field(head, "sample_rate", DEFAULT_RATE, MIN_RATE, MAX_RATE)
    time_rate = _int_field(head, "time_rate", rate, MIN_RATE, MAX_RATE)
    channels = _int_field(head, "channels", 1, 1, MAX_CHANNELS)
    hop = _int_field(head, "hop_samples", round(DEFAULT_HOP_S * time_rate), 1, 3600 * MAX_RATE)
    if "n_samples" in head and head["n_samples"] is not None:
        n_samples = _int_field(head, "n_samples", 1, 1, MAX_SAMPLES)
    else:
        ends = ev.times_s + events.support_s(ev.vectors) if len(ev) else np.zeros(1)
        n_samples = max(math.ceil(float(ends.max()) * rate), 1)
    try:
        default = quantize.TABLES[quantize.LAYOUT_TABLE[layout]]
        table = quantize.validate_table(head["table"]) if head.get("table") else default
    except quantize.TableError as exc:
        raise UsageError(f"header.table: {exc}") from None
    if quantize.table_layout(table) != layout:
        raise UsageError(f"header.table does not fit event layout {layout}")
    if layout == 1 and np.any(events.kinds(ev.vectors) != events.KIND_NOTE):
        raise UsageError("voice events need event layout 2")
    tags = head.get("tags") or {}
    if not isinstance(tags, Mapping) or not all(isinstance(v, str) for v in tags.values()):
        raise UsageError("header.tags: expected an object of strings")
    settings = head.get("settings") or {}
    history = head.get("history") or []
    if not isinstance(settings, Mapping) or not isinstance(history, list):
        raise UsageError("header.settings must be an object and header.history a list")
    entry = {"software": f"spev {__version__}", "command": "import", "source": source, "events": len(ev)}
    fields: dict[str, Any] = {
        "layout_version": layout,
        "encoder_id": str(head.get("encoder_id") or "import"),
        "weights_hash": str(head.get("weights_hash") or ""),
        "sample_rate": rate,
        "channels": channels,
        "n_samples": n_samples,
        "time_rate": time_rate,
        "hop_samples": hop,
        "table": table,
        "settings": dict(settings),
        "tags": {str(k): v for k, v in tags.items()},
        "software": f"spev {__version__}",
        "history": [*history, entry],
    }
    known = {f.name for f in dataclasses.fields(Header)}
    return Header(**{k: v for k, v in fields.items() if k in known})


def parse_json(text: str) -> tuple[dict[str, Any], Events]:
    """Parse an events JSON document → ``(header dict, Events)`` (duration from the header, else 0)."""
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(f"not valid JSON: {exc}") from None
    if isinstance(doc, list):
        doc = {"events": doc}
    if not isinstance(doc, Mapping) or not isinstance(doc.get("events"), list):
        raise UsageError('expected a JSON object with an "events" list')
    unknown = set(doc) - {"format", "version", "software", "header", "events"}
    if unknown:
        raise UsageError(f"unknown top-level field(s): {', '.join(sorted(unknown))}")
    head = doc.get("header") or {}
    if not isinstance(head, Mapping):
        raise UsageError("header: expected an object")
    return dict(head), _events_from_records(doc["events"])


def _events_from_records(records: list[Any]) -> Events:
    if len(records) > MAX_EVENTS:
        raise UsageError(f"more than {MAX_EVENTS} events")
    times = np.zeros(len(records))
    vectors = np.zeros((len(records), events.N_DIMS))
    for i, rec in enumerate(records):
        times[i], vectors[i] = parse_event(rec, i)
    return Events(vectors, times, 0.0)


def parse_csv(text: str) -> Events:
    """Parse events CSV (:data:`CSV_COLUMNS`, any subset in any order; ``time`` required)."""
    reader = csv.reader(io.StringIO(text))
    try:
        columns = next(reader)
    except StopIteration:
        raise UsageError("empty CSV") from None
    columns = [c.strip() for c in columns]
    if "time" not in columns:
        raise UsageError("CSV needs a 'time' column")
    records: list[dict[str, Any]] = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(columns):
            raise UsageError(f"CSV line {line}: {len(row)} cells, header has {len(columns)}")
        rec: dict[str, Any] = {}
        params: dict[str, Any] = {}
        for name, cell in zip(columns, row, strict=True):
            cell = cell.strip()
            value: float | None = None
            if cell:
                try:
                    value = float(cell)
                except ValueError:
                    raise UsageError(f"CSV line {line}, column {name}: {cell!r} is not a number") from None
            if name.startswith("params.") or name.startswith("voice."):
                if value is not None:
                    params[name.partition(".")[2]] = value
            elif name == "kind":
                if value is not None and value not in (0.0, 1.0):
                    raise UsageError(f"CSV line {line}, column kind: expected 0 (note) or 1 (voice)")
                rec["kind"] = events.KINDS[int(value or 0)]
            else:
                rec[name] = value
        if rec.get("kind") == "voice":  # the note-only cells of a voice row are empty
            params = {k: v for k, v in params.items() if k in VOICE_PARAMS}
            rec = {k: v for k, v in rec.items() if k in ("time", "kind", "pitch", "f0_hz", "level_db", "end")}
        rec["params"] = params
        records.append(rec)
        if len(records) > MAX_EVENTS:
            raise UsageError(f"more than {MAX_EVENTS} events")
    return _events_from_records(records)


def import_file(
    src: str | Path,
    dst: str | Path,
    *,
    force: bool = False,
    fmt: str | None = None,
    sample_rate: int | None = None,
) -> int:
    """Read events from ``src`` (JSON, or CSV by suffix or ``fmt``) and write the ``.spev`` file ``dst``.

    ``sample_rate`` overrides the header's (or the default 44100 Hz).  Returns the number of events written.
    Nothing is written when any field is invalid.
    """
    from sparsecodec.audio.io import ensure_writable

    ensure_writable(dst, force)
    path = Path(src)
    try:
        size = path.stat().st_size
    except OSError:
        raise InputError(f"{path}: no such file") from None
    if size > MAX_IMPORT_BYTES:
        raise UsageError(f"{path}: larger than {MAX_IMPORT_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    kind = (fmt or ("csv" if path.suffix.lower() == ".csv" else "json")).lower()
    if kind == "json":
        head, ev = parse_json(text)
    elif kind == "csv":
        head, ev = {}, parse_csv(text)
    else:
        raise UsageError(f"unknown import format {kind!r} (choose json or csv)")
    if sample_rate is not None:
        head = {**head, "sample_rate": sample_rate}
        head.pop("time_rate", None)
        head.pop("hop_samples", None)
    header = build_header(head, ev, source=path.name)
    ev = ev.replace(duration_s=header.n_samples / header.sample_rate)
    length = math.ceil(header.n_samples * header.time_rate / header.sample_rate)
    late = np.rint(ev.times_s * header.time_rate) >= length
    if late.any():
        first = int(np.argmax(late))
        raise UsageError(
            f"event at {ev.times_s[first]:g} s starts after the end of the file ({ev.duration_s:g} s)"
        )
    return write_events(dst, header, ev, force=force)
