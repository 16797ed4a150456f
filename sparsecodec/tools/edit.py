"""Event-space edits: pure functions on event lists, and :func:`edit_file` for ``.spev`` files.

An :class:`Events` holds physical vectors ``float64[N, 32]`` (``events.DIMS`` order), start times in
seconds ``float64[N]``, the clip length in seconds and the per-chunk side data as time segments.  Every
operation is a pure function ``Events -> Events``; :func:`apply_ops` composes them in the order given.

Decisions (documented for users in docs/events-tools.md):

- ``transpose``: pitch moves by the interval and, by default, so do the ``cutoff`` low-pass and the
  ``noise_centre`` band (× 2**(semitones/12)), like a tape-speed change without the time change: the timbre
  of the note keeps its shape relative to the fundamental.  ``move_filters=False`` moves pitch only.  A
  voice knot (layout 2) moves its pitch only: its envelope is in absolute frequency, so the formants stay.
- ``formant_shift``: a voice knot's envelope is warped along frequency by the ratio (formants move, pitch
  stays); notes are unchanged.
- Kinds (layout 2): ``level``, ``pitch`` and ``pan`` mean the same for notes and voice knots; selections and
  ``set`` on any other dimension act on notes only, ``perturb`` and ``stretch``'s durations on notes only
  (a voice's knots move with their times).
- ``stretch``: a time stretch without pitch change scales *every* time-like quantity by the factor: start
  times, attack, duration, release, both T60s, noise attack/decay, the room's RT60 and the clip length;
  glide (semitones/s) is divided by it so the glide interval is unchanged.  A decaying note therefore decays
  twice as slowly for factor 2 and its audible length doubles.  Vibrato rate is a performance property and
  is kept.  Values that would leave the layout's ranges are clipped (``duration`` ≤ 8 s, ``release`` ≤ 4 s).
- Selections (``keep``/``drop``) act on whole events: an event belongs to a time range when its *start*
  lies in ``[start, end)``; tails of earlier events still sound into a dropped range.  A ``pitch`` selection
  only ever selects *pitched* events (``events.is_pitched``): ``keep pitch=60:72`` keeps the pitched events
  in that range and nothing else; ``drop pitch=60:72`` leaves unpitched events alone.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sparsecodec import __version__
from sparsecodec.errors import FormatError, InputError, LimitError, UsageError
from sparsecodec.format import events, quantize

ROOM_KEY = "room"
"""Side-data key of the per-chunk room ``[rt60_s, damping]`` (DEVELOPERS.md)."""

TIME_LIKE = ("attack", "duration", "release", "t60_low", "t60_high", "noise_decay", "noise_attack")
"""Dimensions (seconds) that :func:`stretch` scales."""

MAX_EVENTS = 1 << 20
"""Bound on the events the event tools (edit, export, stems, plot, ``inspect --events``) hold in memory:
1 048 576 (≈ 270 MB of vectors; ≈ 4.9 h at the encoder's 60 events/s).  Above it they stop with
:class:`~sparsecodec.errors.LimitError` before allocating (the decoder streams and has no such bound)."""


@dataclass
class Events:
    """An editable event list.

    ``vectors``: ``float64[N, 32]`` physical units; ``times_s``: ``float64[N]`` start times in seconds
    (any order; writers sort them); ``duration_s``: clip length in seconds; ``sides``: ``[(start_s, side)]``
    — the side data (e.g. the room) in force from ``start_s`` on, sorted by ``start_s``.
    """

    vectors: np.ndarray
    times_s: np.ndarray
    duration_s: float
    sides: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, dtype=np.float64).reshape(-1, events.N_DIMS)
        self.times_s = np.asarray(self.times_s, dtype=np.float64).reshape(-1)
        if len(self.vectors) != len(self.times_s):
            raise UsageError(f"{len(self.vectors)} vectors but {len(self.times_s)} times")

    def __len__(self) -> int:
        return len(self.times_s)

    def replace(self, **changes: Any) -> Events:
        """A copy with some fields replaced."""
        return dataclasses.replace(self, **changes)

    def subset(self, mask: np.ndarray) -> Events:
        """The events where ``mask`` (bool ``[N]``) is true."""
        return self.replace(vectors=self.vectors[mask], times_s=self.times_s[mask])

    def side_at(self, t: float) -> dict[str, Any]:
        """The side data in force at time ``t`` seconds (``{}`` when none)."""
        current: dict[str, Any] = {}
        for start, side in self.sides:
            if start <= t + 1e-12:
                current = side
            else:
                break
        return current


# ---------------------------------------------------------------------------------------- operations


def _col(name: str) -> int:
    return events.INDEX[name]


SHARED_KEYS = ("level", "pitch", "pan")
"""Dimensions that mean the same for notes and voice knots (layout 2): selections and ``set`` on them act
on both kinds; on any other dimension, on notes only."""


def transpose(ev: Events, semitones: float, *, move_filters: bool = True) -> Events:
    """Move every event's pitch by ``semitones`` (and a note's cutoff and noise band, unless
    ``move_filters`` is false; a voice keeps its formants).  Values are clipped into their kind's ranges."""
    v = ev.vectors.copy()
    v[:, _col("pitch")] += semitones
    if move_filters:
        ratio = 2.0 ** (semitones / 12.0)
        notes = events.is_note(v)
        v[notes, _col("cutoff")] *= ratio
        v[notes, _col("noise_centre")] *= ratio
    return ev.replace(vectors=events.clip(v))


