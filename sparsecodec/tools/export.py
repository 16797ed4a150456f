"""Export events to JSON, CSV and MIDI; import JSON/CSV events back into ``.spev`` files.

JSON: ``{"format": "spev-events", "version": 1, "header": {...}, "events": [...]}``.  Each event is::

    {"time": 1.25,            # start, seconds
     "pitch": 60.02,          # MIDI float; null when unpitched (events.is_pitched)
     "f0_hz": 262.0,          # null when unpitched
     "level_db": -18.0,       # dBFS
     "params": {"level": -18.0, "pitch": 60.02, ...}}   # all 32 dimensions by name, physical units

``params`` always holds every dimension (the pitch of an unpitched event included), which is what makes
export → import lossless at quantised precision: every value is printed with Python's shortest round-trip
repr, so it re-quantises to the same code.  CSV has the same columns flattened (``time, pitch, f0_hz,
level_db, params.level, ..., params.reserved`` — what ``pandas.json_normalize`` makes of the JSON).

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
DERIVED = ("time", "pitch", "f0_hz", "level_db")
"""Top-level per-event fields besides ``params``."""
CSV_COLUMNS = (*DERIVED, *(f"params.{name}" for name in events.NAMES))

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


def event_records(ev: Events) -> list[dict[str, Any]]:
    """One JSON-compatible dict per event, in time order (see the module docstring)."""
    order = np.argsort(ev.times_s, kind="stable")
    pitched = events.is_pitched(ev.vectors)
    out = []
    for i in order:
        v = ev.vectors[i]
        pitch = float(v[events.INDEX["pitch"]])
        is_p = bool(pitched[i])
        out.append(
            {
                "time": float(ev.times_s[i]),
                "pitch": pitch if is_p else None,
                "f0_hz": float(events.pitch_to_hz(pitch)) if is_p else None,
                "level_db": float(v[events.INDEX["level"]]),
                "params": {name: float(v[j]) for j, name in enumerate(events.NAMES)},
            }
        )
    return out


def to_json(header: Any, ev: Events) -> str:
    """The JSON document (text, one event per line for readable diffs)."""
    head = json.dumps(header_record(header), allow_nan=False, sort_keys=True)
    lines = [json.dumps(rec, allow_nan=False) for rec in event_records(ev)]
    body = ",\n  ".join(lines)
    events_part = f"[\n  {body}\n]" if lines else "[]"
    return (
        f'{{"format": "{FORMAT_NAME}", "version": {FORMAT_VERSION}, "software": "spev {__version__}",\n'
        f' "header": {head},\n "events": {events_part}}}\n'
    )


def to_csv(ev: Events) -> str:
    """CSV text with :data:`CSV_COLUMNS` (empty cells for nulls)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rec in event_records(ev):
        row = [rec[k] for k in DERIVED] + [rec["params"][name] for name in events.NAMES]
        writer.writerow(["" if x is None else repr(float(x)) for x in row])
    return buf.getvalue()


def midi_velocity(level_db: np.ndarray) -> np.ndarray:
    """MIDI velocity 1..127 from a level in dBFS: ``dB = 40 log10(velocity / 127)`` (velocity² ∝ power)."""
    vel = np.rint(127.0 * 10.0 ** (np.asarray(level_db, dtype=np.float64) / 40.0))
    return np.clip(vel, 1, 127).astype(np.int64)


def note_lengths_s(vectors: np.ndarray) -> np.ndarray:
    """Sounding length of each note for MIDI (seconds): onset to release start (attack + duration),
    shortened to the slower T60 for notes that die away while held; at least 10 ms."""
    v = np.asarray(vectors, dtype=np.float64)
    c = events.INDEX
    hold = v[:, c["attack"]] + v[:, c["duration"]]
    decay = np.maximum(v[:, c["t60_low"]], v[:, c["t60_high"]])
    return np.maximum(np.minimum(hold, decay), 0.01)


def to_midi(ev: Events, *, pitch_bend: bool = False) -> bytes:
    """A Standard MIDI File (type 0, 120 bpm, 480 ticks/beat) of the pitched events.

    Note = round(pitch); velocity from level (:func:`midi_velocity`); length from :func:`note_lengths_s`.
    With ``pitch_bend`` each note gets its own channel (round robin, drum channel 10 skipped) and a bend
    for its fractional pitch (±2 semitone range).
    """
    import mido

    pitched = events.is_pitched(ev.vectors)
    v = ev.vectors[pitched]
    t = ev.times_s[pitched]
    pitch = v[:, events.INDEX["pitch"]]
    notes = np.clip(np.rint(pitch), 0, 127).astype(np.int64)
    vel = midi_velocity(v[:, events.INDEX["level"]])
    ends = t + note_lengths_s(v)
    ticks_per_s = MIDI_TICKS_PER_BEAT * 1e6 / MIDI_TEMPO_US
    channels = [c for c in range(16) if c != 9]
    # (tick, order, message): note-offs sort before note-ons at the same tick.
    timeline: list[tuple[int, int, int, Any]] = []
    for k in range(len(t)):
        ch = channels[k % len(channels)] if pitch_bend else 0
        on = round(float(t[k]) * ticks_per_s)
        off = max(round(float(ends[k]) * ticks_per_s), on + 1)
        if pitch_bend:
            bend = int(np.clip(round((pitch[k] - notes[k]) / MIDI_BEND_RANGE * 8192), -8192, 8191))
            timeline.append((on, 1, k, mido.Message("pitchwheel", channel=ch, pitch=bend)))
        timeline.append(
            (on, 2, k, mido.Message("note_on", channel=ch, note=int(notes[k]), velocity=int(vel[k])))
        )
        timeline.append((off, 0, k, mido.Message("note_off", channel=ch, note=int(notes[k]), velocity=0)))
    timeline.sort(key=lambda item: (item[0], item[1], item[2]))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=MIDI_TEMPO_US, time=0))
    now = 0
    for tick, _, _, msg in timeline:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    mid = mido.MidiFile(type=0, ticks_per_beat=MIDI_TICKS_PER_BEAT)
    mid.tracks.append(track)
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def export_bytes(src: str | Path, fmt: str, *, pitch_bend: bool = False) -> bytes:
    """Read ``src`` and return its export in ``fmt`` (``json``, ``csv`` or ``midi``) as bytes."""
    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {fmt!r} (choose {', '.join(EXPORT_FORMATS)})")
    header, ev = read_events(src)
    if fmt == "json":
        return to_json(header, ev).encode("utf-8")
    if fmt == "csv":
        return to_csv(ev).encode("utf-8")
    return to_midi(ev, pitch_bend=pitch_bend)


def export_file(
    src: str | Path, dst: str | Path | BinaryIO, fmt: str, *, force: bool = False, pitch_bend: bool = False
) -> int:
    """Export ``src`` to ``dst`` (a path, written atomically, or a binary stream).  Returns bytes written."""
    data = export_bytes(src, fmt, pitch_bend=pitch_bend)
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
        if key in ("time", "params"):
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
    if layout != events.LAYOUT_VERSION:
        raise UsageError(f"header.layout_version {layout}: this spev writes layout {events.LAYOUT_VERSION}")
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
        table = quantize.validate_table(head["table"]) if head.get("table") else quantize.TABLES["default"]
    except quantize.TableError as exc:
        raise UsageError(f"header.table: {exc}") from None
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
            if name.startswith("params."):
                if value is not None:
                    params[name[len("params.") :]] = value
            else:
                rec[name] = value
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
