"""The ``.spev`` container: reader and writer (``formats/spev.md`` is normative; no torch import).

A file is a header (magic, format version, CRC-protected msgpack map), one independent chunk per
streaming hop (sync + length + zstd-compressed body + CRC-32), an index of chunk offsets and a fixed
20-byte trailer that doubles as the end-of-stream marker.  Everything is little-endian.  Format versions
differ only in the chunk body: format 1 stores bit planes of the raw codes, format 2 (written by default)
predicted, zig-zag coded columns (:mod:`sparsecodec.format.coding`).  The writer never seeks (pipes work)
and is deterministic; the reader checks every length against a bound before allocating, and raises only
:class:`~sparsecodec.errors.FormatError` subclasses for bad input.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, overload

import msgpack
import numpy as np
import zstandard

from sparsecodec import __version__
from sparsecodec.errors import (
    BadMagicError,
    ChecksumError,
    FormatError,
    LimitError,
    NewerVersionError,
    TruncatedError,
    UnsupportedLayoutError,
    UsageError,
)
from sparsecodec.format import coding, events, quantize

# --------------------------------------------------------------------------------------------- constants

MAGIC = b"SPEV"
FORMAT_VERSION = 2
"""Container format version written by default (one byte after the magic)."""
FORMAT_VERSIONS = (1, 2)
"""Format versions this module reads and can write: 1 (bit-plane bodies, formats/spev.md §4.1) and 2
(predicted columns, §4.4).  Every version is read forever; ``Writer(format_version=1)`` serves old readers."""
SUPPORTED_LAYOUTS = frozenset(events.LAYOUTS)
"""Event layout versions this reader accepts (layout 0 was never written by a released encoder)."""

CHUNK_SYNC = b"SPCK"
INDEX_SYNC = b"SPIX"
TRAILER_SYNC = b"SPND"

MAX_HEADER_BYTES = 1 << 20
"""Largest msgpack header (bytes)."""
MAX_CHUNK_BYTES = 1 << 23
"""Largest chunk payload as stored (fixed fields + compressed body), bytes."""
MAX_CHUNK_RAW_BYTES = 1 << 23
"""Largest decompressed chunk body, bytes."""
MAX_EVENTS_PER_CHUNK = 1 << 16
MAX_CHUNKS = 1 << 20
"""Bound on chunks in a file, and on the hops of its declared length (``ceil(length / hop_samples)``)."""
MAX_DURATION_S = 86_400.0
"""Default bound (s) on the duration ``n_samples / sample_rate``: 24 h (``max_duration_s`` raises it)."""
MAX_EVENTS_PER_S = 1000
"""Bound on the event rate (events/s): per chunk (``length / time_rate`` seconds, at least 1 s) and over the
whole file (``max(duration, 1 s)``).  The encoder writes 20-60/s and never more than 200/s."""
MAX_EVENTS = 1 << 25
"""Bound on the events of one file (33 554 432: 24 h at the encoder's ceiling of 200/s is 17.3 M)."""
MAX_INDEX_BYTES = 4 + 28 * MAX_CHUNKS
MAX_TIME = 1 << 48
"""Bound on any time or length in samples at ``time_rate`` (and on ``n_samples``)."""
MAX_CHUNK_LENGTH = (1 << 32) - 1
MAX_RATE = 1 << 20
MAX_CHANNELS = 64
MAX_STRING_BYTES = 1024
"""Bound on ``encoder_id``, ``weights_hash`` and ``software``."""
MAX_TAGS = 256
MAX_TAG_KEY_BYTES = 256
MAX_TAG_VALUE_BYTES = 1 << 16
MAX_HISTORY = 4096
MAX_SIDE_BYTES = 1 << 16
MAX_SIDE_KEYS = 16
MAX_SIDE_KEY_BYTES = 64
MAX_SIDE_VALUES = 1024
MAX_SUPPORT_S = events.MAX_SUPPORT_S
"""Bound (s) on one event's support; :meth:`Reader.chunks_for` pre-rolls by it."""

ZSTD_LEVEL = 19
_ZSTD_MAX_WINDOW = 1 << 23
METHOD_STORED = 0
METHOD_ZSTD = 1

_HEADER_FIXED = struct.Struct("<BBII")  # format version, method, stored length, raw length
_CHUNK_FIXED = struct.Struct("<IQIIIB")  # index, start, length, n_events, raw_len, method
_INDEX_ENTRY = struct.Struct("<QIQII")  # offset, index, start, length, n_events
_TRAILER = struct.Struct("<4sQI")  # sync, index offset, n_chunks (+ CRC-32 of these 16 bytes)
TRAILER_BYTES = _TRAILER.size + 4
_U32 = struct.Struct("<I")
_READ_BLOCK = 1 << 16


# ---------------------------------------------------------------------------------------------- records


@dataclass
class Header:
    """File header (a msgpack map in the file; see formats/spev.md §Header)."""

    layout_version: int
    encoder_id: str
    weights_hash: str
    sample_rate: int
    channels: int
    n_samples: int
    """Length of the original audio, samples at ``sample_rate``."""
    time_rate: int
    """Event times are integer samples at this rate."""
    hop_samples: int
    """Chunk hop, samples at ``time_rate``."""
    table: quantize.Table = field(default_factory=quantize.default_table)
    """Layout 1: a list of 32 entries; layout 2: one list per event kind (formats/spev.md §6)."""
    settings: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    software: str = f"spev {__version__}"
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        """Duration of the original audio in seconds."""
        return self.n_samples / self.sample_rate

    def to_dict(self) -> dict[str, Any]:
        """The header as the plain map stored in the file (keys in file order)."""
        return {
            "layout_version": self.layout_version,
            "encoder_id": self.encoder_id,
            "weights_hash": self.weights_hash,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "n_samples": self.n_samples,
            "time_rate": self.time_rate,
            "hop_samples": self.hop_samples,
            "table": quantize.table_name(self.table) or self.table,
            "settings": self.settings,
            "tags": self.tags,
            "software": self.software,
            "history": self.history,
        }

    @classmethod
    def from_dict(cls, d: Any) -> Header:
        """Validate a decoded header map; raises a :class:`FormatError` subclass."""
        if not isinstance(d, dict):
            raise FormatError("header is not a map")
        missing = [k for k in _HEADER_KEYS if k not in d]
        if missing:
            raise FormatError(f"header lacks {', '.join(missing)}")
        layout = _int(d["layout_version"], "layout_version", 0, 1 << 31)
        if layout not in SUPPORTED_LAYOUTS:
            raise UnsupportedLayoutError(
                f"event layout {layout} is not supported (this decoder reads {sorted(SUPPORTED_LAYOUTS)})"
            )
        try:
            table = quantize.resolve_table(d["table"])
        except quantize.TableError as exc:
            raise FormatError(f"bad quantisation table: {exc}") from None
        check_table_layout(table, layout)
        settings = d["settings"]
        if not isinstance(settings, dict) or not all(isinstance(k, str) for k in settings):
            raise FormatError("header settings must be a map with string keys")
        history = d["history"]
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise FormatError("header history must be a list of maps")
        if len(history) > MAX_HISTORY:
            raise LimitError(f"history has {len(history)} entries (max {MAX_HISTORY})")
        return cls(
            layout_version=layout,
            encoder_id=_str(d["encoder_id"], "encoder_id", MAX_STRING_BYTES),
            weights_hash=_str(d["weights_hash"], "weights_hash", MAX_STRING_BYTES),
            sample_rate=_int(d["sample_rate"], "sample_rate", 1, MAX_RATE),
            channels=_int(d["channels"], "channels", 1, MAX_CHANNELS),
            n_samples=_int(d["n_samples"], "n_samples", 0, MAX_TIME),
            time_rate=_int(d["time_rate"], "time_rate", 1, MAX_RATE),
            hop_samples=_int(d["hop_samples"], "hop_samples", 1, MAX_CHUNK_LENGTH),
            table=table,
            settings=settings,
            tags=check_tags(d["tags"]),
            software=_str(d["software"], "software", MAX_STRING_BYTES),
            history=history,
        )


def check_table_layout(table: quantize.Table, layout: int) -> None:
    """A layout-1 header carries a list table, a layout-2 header a table per kind (FormatError)."""
    if quantize.table_layout(table) != layout:
        raise FormatError(f"the quantisation table does not fit event layout {layout}")


_HEADER_KEYS = (
    "layout_version",
    "encoder_id",
    "weights_hash",
    "sample_rate",
    "channels",
    "n_samples",
    "time_rate",
    "hop_samples",
    "table",
    "settings",
    "tags",
    "software",
    "history",
)


@dataclass(eq=False)
class Chunk:
    """One hop of events: time range ``[start, start + length)`` in samples at ``time_rate``."""

    index: int
    start: int
    length: int
    times: np.ndarray
    """``int64[N]`` absolute start times at ``time_rate``, ascending, inside the range."""
    codes: np.ndarray
    """``uint16[N, 32]`` quantised vectors (header's table)."""
    side: dict[str, Any] = field(default_factory=dict)
    """Typed side data, e.g. ``{"room": [rt60_s, damping]}`` (float32 values)."""

    @property
    def end(self) -> int:
        """End of the time range (exclusive), samples at ``time_rate``."""
        return self.start + self.length


@dataclass(frozen=True)
class IndexEntry:
    """One index row: where a chunk starts in the stream and what it covers."""

    offset: int
    index: int
    start: int
    length: int
    n_events: int


_INDEX_DTYPE = np.dtype(
    [("offset", "<u8"), ("index", "<u4"), ("start", "<u8"), ("length", "<u4"), ("n_events", "<u4")]
)
"""One packed 28-byte index entry (the file's layout, §5)."""


class ChunkIndex(Sequence[IndexEntry]):
    """The chunk index as a read-only sequence of :class:`IndexEntry`, stored packed (28 bytes per entry,
    ``numpy`` structured array ``rows``): :data:`MAX_CHUNKS` entries cost 28 MiB, not millions of objects."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @overload
    def __getitem__(self, i: int) -> IndexEntry: ...
    @overload
    def __getitem__(self, i: slice) -> list[IndexEntry]: ...
    def __getitem__(self, i: int | slice) -> IndexEntry | list[IndexEntry]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        r = self.rows[i]
        return IndexEntry(int(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChunkIndex):
            return bool(np.array_equal(self.rows, other.rows))
        if isinstance(other, Sequence):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ChunkIndex({len(self)} entries)"

    @property
    def n_events(self) -> int:
        """Events over all entries."""
        return int(self.rows["n_events"].sum(dtype=np.int64))


@dataclass
class Summary:
    """Totals of a file: durations in seconds, sizes in bytes; ``kbps`` when the size is known."""

    duration_s: float
    n_chunks: int
    n_events: int
    events_per_s: float
    file_bytes: int | None
    kbps: float | None
    bytes_per_event: float | None
    format_version: int = FORMAT_VERSION
    chunk_bytes: int | None = None
    """Bytes of the chunk frames (sync to CRC, all chunks): what the events cost without header and index."""
    chunk_bytes_per_event: float | None = None


# -------------------------------------------------------------------------------------- field validation


def _int(v: Any, name: str, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise FormatError(f"header field {name} must be an integer")
    if not lo <= v <= hi:
        raise LimitError(f"header field {name} = {v} outside {lo}..{hi}")
    return v


def _str(v: Any, name: str, max_bytes: int) -> str:
    if not isinstance(v, str):
        raise FormatError(f"{name} must be a string")
    if len(v.encode("utf-8", "surrogatepass")) > max_bytes:
        raise LimitError(f"{name} is longer than {max_bytes} bytes")
    return v


def check_tags(v: Any) -> dict[str, str]:
    """``v`` as tags within the format's limits (:data:`MAX_TAGS` entries, keys up to
    :data:`MAX_TAG_KEY_BYTES`, values up to :data:`MAX_TAG_VALUE_BYTES` of UTF-8): the one set of tag limits,
    for files read and files written.  Raises :class:`LimitError` / :class:`FormatError`."""
    if not isinstance(v, dict):
        raise FormatError("tags must be a map")
    if len(v) > MAX_TAGS:
        raise LimitError(f"{len(v)} tags (max {MAX_TAGS})")
    return {
        _str(k, "tag key", MAX_TAG_KEY_BYTES): _str(x, "tag value", MAX_TAG_VALUE_BYTES) for k, x in v.items()
    }


def _side(v: Any) -> dict[str, list[float]]:
    """Validate side data: ``{str: [finite float32, ...]}``; ``room`` is ``[rt60_s >= 0, damping]``."""
    if not isinstance(v, dict):
        raise FormatError("side data must be a map")
    if len(v) > MAX_SIDE_KEYS:
        raise LimitError(f"side data has {len(v)} keys (max {MAX_SIDE_KEYS})")
    out: dict[str, list[float]] = {}
    for key, values in v.items():
        _str(key, "side-data key", MAX_SIDE_KEY_BYTES)
        if isinstance(values, np.ndarray):
            values = values.tolist()
        if not isinstance(values, (list, tuple)) or len(values) > MAX_SIDE_VALUES:
            raise FormatError(f"side data {key!r} must be a list of at most {MAX_SIDE_VALUES} numbers")
        if not all(
            isinstance(x, (int, float, np.floating, np.integer)) and not isinstance(x, bool) for x in values
        ):
            raise FormatError(f"side data {key!r} must hold numbers")
        arr = np.asarray(values, dtype=np.float64).astype(np.float32)
        if not np.isfinite(arr).all():
            raise FormatError(f"side data {key!r} is not finite")
        if key == "room" and (arr.size != 2 or arr[0] < 0):
            raise FormatError("side data 'room' must be [rt60_s >= 0, damping]")
        out[key] = [float(x) for x in arr]
    return out


def _unpack_msgpack(data: bytes, what: str) -> Any:
    """Decode one msgpack object from ``data`` (bounded by its length; no ext types)."""

    def no_ext(code: int, payload: bytes) -> Any:
        raise FormatError(f"{what}: msgpack extension types are not allowed")

    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=no_ext)
    except FormatError:
        raise
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise FormatError(f"{what} is not valid msgpack: {exc}") from None


def _plain(obj: Any) -> Any:
    """``default`` hook for msgpack: numpy scalars/arrays to Python values."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    raise FormatError(f"cannot store a {type(obj).__name__} in a .spev header")