def formant_shift(ev: Events, ratio: float) -> Events:
    """Scale the formants (the spectral envelope's frequency axis) of every voice knot by ``ratio``; pitch,
    level and notes are unchanged."""
    if not (math.isfinite(ratio) and ratio > 0):
        raise UsageError(f"formant shift must be a positive ratio, not {ratio}")
    from sparsecodec.synth import voice

    v = ev.vectors.copy()
    sel = events.is_voice(v)
    if sel.any():
        track = voice.formant_shift(voice.from_vectors(v[sel], np.arange(int(sel.sum()))), ratio)
        col = events.VOICE_INDEX["ceps1"]
        v[sel, col : col + voice.N_CEPS] = track.ceps
    return ev.replace(vectors=events.clip(v))


def gain(ev: Events, db: float) -> Events:
    """Add ``db`` to every event's level (clipped to the layout's -90..+6 dBFS)."""
    v = ev.vectors.copy()
    v[:, _col("level")] += db
    return ev.replace(vectors=events.clip(v))


def stretch(ev: Events, factor: float) -> Events:
    """Time-stretch by ``factor`` without changing pitch (see the module docstring for what scales)."""
    if not (math.isfinite(factor) and factor > 0):
        raise UsageError(f"stretch factor must be a positive number, not {factor}")
    v = ev.vectors.copy()
    notes = events.is_note(v)  # a voice's knots move with their times; they hold no durations
    for name in TIME_LIKE:
        v[notes, _col(name)] *= factor
    v[notes, _col("glide")] /= factor
    sides = []
    for start, side in ev.sides:
        side = dict(side)
        room = side.get(ROOM_KEY)
        if room is not None and len(room) >= 1:
            side[ROOM_KEY] = [float(room[0]) * factor, *[float(x) for x in room[1:]]]
        sides.append((start * factor, side))
    return Events(events.clip(v), ev.times_s * factor, ev.duration_s * factor, sides)


def shift(ev: Events, seconds: float) -> Events:
    """Move every event by ``seconds``; the clip grows (or shrinks) by the same amount.

    Events that would start before 0 are dropped.
    """
    if not math.isfinite(seconds):
        raise UsageError("shift must be a finite number of seconds")
    times = ev.times_s + seconds
    duration = max(ev.duration_s + seconds, 0.0)
    sides = [(max(start + seconds, 0.0), side) for start, side in ev.sides]
    out = Events(ev.vectors, times, duration, _dedupe_sides(sides))
    return out.subset(times >= 0.0)


def _dedupe_sides(sides: list[tuple[float, dict[str, Any]]]) -> list[tuple[float, dict[str, Any]]]:
    """Keep the last of several segments that start at the same time."""
    out: list[tuple[float, dict[str, Any]]] = []
    for start, side in sides:
        if out and abs(out[-1][0] - start) < 1e-12:
            out[-1] = (start, side)
        else:
            out.append((start, side))
    return out


@dataclass(frozen=True)
class Selection:
    """Events whose ``key`` lies in ``[lo, hi)`` (``time`` or a dimension name; ``pitch`` → pitched only)."""

    key: str
    lo: float
    hi: float

    def mask(self, ev: Events) -> np.ndarray:
        """Bool ``[N]``: the selected events."""
        if self.key == "time":
            values = ev.times_s
        elif self.key == "kind":
            values = ev.vectors[:, events.KIND_DIM]
        else:
            values = ev.vectors[:, _col(self.key)]
        inside = (values >= self.lo) & (values < self.hi)
        if self.key == "pitch":
            inside &= events.is_pitched(ev.vectors)
        elif self.key not in (*SHARED_KEYS, "time", "kind"):  # a note's dimension: voice knots differ
            inside &= events.is_note(ev.vectors)
        return np.asarray(inside, dtype=bool)

    def describe(self) -> str:
        lo = "" if math.isinf(self.lo) else f"{self.lo:g}"
        hi = "" if math.isinf(self.hi) else f"{self.hi:g}"
        return f"{self.key}={lo}:{hi}"


def keep(ev: Events, sel: Selection) -> Events:
    """Only the selected events."""
    return ev.subset(sel.mask(ev))


def drop(ev: Events, sel: Selection) -> Events:
    """Every event except the selected ones."""
    return ev.subset(~sel.mask(ev))


def set_dim(ev: Events, name: str, value: float) -> Events:
    """Set dimension ``name`` to ``value`` (physical unit) on every note (and voice knot, for ``level``,
    ``pitch`` and ``pan``); validated against the layout."""
    check_value(name, value)
    v = ev.vectors.copy()
    rows = slice(None) if name in SHARED_KEYS else events.is_note(v)
    v[rows, _col(name)] = value
    return ev.replace(vectors=events.clip(v))


def randomize_vectors(ev: Events, rng: np.random.Generator) -> Events:
    """Replace every vector by a draw from ``events.sample_prior``; the times stay."""
    return ev.replace(vectors=events.sample_prior(rng, len(ev)))


def randomize_times(ev: Events, rng: np.random.Generator) -> Events:
    """Give every event a uniformly random start time in ``[0, duration)``; the vectors stay."""
    return ev.replace(times_s=rng.uniform(0.0, max(ev.duration_s, 0.0), len(ev)))


def perturb(ev: Events, scale: float, rng: np.random.Generator) -> Events:
    """Add Gaussian noise of standard deviation ``scale`` in the unit interval to every dimension of every
    note (voice knots are kept)."""
    if not (math.isfinite(scale) and scale >= 0):
        raise UsageError(f"perturb scale must be >= 0, not {scale}")
    unit = events.to_unit(ev.vectors) + rng.normal(0.0, scale, ev.vectors.shape)
    moved = events.clip(events.from_unit(np.clip(unit, 0.0, 1.0)))
    notes = events.is_note(ev.vectors)
    return ev.replace(vectors=np.where(notes[:, None], moved, ev.vectors))


# ---------------------------------------------------------------------------------- parsing & values


def check_value(name: str, value: float, dims: tuple[events.Dim, ...] = events.DIMS) -> None:
    """Raise :class:`UsageError` unless ``name`` is a dimension of ``dims`` (a note's, by default) and
    ``value`` a finite value in its range."""
    by_name = {d.name: d for d in dims}
    if name not in by_name:
        raise UsageError(f"unknown dimension {name!r} (known: {', '.join(by_name)})")
    d = by_name[name]
    if not math.isfinite(value):
        raise UsageError(f"{name}: value must be finite, not {value}")
    tol = 1e-9 * max(abs(d.lo), abs(d.hi), 1.0)
    if not d.lo - tol <= value <= d.hi + tol:
        raise UsageError(f"{name}={value:g} outside its range {d.lo:g}..{d.hi:g} {d.unit}")


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{what}: {text!r} is not a finite number")
    return value