def _crc(*parts: bytes) -> int:
    crc = 0
    for p in parts:
        crc = zlib.crc32(p, crc)
    return crc & 0xFFFFFFFF


# ----------------------------------------------------------------------------------------- chunk bodies


def _widths(table: quantize.Table) -> np.ndarray:
    return quantize.column_widths(table)


def _chunk_arrays(chunk: Chunk, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(times int64[n], codes int64[n, 32], deltas int64[n])`` of a chunk to write (raises
    FormatError / LimitError): shapes, integer types, ascending times inside the range, codes within the
    table's widths."""
    times = np.asarray(chunk.times)
    codes = np.asarray(chunk.codes)
    n = times.shape[0] if times.ndim == 1 else -1
    if n < 0 or codes.shape != (n, events.N_DIMS):
        raise FormatError(f"chunk {chunk.index}: times must be [N] and codes [N, {events.N_DIMS}]")
    if n > MAX_EVENTS_PER_CHUNK:
        raise LimitError(f"chunk {chunk.index} has {n} events (max {MAX_EVENTS_PER_CHUNK})")
    if n and not (np.issubdtype(times.dtype, np.integer) and np.issubdtype(codes.dtype, np.integer)):
        raise FormatError(f"chunk {chunk.index}: times and codes must be integers")
    t = times.astype(np.int64)
    c = codes.astype(np.int64)
    deltas = np.diff(t, prepend=np.int64(chunk.start))
    if n and (deltas.min() < 0 or t[-1] >= chunk.start + chunk.length):
        raise FormatError(f"chunk {chunk.index}: times must ascend inside [{chunk.start}, {chunk.end})")
    if n and ((c < 0).any() or (c >> widths).any()):
        raise FormatError(f"chunk {chunk.index}: a code exceeds its dimension's table width")
    return t, c, deltas


def _side_bytes(chunk: Chunk) -> bytes:
    """The chunk's side data, validated and packed (msgpack, float32 values)."""
    side = _side(chunk.side)
    side_bytes = msgpack.packb(side, use_single_float=True) if side else b""
    if len(side_bytes) > MAX_SIDE_BYTES:
        raise LimitError(f"chunk {chunk.index}: side data over {MAX_SIDE_BYTES} bytes")
    return bytes(side_bytes)


def _encode_body(chunk: Chunk, widths: np.ndarray) -> tuple[bytes, int]:
    """Chunk → (raw format-1 body bytes, n_events).  Validates the chunk against the table (FormatError)."""
    _, c, deltas = _chunk_arrays(chunk, widths)
    n = len(deltas)
    tb = int(deltas.max(initial=0)).bit_length()
    cols = [deltas] + [c[:, d] for d in range(events.N_DIMS) if widths[d]]
    col_bits = [tb] + [int(w) for w in widths if w]
    planes = [
        (col[None, :] >> np.arange(b - 1, -1, -1)[:, None]) & 1
        for col, b in zip(cols, col_bits, strict=True)
        if b
    ]
    packed = np.packbits(np.concatenate(planes).astype(np.uint8)).tobytes() if planes and n else b""
    side_bytes = _side_bytes(chunk)
    return bytes([tb]) + _U32.pack(len(side_bytes)) + packed + side_bytes, n


def _encode_body_v2(chunk: Chunk, widths: np.ndarray, plan: coding.Plan) -> tuple[bytes, int]:
    """Chunk → (raw format-2 body bytes, n_events) (§4.4).  Validates the chunk as :func:`_encode_body`."""
    t, c, _ = _chunk_arrays(chunk, widths)
    body = coding.encode_body(
        t, c, chunk.start, _side_bytes(chunk), plan, measure=lambda b: len(_compress(b)[1])
    )
    return body, len(t)


def _decode_body(
    body: bytes, n: int, start: int, length: int, widths: np.ndarray, index: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Raw format-1 body → (times int64[N], codes uint16[N, 32], side).  Checks the exact layout."""
    if len(body) < 5:
        raise FormatError(f"chunk {index}: body too short")
    tb = body[0]
    if tb > 32:
        raise FormatError(f"chunk {index}: time-delta width {tb} > 32")
    (side_len,) = _U32.unpack_from(body, 1)
    if side_len > MAX_SIDE_BYTES:
        raise LimitError(f"chunk {index}: side data of {side_len} bytes (max {MAX_SIDE_BYTES})")
    col_bits = [tb] + [int(w) for w in widths if w]
    n_bits = n * sum(col_bits)
    n_packed = (n_bits + 7) // 8
    if len(body) != 5 + n_packed + side_len:
        raise FormatError(
            f"chunk {index}: body is {len(body)} bytes, its fields say {5 + n_packed + side_len}"
        )
    packed = np.frombuffer(body, dtype=np.uint8, count=n_packed, offset=5)
    bits = np.unpackbits(packed)
    if bits[n_bits:].any():
        raise FormatError(f"chunk {index}: nonzero padding bits")
    times = np.zeros(0, np.int64)
    codes = np.zeros((n, events.N_DIMS), dtype=np.uint16)
    if n:
        planes = bits[:n_bits].reshape(-1, n)  # uint8 [sum(col_bits), n]: no int64 copy of every plane
        cols: list[np.ndarray] = []
        row = 0
        for b in col_bits:
            col = np.zeros(n, np.int64)
            for k in range(row, row + b):
                col <<= 1
                col |= planes[k]
            cols.append(col)
            row += b
        times = start + np.cumsum(cols[0])
        if times[-1] >= start + length:
            raise FormatError(
                f"chunk {index}: event time {int(times[-1])} outside [{start}, {start + length})"
            )
        for d, col in zip(np.flatnonzero(widths), cols[1:], strict=True):
            codes[:, d] = col
    side: dict[str, Any] = {}
    if side_len:
        side = _side(_unpack_msgpack(body[5 + n_packed :], f"chunk {index} side data"))
    return times.astype(np.int64), codes, side


def _decode_body_v2(
    body: bytes, n: int, start: int, length: int, plan: coding.Plan, index: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Raw format-2 body → (times int64[N], codes uint16[N, 32], side) (§4.4).  Checks the exact layout."""
    times, codes, side_bytes = coding.decode_body(body, n, start, length, plan, index, MAX_SIDE_BYTES)
    side: dict[str, Any] = {}
    if side_bytes:
        side = _side(_unpack_msgpack(side_bytes, f"chunk {index} side data"))
    return times, codes, side


def _compress(raw: bytes) -> tuple[int, bytes]:
    cctx = zstandard.ZstdCompressor(
        level=ZSTD_LEVEL, write_content_size=False, write_checksum=False, write_dict_id=False
    )
    z = cctx.compress(raw)
    return (METHOD_ZSTD, z) if len(z) < len(raw) else (METHOD_STORED, raw)


def _decompress(data: bytes, raw_len: int, what: str) -> bytes:
    """zstd frame → exactly ``raw_len`` bytes, never allocating more than ``raw_len``."""
    try:
        params = zstandard.get_frame_parameters(data)
        if params.window_size > _ZSTD_MAX_WINDOW:
            raise LimitError(f"{what}: zstd window {params.window_size} too large")
        if params.content_size not in (zstandard.CONTENTSIZE_UNKNOWN, raw_len):
            raise FormatError(f"{what}: zstd content size disagrees with the stored length")
        dctx = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
        out = dctx.decompress(data, max_output_size=raw_len) if raw_len else b""
    except zstandard.ZstdError as exc:
        raise FormatError(f"{what}: bad zstd data: {exc}") from None
    if len(out) != raw_len:
        raise FormatError(f"{what}: decompresses to {len(out)} bytes, expected {raw_len}")
    return out


def _unpack_body(method: int, data: bytes, raw_len: int, what: str) -> bytes:
    """Stored or zstd body → raw bytes (exactly ``raw_len``)."""
    if method == METHOD_ZSTD:
        return _decompress(data, raw_len, what)
    if method == METHOD_STORED:
        if len(data) != raw_len:
            raise FormatError(f"{what}: stored body is {len(data)} bytes, expected {raw_len}")
        return data
    raise FormatError(f"{what}: unknown compression method {method}")


def chunk_file_bytes(
    times: np.ndarray, codes: np.ndarray, start: int, length: int, table: quantize.Table
) -> int:
    """Bytes a chunk of these events adds to a file of the current format: its frame (sync, length,
    payload, CRC) and its index entry.  What an encoder weighing candidate events against a bit budget
    counts."""
    chunk = Chunk(0, start, length, np.asarray(times, np.int64), np.asarray(codes, np.uint16))
    payload, _ = encode_chunk_payload(chunk, _widths(table), coding.plan(table))
    return len(_frame(CHUNK_SYNC, payload)) + _INDEX_ENTRY.size


def encode_chunk_payload(
    chunk: Chunk, widths: np.ndarray, plan: coding.Plan | None = None
) -> tuple[bytes, int]:
    """Chunk → (frame payload, n_events): fixed fields + (compressed) body; a format-2 body when ``plan``
    (:func:`coding.plan` of the table) is given, else format 1."""
    raw, n = _encode_body(chunk, widths) if plan is None else _encode_body_v2(chunk, widths, plan)
    if len(raw) > MAX_CHUNK_RAW_BYTES:
        raise LimitError(f"chunk {chunk.index}: body of {len(raw)} bytes (max {MAX_CHUNK_RAW_BYTES})")
    method, data = _compress(raw)
    fixed = _CHUNK_FIXED.pack(chunk.index, chunk.start, chunk.length, n, len(raw), method)
    return fixed + data, n


def decode_chunk_payload(
    payload: bytes,
    widths: np.ndarray,
    check: Callable[[int, int, int, int], None] | None = None,
    plan: coding.Plan | None = None,
) -> Chunk:
    """Frame payload → validated :class:`Chunk` (a format-2 body when ``plan`` is given, else format 1).

    ``check(index, start, length, n_events)`` (e.g. :meth:`Reader`'s limits against the header) runs on the
    fixed fields before the body is decompressed."""
    if len(payload) < _CHUNK_FIXED.size:
        raise FormatError("chunk payload shorter than its fixed fields")
    index, start, length, n, raw_len, method = _CHUNK_FIXED.unpack_from(payload)
    if index >= MAX_CHUNKS:
        raise LimitError(f"chunk index {index} (max {MAX_CHUNKS - 1})")
    if n > MAX_EVENTS_PER_CHUNK:
        raise LimitError(f"chunk {index} claims {n} events (MAX_EVENTS_PER_CHUNK {MAX_EVENTS_PER_CHUNK})")
    if raw_len > MAX_CHUNK_RAW_BYTES:
        raise LimitError(f"chunk {index} claims a {raw_len}-byte body (max {MAX_CHUNK_RAW_BYTES})")
    if length < 1 or start + length > MAX_TIME:
        raise LimitError(f"chunk {index}: time range [{start}, {start + length}) out of bounds")
    if check is not None:
        check(index, start, length, n)
    raw = _unpack_body(method, payload[_CHUNK_FIXED.size :], raw_len, f"chunk {index}")
    if plan is None:
        times, codes, side = _decode_body(raw, n, start, length, widths, index)
    else:
        times, codes, side = _decode_body_v2(raw, n, start, length, plan, index)
    return Chunk(index=index, start=start, length=length, times=times, codes=codes, side=side)


def _check_chunk_range(chunk: Chunk) -> None:
    for name, v, lo, hi in (
        ("index", chunk.index, 0, MAX_CHUNKS - 1),
        ("start", chunk.start, 0, MAX_TIME),
        ("length", chunk.length, 1, MAX_CHUNK_LENGTH),
    ):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not lo <= int(v) <= hi:
            raise LimitError(f"chunk {name} {v!r} outside {lo}..{hi}")
    if chunk.start + chunk.length > MAX_TIME:
        raise LimitError(f"chunk {chunk.index} ends after {MAX_TIME}")


def check_kinds(header: Header, chunk: Chunk) -> None:
    """A layout-2 chunk's events must be of a known kind (§3.3: codes 2 and 3 are reserved): FormatError."""
    if header.layout_version >= 2 and len(chunk.codes):
        kind = int(np.asarray(chunk.codes)[:, events.KIND_DIM].max())
        if kind >= len(events.KINDS):
            raise FormatError(
                f"chunk {chunk.index}: event kind {kind} is not known to this reader (it reads 0-1)"
            )


# ---------------------------------------------------------------------------------------- resource limits


def time_length(header: Header) -> int:
    """Declared length of the audio in samples at ``time_rate``: ``ceil(n_samples·time_rate/sample_rate)``."""
    return -(-header.n_samples * header.time_rate // header.sample_rate)


def check_header_limits(header: Header, max_duration_s: float = MAX_DURATION_S) -> None:
    """Raise :class:`LimitError` when the declared duration exceeds ``max_duration_s`` (default
    :data:`MAX_DURATION_S`) or the declared length needs more than :data:`MAX_CHUNKS` hops."""
    duration = header.n_samples / header.sample_rate
    if duration > max_duration_s:
        raise LimitError(
            f"declared duration {duration:.0f} s exceeds the limit of {max_duration_s:g} s "
            "(MAX_DURATION_S; --max-duration raises it)"
        )
    hops = -(-time_length(header) // header.hop_samples)
    if hops > MAX_CHUNKS:
        raise LimitError(
            f"declared length is {hops} hops of {header.hop_samples} samples (MAX_CHUNKS {MAX_CHUNKS})"
        )


def max_events_in_chunk(length: int, time_rate: int) -> int:
    """Most events a chunk of ``length`` samples (at ``time_rate``) may hold: :data:`MAX_EVENTS_PER_S` per
    second of its range (a range under 1 s counts as 1 s), at most :data:`MAX_EVENTS_PER_CHUNK`."""
    return min(MAX_EVENTS_PER_CHUNK, max(MAX_EVENTS_PER_S, -(-MAX_EVENTS_PER_S * length // time_rate)))


def max_events_in_file(header: Header) -> int:
    """Most events a file may hold: :data:`MAX_EVENTS_PER_S` per second of ``max(duration, 1 s)``, at most
    :data:`MAX_EVENTS`."""
    return min(
        MAX_EVENTS, -(-MAX_EVENTS_PER_S * max(header.n_samples, header.sample_rate) // header.sample_rate)
    )


def check_chunk_limits(header: Header, index: int, start: int, length: int, n_events: int) -> None:
    """A chunk's fixed fields against the header: it starts before the declared end (else
    :class:`FormatError`) and holds at most :func:`max_events_in_chunk` events (else :class:`LimitError`)."""
    end = time_length(header)
    if start >= end:
        raise FormatError(f"chunk {index} starts at {start}, past the end of the audio ({end} at time_rate)")
    cap = max_events_in_chunk(length, header.time_rate)
    if n_events > cap:
        raise LimitError(
            f"chunk {index} holds {n_events} events in {length / header.time_rate:.3g} s "
            f"(max {cap}: MAX_EVENTS_PER_S {MAX_EVENTS_PER_S})"
        )


def _total_limit_error(n_events: int, header: Header) -> LimitError:
    return LimitError(
        f"{n_events} events in {header.duration_s:.3g} s exceed the limit of {max_events_in_file(header)} "
        f"(MAX_EVENTS_PER_S {MAX_EVENTS_PER_S} over the duration, MAX_EVENTS {MAX_EVENTS})"
    )


# ---------------------------------------------------------------------------------------------- writer


class Writer:
    """Write a ``.spev`` stream to ``fileobj`` front to back (no seeks: pipes work).

    The header is written at construction; :meth:`write_chunk` appends chunks with consecutive indices
    and non-overlapping, increasing time ranges; :meth:`close` writes the index and trailer (it does not
    close ``fileobj``).  Same header and chunks → same bytes.  ``format_version`` (default
    :data:`FORMAT_VERSION`) picks the chunk coding; 1 writes files that readers of format 1 can read.
    """

    def __init__(self, fileobj: BinaryIO, header: Header, *, format_version: int = FORMAT_VERSION) -> None:
        if format_version not in FORMAT_VERSIONS or isinstance(format_version, bool):
            raise UsageError(f"format version {format_version!r}: this writer writes {list(FORMAT_VERSIONS)}")
        self._f = fileobj
        self.format_version = int(format_version)
        self.header = Header.from_dict(_unpack_msgpack(_pack_header(header), "header"))
        check_header_limits(self.header)
        self._widths = _widths(self.header.table)
        self._plan: coding.Plan | None = None
        if self.format_version >= 2:
            self._plan = coding.plan(self.header.table)
        self._entries: list[IndexEntry] = []
        self._n_events = 0
        self._pos = 0
        self._prev_end = 0
        self._closed = False
        hb = _pack_header(header)
        method, data = _compress(hb)
        head = MAGIC + _HEADER_FIXED.pack(self.format_version, method, len(data), len(hb)) + data
        self._write(head + _U32.pack(_crc(head)))

    @property
    def bytes_written(self) -> int:
        """Bytes written so far."""
        return self._pos

    def _write(self, data: bytes) -> None:
        self._f.write(data)
        self._pos += len(data)

    def write_chunk(self, chunk: Chunk) -> None:
        """Append one chunk (validated; raises :class:`FormatError` / :class:`LimitError`)."""
        if self._closed:
            raise UsageError("write_chunk after close")
        _check_chunk_range(chunk)
        chunk = Chunk(
            int(chunk.index), int(chunk.start), int(chunk.length), chunk.times, chunk.codes, chunk.side
        )
        if chunk.index != len(self._entries):
            raise FormatError(f"chunk index {chunk.index}, expected {len(self._entries)}")
        if chunk.start < self._prev_end:
            raise FormatError(f"chunk {chunk.index} starts at {chunk.start}, before the previous end")
        n_in = len(chunk.times) if np.ndim(chunk.times) == 1 else 0
        check_chunk_limits(self.header, chunk.index, chunk.start, chunk.length, n_in)
        if self._n_events + n_in > max_events_in_file(self.header):
            raise _total_limit_error(self._n_events + n_in, self.header)
        payload, n = encode_chunk_payload(chunk, self._widths, self._plan)
        check_kinds(self.header, chunk)
        self._n_events += n
        if len(payload) > MAX_CHUNK_BYTES:
            raise LimitError(f"chunk {chunk.index} is {len(payload)} bytes (max {MAX_CHUNK_BYTES})")
        self._entries.append(IndexEntry(self._pos, chunk.index, chunk.start, chunk.length, n))
        self._write(_frame(CHUNK_SYNC, payload))
        self._prev_end = chunk.end

    def close(self) -> None:
        """Write the index and trailer (idempotent; leaves ``fileobj`` open)."""
        if self._closed:
            return
        self._closed = True
        index_offset = self._pos
        body = _U32.pack(len(self._entries)) + b"".join(
            _INDEX_ENTRY.pack(e.offset, e.index, e.start, e.length, e.n_events) for e in self._entries
        )
        self._write(_frame(INDEX_SYNC, body))
        t = _TRAILER.pack(TRAILER_SYNC, index_offset, len(self._entries))
        self._write(t + _U32.pack(_crc(t)))
        flush = getattr(self._f, "flush", None)
        if flush is not None:
            flush()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()


def _pack_header(header: Header) -> bytes:
    hb = msgpack.packb(header.to_dict(), default=_plain, use_bin_type=True)
    if len(hb) > MAX_HEADER_BYTES:
        raise LimitError(f"header is {len(hb)} bytes (max {MAX_HEADER_BYTES})")
    return bytes(hb)


def _frame(sync: bytes, payload: bytes) -> bytes:
    head = sync + _U32.pack(len(payload))
    return head + payload + _U32.pack(_crc(head, payload))


# ----------------------------------------------------------------------------------------------- input


class _Source:
    """Byte source over a file object with a push-back buffer; ``pos`` counts from the magic."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        try:
            self.seekable = bool(f.seekable()) if hasattr(f, "seekable") else False
            self.base = f.tell() if self.seekable else 0
        except (OSError, ValueError):
            self.seekable, self.base = False, 0
        self.pos = 0
        self._buf = b""
        self._rec: list[bytes] | None = None

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at end of stream); reads in blocks, never pre-allocates ``n``."""
        out = [self._buf[:n]]
        got = len(out[0])
        self._buf = self._buf[n:]
        while got < n:
            try:
                part = self.f.read(min(n - got, 1 << 20))
            except (OSError, ValueError) as exc:
                raise TruncatedError(f"read failed: {exc}") from None
            if not part:
                break
            out.append(part)
            got += len(part)
        data = b"".join(out)
        self.pos += len(data)
        if self._rec is not None:
            self._rec.append(data)
        return data

    def record(self) -> None:
        """Start keeping a copy of every byte read (to push it back after damage)."""
        self._rec = []

    def stop_recording(self) -> bytes:
        """Stop recording; return the bytes read since :meth:`record`."""
        data = b"".join(self._rec or [])
        self._rec = None
        return data

    def read_exact(self, n: int, what: str) -> bytes:
        data = self.read(n)
        if len(data) != n:
            raise TruncatedError(f"file ends inside {what} (at byte {self.pos})")
        return data

    def unread(self, data: bytes) -> None:
        self._buf = data + self._buf
        self.pos -= len(data)

    def seek(self, pos: int) -> None:
        self.f.seek(self.base + pos)
        self.pos, self._buf = pos, b""

    def size(self) -> int:
        end = self.f.seek(0, 2)
        return int(end) - self.base

    def scan(self, syncs: tuple[bytes, ...]) -> bool:
        """Skip to the next occurrence of one of ``syncs`` (left unread); False at end of stream."""
        keep = max(len(s) for s in syncs) - 1
        window = b""
        while True:
            block = self.read(_READ_BLOCK)
            if not block:
                return False
            window = window[-keep:] + block if keep else block
            hits = [i for i in (window.find(s) for s in syncs) if i >= 0]
            if hits:
                self.unread(window[min(hits) :])
                return True


def _read_frame(src: _Source, sync: bytes, max_len: int, what: str) -> bytes:
    """Read the rest of a frame whose 4-byte ``sync`` was just read; returns the CRC-checked payload."""
    raw_len = src.read_exact(4, f"{what} length")
    (n,) = _U32.unpack(raw_len)
    if n > max_len:
        raise LimitError(f"{what} claims {n} bytes (max {max_len})")
    body = src.read_exact(n + 4, what)
    if _U32.unpack_from(body, n)[0] != _crc(sync, raw_len, body[:n]):
        raise ChecksumError(f"{what} at byte {src.pos - n - 12}: CRC-32 mismatch")
    return body[:n]


# ---------------------------------------------------------------------------------------------- reader


class Reader:
    """Read a ``.spev`` stream.  The header is read and validated on construction.

    ``iter(reader)`` yields every :class:`Chunk` front to back (strict: the first problem raises);
    :meth:`chunks_for` selects chunks by time (through the index when the file is seekable);
    :meth:`iter_tolerant` skips damaged chunks and records them in :attr:`lost`;
    :meth:`verify` checks every CRC and value.  On a non-seekable stream chunks can be read only once.

    Resource limits (formats/spev.md §7) are checked before anything is allocated for them: the declared
    duration against ``max_duration_s`` (default :data:`MAX_DURATION_S`), the declared hops against
    :data:`MAX_CHUNKS`, every chunk's events against :func:`max_events_in_chunk` and the running total against
    :func:`max_events_in_file`; a chunk starting past the declared end is an error.
    """

    def __init__(self, fileobj: BinaryIO, *, max_duration_s: float = MAX_DURATION_S) -> None:
        self._src = _Source(fileobj)
        self.max_duration_s = float(max_duration_s)
        self.format_version = 0
        """The file's format version (1 or 2), once the header is read."""
        self.header = self._read_header()
        check_header_limits(self.header, self.max_duration_s)
        self._max_events = max_events_in_file(self.header)
        self._widths = _widths(self.header.table)
        self._plan = coding.plan(self.header.table) if self.format_version >= 2 else None
        self._data_start = self._src.pos
        self._consumed = False
        self._index: ChunkIndex | None = None
        self._index_loaded = False
        self._index_limit: LimitError | None = None
        self.index_error: str | None = None
        """Why the index could not be used (seekable files), else None."""
        self.lost: list[int] = []
        """Chunk indices :meth:`iter_tolerant` could not recover."""
        self.damage: list[str] = []
        """One message per problem :meth:`iter_tolerant` skipped."""
        self.file_bytes: int | None = None
        """Total stream size, once known (seekable, or after a full front-to-back read)."""
        self.chunk_bytes: int | None = None
        """Bytes of all chunk frames (from the first chunk's sync to the index), once the index is found."""

    @property
    def seekable(self) -> bool:
        """Whether the underlying file object can seek (then the index is used)."""
        return self._src.seekable

    # -- header
    def _read_header(self) -> Header:
        src = self._src
        magic = src.read(4)
        if magic != MAGIC:
            if len(magic) < 4 and MAGIC.startswith(magic):
                raise TruncatedError("file ends inside the magic")
            raise BadMagicError("not a .spev file (bad magic)")
        version = src.read_exact(1, "format version")[0]
        if version > max(FORMAT_VERSIONS):
            raise NewerVersionError(
                f"format version {version} is newer than this reader (it reads {list(FORMAT_VERSIONS)})"
            )
        if version not in FORMAT_VERSIONS:
            raise FormatError(f"format version {version} is invalid")
        self.format_version = version
        rest = src.read_exact(_HEADER_FIXED.size - 1, "header lengths")
        _, method, n, raw_len = _HEADER_FIXED.unpack(bytes([version]) + rest)
        if n > MAX_HEADER_BYTES or raw_len > MAX_HEADER_BYTES:
            raise LimitError(f"header claims {max(n, raw_len)} bytes (max {MAX_HEADER_BYTES})")
        data = src.read_exact(n, "header")
        (crc,) = _U32.unpack(src.read_exact(4, "header CRC"))
        if crc != _crc(magic, bytes([version]), rest, data):
            raise ChecksumError("header CRC-32 mismatch")
        hb = _unpack_body(method, data, raw_len, "header")
        return Header.from_dict(_unpack_msgpack(hb, "header"))

    # -- sequential reading
    def _start(self) -> None:
        if self._src.seekable:
            self._src.seek(self._data_start)
        elif self._consumed:
            raise UsageError("a non-seekable .spev stream can be read only once")
        self._consumed = True

    def _check_chunk(self, index: int, start: int, length: int, n_events: int) -> None:
        check_chunk_limits(self.header, index, start, length, n_events)

    def _read_chunk_frame(self) -> tuple[int, Chunk]:
        offset = self._src.pos - 4
        payload = _read_frame(self._src, CHUNK_SYNC, MAX_CHUNK_BYTES, "chunk")
        chunk = decode_chunk_payload(payload, self._widths, self._check_chunk, self._plan)
        check_kinds(self.header, chunk)
        return offset, chunk

    def _read_index_and_trailer(self) -> tuple[int, bytes]:
        """Read the index frame (its sync just read) and the trailer; returns (offset, index payload)."""
        offset = self._src.pos - 4
        payload = _read_frame(self._src, INDEX_SYNC, MAX_INDEX_BYTES, "index")
        entries = _parse_index(payload)
        t = self._src.read_exact(TRAILER_BYTES, "trailer")
        _check_trailer(t, offset, len(entries))
        return offset, payload

    def __iter__(self) -> Iterator[Chunk]:
        self._start()
        return self._iter_strict()

    def _iter_strict(self) -> Iterator[Chunk]:
        src = self._src
        seen = bytearray()  # the index entries the chunks read so far imply, packed as in the file
        n_chunks = n_events = prev_end = 0
        while True:
            sync = src.read(4)
            if sync == CHUNK_SYNC:
                offset, chunk = self._read_chunk_frame()
                if chunk.index != n_chunks:
                    raise FormatError(f"chunk index {chunk.index} where {n_chunks} was expected")
                if chunk.start < prev_end:
                    raise FormatError(f"chunk {chunk.index} overlaps the previous chunk")
                n = len(chunk.times)
                n_events += n
                if n_events > self._max_events:
                    raise _total_limit_error(n_events, self.header)
                seen += _INDEX_ENTRY.pack(offset, chunk.index, chunk.start, chunk.length, n)
                n_chunks += 1
                prev_end = chunk.end
                yield chunk
            elif sync == INDEX_SYNC:
                offset, payload = self._read_index_and_trailer()
                if payload[4:] != seen:
                    raise FormatError("index does not match the chunks")
                self.file_bytes = src.pos
                self.chunk_bytes = offset - self._data_start
                return
            elif len(sync) < 4:
                raise TruncatedError(f"file ends at byte {src.pos} before the end-of-stream marker")
            else:
                raise FormatError(f"bad sync marker at byte {src.pos - 4}")

    def check_end(self) -> None:
        """After a complete front-to-back read: nothing may follow the trailer, and a seekable file's index
        must be usable (what :meth:`verify` checks beyond the chunks).  Raises :class:`FormatError`."""
        if self._src.read(1):
            raise FormatError("data after the end-of-stream trailer")
        end = self._src.pos
        if self._src.seekable and self.index() is None:
            raise FormatError(f"index unusable: {self.index_error}")
        self.file_bytes = end

    # -- index and seeking
    def index(self) -> ChunkIndex | None:
        """The chunk index (seekable files with an intact index), else None (see :attr:`index_error`)."""
        if not self._index_loaded:
            self._index_loaded = True
            if self._src.seekable:
                try:
                    self._index = self._load_index()
                except LimitError as exc:  # a refusal, not damage: every later call raises it too
                    self._index_limit = exc
                    self.index_error = str(exc)
                except FormatError as exc:
                    self.index_error = str(exc)
        if self._index_limit is not None:
            raise LimitError(str(self._index_limit))
        return self._index

    def _load_index(self) -> ChunkIndex:
        src = self._src
        size = src.size()
        self.file_bytes = size
        if size < self._data_start + 12 + TRAILER_BYTES:
            raise TruncatedError("file too short for an index")
        src.seek(size - TRAILER_BYTES)
        t = src.read_exact(TRAILER_BYTES, "trailer")
        (_sync, offset, n_chunks) = _TRAILER.unpack_from(t)
        _check_trailer(t, offset, n_chunks)
        if not self._data_start <= offset <= size - TRAILER_BYTES - 12:
            raise FormatError("trailer points outside the file")
        src.seek(offset)
        if src.read_exact(4, "index sync") != INDEX_SYNC:
            raise FormatError("trailer does not point at the index")
        payload = _read_frame(src, INDEX_SYNC, MAX_INDEX_BYTES, "index")
        if src.pos != size - TRAILER_BYTES:
            raise FormatError("index does not end at the trailer")
        entries = _parse_index(payload)
        if len(entries) != n_chunks:
            raise FormatError("index and trailer disagree on the chunk count")
        self.chunk_bytes = offset - self._data_start
        rows = entries.rows
        if len(rows):
            offs = rows["offset"]
            starts = rows["start"]
            if int(starts.max()) >= MAX_TIME:
                raise LimitError("an index entry starts after 2^48")
            begin = starts.astype(np.int64)
            ends = begin + rows["length"].astype(np.int64)
            bad = (
                (offs[0] < self._data_start)
                | (offs[-1] >= offset)
                | np.any(np.diff(offs.astype(np.int64)) <= 0)
                | np.any(begin[1:] < ends[:-1])
                | (rows["length"].min() < 1)
            )
            if bad:
                raise FormatError("index entries are out of order")
            i_late = int(np.argmax(begin >= time_length(self.header)))
            if begin[i_late] >= time_length(self.header):
                self._check_chunk(i_late, int(begin[i_late]), 1, 0)
            cap = np.minimum(
                MAX_EVENTS_PER_CHUNK,
                np.maximum(
                    MAX_EVENTS_PER_S,
                    -(-MAX_EVENTS_PER_S * rows["length"].astype(np.int64) // self.header.time_rate),
                ),
            )
            over = rows["n_events"].astype(np.int64) > cap
            if over.any():
                i = int(np.argmax(over))
                self._check_chunk(i, int(begin[i]), int(rows["length"][i]), int(rows["n_events"][i]))
            if entries.n_events > self._max_events:
                raise _total_limit_error(entries.n_events, self.header)
        return entries

    def chunks_for(self, start: int, end: int | None = None, preroll: int | None = None) -> Iterator[Chunk]:
        """Chunks holding every event that can sound in ``[start, end)`` (samples at ``time_rate``).

        ``preroll`` (default ``MAX_SUPPORT_S`` at ``time_rate``) extends the range backwards so that events
        started earlier but still sounding are included.  Uses the index when the file is seekable and the
        index is intact; otherwise scans front to back (on a pipe, from the current position).
        """
        if preroll is None:
            preroll = math.ceil(MAX_SUPPORT_S * self.header.time_rate)
        lo = start - preroll
        entries = self.index()
        if entries is None:
            for chunk in self:
                if end is not None and chunk.start >= end:
                    return
                if chunk.end > lo:
                    yield chunk
            return
        rows = entries.rows
        begin = rows["start"].astype(np.int64)
        want = begin + rows["length"].astype(np.int64) > lo
        if end is not None:
            want &= begin < end
        for i in np.flatnonzero(want).tolist():
            e = entries[i]
            self._src.seek(e.offset)
            if self._src.read_exact(4, "chunk sync") != CHUNK_SYNC:
                raise FormatError(f"index entry {e.index} does not point at a chunk")
            _, chunk = self._read_chunk_frame()
            if (chunk.index, chunk.start, chunk.length, len(chunk.times)) != (
                e.index,
                e.start,
                e.length,
                e.n_events,
            ):
                raise FormatError(f"chunk {chunk.index} does not match its index entry")
            yield chunk

    # -- checks
    def verify(self) -> Summary:
        """Read the whole stream checking every CRC, value, limit, the index and the trailer; raise on the
        first problem (a :class:`FormatError` subclass).  Returns the file's :class:`Summary`."""
        n_chunks = n_events = 0
        for chunk in self:
            n_chunks += 1
            n_events += len(chunk.times)
        self.check_end()
        return _summary(self, n_chunks, n_events)

    def iter_tolerant(self) -> Iterator[Chunk]:
        """Yield the chunks that are intact, skipping damaged ones (``--ignore-errors``).

        Resynchronises on the next chunk sync marker after damage.  Afterwards :attr:`lost` lists the chunk
        indices that were not recovered (for a truncated stream without trailer, estimated from the header's
        length and hop) and :attr:`damage` describes each problem (trailing bytes included).  Exceeding the
        file's total event limit still raises :class:`LimitError`.
        """
        self._start()
        src = self._src
        self.lost, self.damage = [], []
        expected, prev_end, n_events = 0, 0, 0
        syncs = (CHUNK_SYNC, INDEX_SYNC)
        while True:
            frame_pos = src.pos
            sync = src.read(4)
            if len(sync) < 4:
                break
            if sync not in syncs:
                self.damage.append(f"lost sync at byte {frame_pos}")
                src.unread(sync[1:])
                if not src.scan(syncs):
                    break
                continue
            src.record()
            try:
                if sync == CHUNK_SYNC:
                    _, chunk = self._read_chunk_frame()
                else:
                    _, payload = self._read_index_and_trailer()
            except FormatError as exc:
                self.damage.append(f"byte {frame_pos}: {exc}")
                src.unread((sync + src.stop_recording())[1:])
                if not src.scan(syncs):
                    break
                continue
            src.stop_recording()
            if sync == INDEX_SYNC:
                (n_index,) = _U32.unpack_from(payload)
                self.lost.extend(range(expected, n_index))
                self.file_bytes = src.pos
                if src.read(1):
                    self.damage.append(f"byte {src.pos - 1}: data after the end-of-stream trailer")
                return
            if chunk.index < expected or chunk.start < prev_end:
                self.damage.append(f"byte {frame_pos}: chunk {chunk.index} out of order, skipped")
                continue
            n_events += len(chunk.times)
            if n_events > self._max_events:
                raise _total_limit_error(n_events, self.header)
            self.lost.extend(range(expected, chunk.index))
            expected, prev_end = chunk.index + 1, chunk.end
            yield chunk
        self.damage.append("stream ends without the end-of-stream marker (truncated)")
        n_time = time_length(self.header)
        self.lost.extend(range(expected, min(-(-n_time // self.header.hop_samples), MAX_CHUNKS)))


def _parse_index(payload: bytes) -> ChunkIndex:
    if len(payload) < 4:
        raise FormatError("index too short")
    (n,) = _U32.unpack_from(payload)
    if n > MAX_CHUNKS:
        raise LimitError(f"index claims {n} chunks (max {MAX_CHUNKS})")
    if len(payload) != 4 + n * _INDEX_ENTRY.size:
        raise FormatError("index length does not match its entry count")
    rows = np.frombuffer(payload, dtype=_INDEX_DTYPE, count=n, offset=4)
    if not np.array_equal(rows["index"], np.arange(n)):
        raise FormatError("index entries are not numbered 0, 1, 2, ...")
    return ChunkIndex(rows)


def _check_trailer(t: bytes, index_offset: int, n_chunks: int) -> None:
    sync, offset, n = _TRAILER.unpack_from(t)
    if sync != TRAILER_SYNC:
        raise FormatError("bad end-of-stream trailer")
    if _U32.unpack_from(t, _TRAILER.size)[0] != _crc(t[: _TRAILER.size]):
        raise ChecksumError("trailer CRC-32 mismatch")
    if (offset, n) != (index_offset, n_chunks):
        raise FormatError("trailer disagrees with the index")


# --------------------------------------------------------------------------------------------- helpers


def _summary(reader: Reader, n_chunks: int, n_events: int) -> Summary:
    dur = reader.header.duration_s
    file_bytes, chunk_bytes = reader.file_bytes, reader.chunk_bytes
    return Summary(
        duration_s=dur,
        n_chunks=n_chunks,
        n_events=n_events,
        events_per_s=n_events / dur if dur > 0 else 0.0,
        file_bytes=file_bytes,
        kbps=file_bytes * 8 / dur / 1000 if file_bytes is not None and dur > 0 else None,
        bytes_per_event=file_bytes / n_events if file_bytes is not None and n_events else None,
        format_version=reader.format_version,
        chunk_bytes=chunk_bytes,
        chunk_bytes_per_event=chunk_bytes / n_events if chunk_bytes is not None and n_events else None,
    )


def summary(reader: Reader) -> Summary:
    """Duration, chunk and event counts, events/s and kbps (from the file size when known).

    Uses the index when the file is seekable; otherwise reads the remaining chunks (consuming a pipe).
    """
    entries = reader.index()
    if entries is not None:
        return _summary(reader, len(entries), entries.n_events)
    n_chunks = n_events = 0
    for chunk in reader:
        n_chunks += 1
        n_events += len(chunk.times)
    return _summary(reader, n_chunks, n_events)


def write_file(
    fileobj: BinaryIO, header: Header, chunks: Iterable[Chunk], *, format_version: int = FORMAT_VERSION
) -> int:
    """Write a whole stream (header, chunks, index, trailer); returns the number of bytes written."""
    w = Writer(fileobj, header, format_version=format_version)
    for c in chunks:
        w.write_chunk(c)
    w.close()
    return w.bytes_written