_SEL_KEYS = ("time", "kind", *events.NAMES)


def parse_selection(text: str) -> Selection:
    """Parse ``[KEY=]LO:HI`` (either bound may be empty; KEY is ``time`` (the default), ``pitch``, ``level``,
    ``kind`` (0 note, 1 voice) or any dimension name; ``time`` in seconds, others in the dimension's
    unit)."""
    key, sep, rng = text.partition("=")
    if not sep:
        key, rng = "time", text
    key = key.strip()
    if key not in _SEL_KEYS:
        raise UsageError(f"cannot select by {key!r} (use time, pitch, level or a dimension name)")
    if ":" not in rng:
        raise UsageError(f"selection {text!r}: expected LO:HI (e.g. 1.5:3 or 60: or :-40)")
    lo_s, hi_s = rng.split(":", 1)
    lo = _float(lo_s, f"selection {text!r}") if lo_s.strip() else -math.inf
    hi = _float(hi_s, f"selection {text!r}") if hi_s.strip() else math.inf
    if not lo < hi:
        raise UsageError(f"selection {text!r}: empty range")
    return Selection(key, lo, hi)


def parse_assignment(text: str) -> tuple[str, float]:
    """Parse ``NAME=VALUE`` for ``--set`` and validate it against the layout."""
    name, sep, value_s = text.partition("=")
    if not sep:
        raise UsageError(f"--set {text!r}: expected NAME=VALUE")
    name = name.strip()
    if name not in events.INDEX:
        raise UsageError(f"--set: unknown dimension {name!r} (known: {', '.join(events.NAMES)})")
    value = _float(value_s, f"--set {name}")
    check_value(name, value)
    return name, value


@dataclass(frozen=True)
class Op:
    """One edit operation: ``name`` and its argument as given (``str``) — see :data:`OP_NAMES`."""

    name: str
    arg: str

    def as_dict(self) -> dict[str, str]:
        return {"op": self.name, "arg": self.arg}


OP_NAMES = (
    "transpose",
    "formant_shift",
    "gain",
    "stretch",
    "shift",
    "keep",
    "drop",
    "set",
    "randomize",
    "perturb",
)


def validate_ops(ops: Sequence[Op]) -> None:
    """Parse every operation's argument now, so a bad one fails before anything is read or written."""
    for op in ops:
        _compile(op, np.random.default_rng(0), move_filters=True)


def _compile(op: Op, rng: np.random.Generator, *, move_filters: bool) -> Callable[[Events], Events]:
    name, arg = op.name, op.arg
    if name == "transpose":
        st = _float(arg, "--transpose")
        return lambda ev: transpose(ev, st, move_filters=move_filters)
    if name == "formant_shift":
        ratio = _float(arg, "--formant-shift")
        if ratio <= 0:
            raise UsageError(f"--formant-shift: ratio must be > 0, not {arg}")
        return lambda ev: formant_shift(ev, ratio)
    if name == "gain":
        db = _float(arg, "--gain")
        return lambda ev: gain(ev, db)
    if name == "stretch":
        f = _float(arg, "--stretch")
        if f <= 0:
            raise UsageError(f"--stretch: factor must be > 0, not {arg}")
        return lambda ev: stretch(ev, f)
    if name == "shift":
        s = _float(arg, "--shift")
        return lambda ev: shift(ev, s)
    if name in ("keep", "drop"):
        sel = parse_selection(arg)
        return (lambda ev: keep(ev, sel)) if name == "keep" else (lambda ev: drop(ev, sel))
    if name == "set":
        dim, value = parse_assignment(arg)
        return lambda ev: set_dim(ev, dim, value)
    if name == "randomize":
        what = arg.strip().lower()
        if what == "vectors":
            return lambda ev: randomize_vectors(ev, rng)
        if what == "times":
            return lambda ev: randomize_times(ev, rng)
        raise UsageError(f"--randomize: expected 'vectors' or 'times', not {arg!r}")
    if name == "perturb":
        scale = _float(arg, "--perturb")
        if scale < 0:
            raise UsageError(f"--perturb: scale must be >= 0, not {arg}")
        return lambda ev: perturb(ev, scale, rng)
    raise UsageError(f"unknown edit operation {name!r}")


def apply_ops(ev: Events, ops: Iterable[Op], *, seed: int = 0, move_filters: bool = True) -> Events:
    """Apply ``ops`` in order.  Random operations draw from one generator seeded by ``seed``."""
    rng = np.random.default_rng(seed)
    for op in ops:
        ev = _compile(op, rng, move_filters=move_filters)(ev)
    return ev


# ------------------------------------------------------------------------------------ file level


def check_event_count(reader: Any, name: str) -> None:
    """Refuse (:class:`LimitError`) a seekable file whose index lists more than :data:`MAX_EVENTS` events,
    before anything is read; the running count while reading is checked by the callers."""
    entries = reader.index() if reader.seekable else None
    if entries is not None and entries.n_events > MAX_EVENTS:
        raise LimitError(
            f"{name}: {entries.n_events} events, more than the event tools take (MAX_EVENTS {MAX_EVENTS})"
        )


def read_events(src: str | Path, *, max_duration_s: float | None = None) -> tuple[Any, Events]:
    """Read a ``.spev`` file: ``(header, Events)`` (vectors dequantised with the header's table).

    The container's limits apply (``max_duration_s`` as for ``codec.decode_file``), and at most
    :data:`MAX_EVENTS` events are read (:class:`LimitError`, checked from the index before reading)."""
    from sparsecodec.format.container import MAX_DURATION_S, Reader

    path = Path(src)
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with f:
        reader = Reader(f, max_duration_s=max_duration_s or MAX_DURATION_S)
        header = reader.header
        check_event_count(reader, str(path))
        table = quantize.validate_table(header.table)
        rate = float(header.time_rate)
        vecs: list[np.ndarray] = []
        times: list[np.ndarray] = []
        sides: list[tuple[float, dict[str, Any]]] = []
        total = 0
        for chunk in reader:
            total += len(chunk.times)
            if total > MAX_EVENTS:
                raise LimitError(f"{path}: more than the event tools take (MAX_EVENTS {MAX_EVENTS})")
            vecs.append(quantize.dequantize(chunk.codes, table))
            times.append(np.asarray(chunk.times, dtype=np.int64) / rate)
            sides.append((chunk.start / rate, dict(chunk.side or {})))
    vectors = np.concatenate(vecs) if vecs else np.zeros((0, events.N_DIMS))
    times_s = np.concatenate(times) if times else np.zeros(0)
    duration = header.n_samples / float(header.sample_rate)
    return header, Events(vectors, times_s, duration, sides)


def to_chunks(ev: Events, header: Any, *, keep_empty: bool = False) -> list[Any]:
    """Quantise ``ev`` with ``header.table`` and cut it into chunks of ``header.hop_samples`` (at
    ``header.time_rate``).  Events outside ``[0, length)`` are dropped; times are rounded to samples.
    Hops without events get no chunk unless ``keep_empty`` (the format allows gaps between chunks)."""
    from sparsecodec.format.container import Chunk

    table = quantize.validate_table(header.table)
    rate = int(header.time_rate)
    hop = int(header.hop_samples)
    if hop <= 0:
        raise UsageError("header hop_samples must be positive")
    length = math.ceil(header.n_samples * rate / header.sample_rate)
    ticks = np.rint(ev.times_s * rate).astype(np.int64)
    inside = (ticks >= 0) & (ticks < length)
    order = np.argsort(ticks[inside], kind="stable")
    ticks = ticks[inside][order]
    codes = quantize.quantize(ev.vectors[inside][order], table)
    n_chunks = max(1, -(-length // hop))
    bounds = np.searchsorted(ticks, np.arange(n_chunks + 1) * hop, side="left")
    chunks: list[Any] = []
    for i in range(n_chunks):
        a, b = int(bounds[i]), int(bounds[i + 1]) if i + 1 < n_chunks else len(ticks)
        if a == b and not keep_empty:
            continue
        start = i * hop
        side = ev.side_at(start / rate)
        chunks.append(
            Chunk(
                index=len(chunks),
                start=start,
                length=max(min(hop, length - start), 1),
                times=ticks[a:b].copy(),
                codes=codes[a:b].copy(),
                side=dict(side),
            )
        )
    return chunks


def history_entry(ops: Sequence[Op], *, seed: int, move_filters: bool, n_in: int, n_out: int) -> dict:
    """The edit-history record appended to ``Header.history``."""
    return {
        "software": f"spev {__version__}",
        "command": "edit",
        "ops": [op.as_dict() for op in ops],
        "seed": int(seed),
        "move_filters": bool(move_filters),
        "events_in": int(n_in),
        "events_out": int(n_out),
    }


def _check_output_limits(header: Any, n_events: int) -> None:
    """The file :func:`write_events` would write must be one the readers take (:class:`UsageError`: the
    edit or import asks for it): duration, hops and the event count, checked before anything is allocated."""
    from sparsecodec.format.container import check_header_limits

    try:
        check_header_limits(header)
    except FormatError as exc:
        raise UsageError(f"the output would be out of bounds: {exc}") from None
    if n_events > MAX_EVENTS:
        raise UsageError(f"the output would hold {n_events} events (MAX_EVENTS {MAX_EVENTS})")


def write_events(dst: str | Path, header: Any, ev: Events, *, force: bool, entry: dict | None = None) -> int:
    """Write ``ev`` as a ``.spev`` file at ``dst`` (atomically), with ``header``'s table, hop and provenance
    and ``entry`` appended to its history.  ``header.n_samples`` is set from ``ev.duration_s``.
    Returns the number of events written."""
    from sparsecodec.audio.io import atomic_output, ensure_writable
    from sparsecodec.format.container import Writer

    ensure_writable(dst, force)
    n_samples = max(round(ev.duration_s * header.sample_rate), 1)
    history = list(header.history or [])
    if entry is not None:
        history.append(entry)
    new_header = dataclasses.replace(
        header, n_samples=n_samples, history=history, software=f"spev {__version__}"
    )
    _check_output_limits(new_header, len(ev))
    chunks = to_chunks(ev, new_header)
    n_out = int(sum(len(c.times) for c in chunks))
    if entry is not None:
        entry["events_out"] = n_out
    try:
        with atomic_output(dst, overwrite=force) as f:
            writer = Writer(f, new_header)
            for chunk in chunks:
                writer.write_chunk(chunk)
            writer.close()
    except LimitError as exc:  # e.g. more events per second than a reader takes
        raise UsageError(f"the output would be out of bounds: {exc}") from None
    return n_out


def edit_file(
    src: str | Path,
    dst: str | Path,
    ops: Sequence[Op],
    *,
    force: bool = False,
    seed: int = 0,
    move_filters: bool = True,
) -> tuple[int, int]:
    """Read ``src``, apply ``ops`` in order, write ``dst`` (see :func:`write_events`).

    Every operation is validated before anything is read or written; an existing ``dst`` is refused
    unless ``force``.  Returns ``(events_in, events_out)``.
    """
    from sparsecodec.audio.io import ensure_writable

    validate_ops(ops)
    ensure_writable(dst, force)
    if Path(dst).resolve() == Path(src).resolve():
        raise UsageError(f"{dst}: output would overwrite the input")
    header, ev = read_events(src)
    n_in = len(ev)
    out = apply_ops(ev, ops, seed=seed, move_filters=move_filters)
    entry = history_entry(ops, seed=seed, move_filters=move_filters, n_in=n_in, n_out=len(out))
    n_out = write_events(dst, header, out, force=force, entry=entry)
    return n_in, n_out
