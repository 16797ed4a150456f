"""Format-2 chunk bodies: reference prediction of the codes, zig-zag residual columns, bit and byte planes.

``formats/spev.md`` §4.4 is normative; this is the reference implementation (numpy only, no torch import).

Every event is predicted from one *reference*: ``ref = 0`` means the table's *base codes* (each dimension's
default value quantised, :func:`base_codes`), ``ref = r >= 1`` the event ``r`` places earlier in the same
chunk.  Each transmitted dimension then stores the residual against that prediction, modulo its code range
and zig-zag mapped (small changes in either direction give small numbers).  Every column (time deltas,
references, one column per transmitted dimension) gets the bit width of its largest value; a column no wider
than the chunk's *split* is stored as bit planes, a wider one as byte planes, and zstd compresses the result.
Prediction and columns know nothing about what a dimension means, so the coding works for any layout and
table.

The writer's choices are not normative: the references (:func:`choose_refs`: the candidate whose residuals
need the fewest bits, among the base and the :data:`REF_WINDOW` previous events; a reader accepts any
``ref <= k`` for event ``k``) and the split (the one of :data:`SPLITS` whose body compresses smallest).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sparsecodec.errors import FormatError
from sparsecodec.format import events, quantize

MAX_SPLIT = 32
"""Bound on a body's split: columns of width ``1..split`` are bit planes, wider ones byte planes."""
SPLITS = (0, 2, 4, 8, 16)
"""The splits the writer tries, keeping the smallest compressed body (ties: the first).  On the dev-set
encodes this saves 2 % over always 4; on events drawn from the prior (no redundancy) 16 wins."""
MAX_TIME_WIDTH = 32
"""Bound on the time-delta column's width (a chunk's range is shorter than 2^32)."""
MAX_REF_WIDTH = 16
"""Bound on the reference column's width (``ref <= k < MAX_EVENTS_PER_CHUNK = 2^16``)."""
REF_WINDOW = 31
"""How many earlier events the writer tries as a reference (the writer's choice, not normative)."""
FIXED_BYTES = 5
"""``side_len`` (u32) and ``split`` (u8) precede the widths."""

_CODE_BITS = 16  # codes are uint16: residual sums are kept modulo 2^16, which every 2^b divides


@dataclass(frozen=True)
class Plan:
    """What a format-2 body needs from the file's table: the transmitted dimensions (``bits > 0``, in
    dimension order), their widths and their base codes."""

    dims: np.ndarray
    """``int64[D]`` indices of the dimensions with ``bits > 0``."""
    bits: np.ndarray
    """``int64[D]`` their table widths."""
    base: np.ndarray
    """``int64[D]`` their base codes (the prediction of an event with ``ref = 0``)."""


REGISTERED_BASE_CODES: dict[str, tuple[int, ...]] = {
    "default": (186, 1820, 31, 6, 0, 0, 41, 15, 15, 15, 15, 15, 15, 15, 15, 0,
                63, 13, 74, 15, 36, 31, 0, 45, 20, 8, 3, 0, 15, 0, 15, 0),
    "layout2": (186, 1820, 31, 6, 0, 0, 41, 15, 15, 15, 15, 15, 15, 15, 15, 0,
                63, 13, 74, 15, 36, 31, 0, 45, 20, 8, 3, 0, 15, 0, 15, 0),
}  # fmt: skip
"""Base codes of the registered tables (formats/spev.md §4.4, frozen): each dimension's ``default``
quantised with the table.  Listed, not computed, because a computed one can sit on a rounding midpoint
(``release``: ln(0.2/0.01) / ln(4/0.01) = 1/2 exactly, 15.5 code steps) where libm differences could
round it either way; a frozen list makes every reader agree."""


def base_codes(table: quantize.Table) -> np.ndarray:
    """``int64[32]``: the base codes of ``table``, the prediction of an event with ``ref = 0``.

    A registered table's are :data:`REGISTERED_BASE_CODES`; a full (unregistered) table's are computed
    without floating point: ``2^(b-1) - 1`` (the exact zero) for ``sym`` dimensions, 0 for the others, 0
    where ``bits = 0``.  A layout-2 table's are those of its ``note`` table (kind code 0)."""
    name = quantize.table_name(table)
    if name is not None and name in REGISTERED_BASE_CODES:
        return np.array(REGISTERED_BASE_CODES[name], dtype=np.int64)
    return np.array(
        [
            (1 << (int(e["bits"]) - 1)) - 1 if e["scale"] == "sym" and int(e["bits"]) >= 2 else 0
            for e in quantize.note_table(table)
        ],
        dtype=np.int64,
    )


def plan(table: quantize.Table) -> Plan:
    """The :class:`Plan` of ``table`` (validated by the caller); a layout-2 table's widths are
    :func:`quantize.column_widths`."""
    bits = quantize.column_widths(table)
    dims = np.flatnonzero(bits > 0).astype(np.int64)
    return Plan(dims=dims, bits=bits[dims], base=base_codes(table)[dims])


def _bit_length(v: np.ndarray) -> np.ndarray:
    """Bit length of non-negative integers below 2^32 (exact: ``frexp`` of an integer-valued float)."""
    return np.frexp(v.astype(np.float64))[1].astype(np.int64)


def _zigzag(d: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Code differences → stored values: ``d`` modulo ``2^b`` read as a signed number in
    ``[-2^(b-1), 2^(b-1))``, then zig-zag (0, -1, 1, -2, ... → 0, 1, 2, 3, ...); the result is ``< 2^b``."""
    m = np.int64(1) << bits
    s = d % m
    s = np.where(s >= m >> 1, s - m, s)
    return np.where(s >= 0, 2 * s, -2 * s - 1)


def choose_refs(codes: np.ndarray, p: Plan, window: int = REF_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """The writer's references and stored residuals for ``codes`` (``int64[n, D]``, transmitted dims).

    For each event, among the base (``ref = 0``) and the ``window`` previous events, the candidate whose
    zig-zag residuals have the smallest total bit length; ties go to the smallest ``ref``.  Deterministic.
    Returns ``(refs int64[n], values int64[n, D])``."""
    n = codes.shape[0]
    best_res = _zigzag(codes - p.base[None, :], p.bits[None, :])
    best_cost = _bit_length(best_res).sum(axis=1)
    refs = np.zeros(n, dtype=np.int64)
    for r in range(1, min(window, n - 1) + 1):
        res = _zigzag(codes[r:] - codes[:-r], p.bits[None, :])
        cost = _bit_length(res).sum(axis=1)
        better = cost < best_cost[r:]
        idx = np.flatnonzero(better) + r
        best_cost[idx] = cost[better]
        best_res[idx] = res[better]
        refs[idx] = r
    return refs, best_res


def _column_layout(widths: list[int], split: int) -> tuple[int, int]:
    """(bit planes, byte planes) per event of columns with these widths under ``split``."""
    bit_planes = sum(w for w in widths if 0 < w <= split)
    byte_planes = sum((w + 7) // 8 for w in widths if w > split)
    return bit_planes, byte_planes


def body_length(n: int, split: int, widths: list[int], side_len: int) -> int:
    """Exact length of a body with ``n`` events, ``split``, column ``widths`` (time, ref, dims) and
    ``side_len`` bytes of side data."""
    bit_planes, byte_planes = _column_layout(widths, split)
    return FIXED_BYTES + len(widths) + (n * bit_planes + 7) // 8 + n * byte_planes + side_len


def encode_body(
    times: np.ndarray,
    codes: np.ndarray,
    start: int,
    side: bytes,
    p: Plan,
    measure: Callable[[bytes], int] = len,
    window: int = REF_WINDOW,
) -> bytes:
    """A format-2 body.  ``times``: ``int64[n]`` ascending inside the chunk; ``codes``: ``int64[n, 32]``
    within the table's widths (the caller validates both); ``side``: the packed side data.  Of the bodies
    with each split of :data:`SPLITS`, returns the one ``measure`` (e.g. its compressed size) finds
    smallest; the first on ties."""
    n = int(times.shape[0])
    deltas = np.diff(times.astype(np.int64), prepend=np.int64(start))
    cc = codes[:, p.dims].astype(np.int64)
    refs, values = choose_refs(cc, p, window) if n else (np.zeros(0, np.int64), cc)
    columns = [deltas, refs] + [values[:, j] for j in range(len(p.dims))]
    widths = [int(c.max(initial=0)).bit_length() for c in columns]
    best = b""
    best_size = -1
    for split in SPLITS if n else SPLITS[:1]:
        body = _pack(columns, widths, split, n, side)
        size = measure(body)
        if best_size < 0 or size < best_size:
            best, best_size = body, size
    return best


def _pack(columns: list[np.ndarray], widths: list[int], split: int, n: int, side: bytes) -> bytes:
    """The body holding ``columns`` (their ``widths``) with ``split``."""
    planes = [
        (c[None, :] >> np.arange(w - 1, -1, -1)[:, None]) & 1
        for c, w in zip(columns, widths, strict=True)
        if 0 < w <= split
    ]
    bit_section = np.packbits(np.concatenate(planes).astype(np.uint8)).tobytes() if planes and n else b""
    byte_section = b"".join(
        ((c >> (8 * k)) & 0xFF).astype(np.uint8).tobytes()
        for c, w in zip(columns, widths, strict=True)
        if w > split
        for k in range((w + 7) // 8 - 1, -1, -1)
    )
    head = len(side).to_bytes(4, "little") + bytes([split, *widths])
    return head + bit_section + byte_section + side


def decode_body(
    body: bytes, n: int, start: int, length: int, p: Plan, index: int, max_side: int
) -> tuple[np.ndarray, np.ndarray, bytes]:
    """A format-2 body → ``(times int64[n], codes uint16[n, 32], side bytes)``.

    Checks, in this order and before allocating for them: the fixed fields, every width against its bound,
    the exact body length, zero padding bits, every byte-plane value against its width, every reference,
    and the last time against the chunk's range.  Raises :class:`FormatError` (``LimitError`` for
    ``side_len``)."""
    from sparsecodec.errors import LimitError

    n_cols = 2 + len(p.dims)
    if len(body) < FIXED_BYTES + n_cols:
        raise FormatError(f"chunk {index}: body too short")
    side_len = int.from_bytes(body[:4], "little")
    if side_len > max_side:
        raise LimitError(f"chunk {index}: side data of {side_len} bytes (max {max_side})")
    split = body[4]
    if split > MAX_SPLIT:
        raise FormatError(f"chunk {index}: split {split} > {MAX_SPLIT}")
    widths = list(body[FIXED_BYTES : FIXED_BYTES + n_cols])
    limits = [MAX_TIME_WIDTH, MAX_REF_WIDTH, *(int(b) for b in p.bits)]
    for name, w, lim in zip(("time", "ref", *(events.NAMES[d] for d in p.dims)), widths, limits, strict=True):
        if w > lim:
            raise FormatError(f"chunk {index}: {name} column width {w} > {lim}")
    expected = body_length(n, split, widths, side_len)
    if len(body) != expected:
        raise FormatError(f"chunk {index}: body is {len(body)} bytes, its fields say {expected}")
    codes = np.zeros((n, events.N_DIMS), dtype=np.uint16)
    side = body[len(body) - side_len :]
    if not n:
        return np.zeros(0, np.int64), codes, side
    columns = _read_columns(body, FIXED_BYTES + n_cols, n, split, widths, index)
    deltas, refs = columns[0].astype(np.int64, copy=False), columns[1]
    if (refs > np.arange(n)).any():
        k = int(np.argmax(refs > np.arange(n)))
        raise FormatError(f"chunk {index}: event {k} refers {int(refs[k])} events back")
    times = start + np.cumsum(deltas)
    if times[-1] >= start + length:
        raise FormatError(f"chunk {index}: event time {int(times[-1])} outside [{start}, {start + length})")
    values = np.stack(columns[2:], axis=1) if len(p.dims) else np.zeros((n, 0), np.uint16)
    codes[:, p.dims] = _resolve(refs.astype(np.int64), values.astype(np.uint16, copy=False), p)
    return times, codes, side


def _read_columns(
    body: bytes, pos: int, n: int, split: int, widths: list[int], index: int
) -> list[np.ndarray]:
    """The columns' values from the bit and byte sections starting at ``pos``: ``uint16[n]`` for widths up
    to 16, ``int64[n]`` above (only the time deltas may be wider)."""
    bit_planes, byte_planes = _column_layout(widths, split)
    n_bits = n * bit_planes
    n_packed = (n_bits + 7) // 8
    bits = np.unpackbits(np.frombuffer(body, dtype=np.uint8, count=n_packed, offset=pos))
    if bits[n_bits:].any():
        raise FormatError(f"chunk {index}: nonzero padding bits")
    planes = bits[:n_bits].reshape(-1, n)
    byte_planes_arr = np.frombuffer(body, dtype=np.uint8, count=n * byte_planes, offset=pos + n_packed)
    byte_planes_arr = byte_planes_arr.reshape(-1, n)
    out: list[np.ndarray] = []
    bit_row = byte_row = 0
    for w in widths:
        wide = w > _CODE_BITS
        col: npt.NDArray[np.integer[Any]] = np.zeros(n, np.int64) if wide else np.zeros(n, np.uint16)
        if 0 < w <= split:
            for k in range(bit_row, bit_row + w):
                col <<= 1
                col |= planes[k]
            bit_row += w
        elif w > split:
            nb = (w + 7) // 8
            for k in range(byte_row, byte_row + nb):
                col <<= 8
                col |= byte_planes_arr[k]
            byte_row += nb
            if w % 8 and (col >> w).any():  # a multiple of 8 cannot overflow
                raise FormatError(f"chunk {index}: a value exceeds its column's width {w}")
        out.append(col)
    return out


def _resolve(refs: np.ndarray, values: np.ndarray, p: Plan) -> np.ndarray:
    """Codes from references and stored values: ``code_k = (prediction + unzigzag(value_k)) mod 2^b``.

    Vectorised by pointer jumping: every event's signed residual is summed along its chain of references
    (modulo 2^16, in ``uint16``) and the base added at the end; at most ``log2(n) + 1`` rounds."""
    n = refs.shape[0]
    acc = np.empty((n + 1, values.shape[1]), dtype=np.uint16)
    acc[:n] = (values >> 1) ^ (np.uint16(0) - (values & 1))  # zig-zag back to signed, modulo 2^16
    acc[n] = 0
    parent = np.append(np.where(refs == 0, n, np.arange(n) - refs), n)
    active = np.flatnonzero(parent[:n] != n)
    while active.size:
        up = parent[active]
        acc[active] += acc[up]
        parent[active] = parent[up]
        active = active[parent[active] != n]
    mask = ((np.int64(1) << p.bits) - 1).astype(np.uint16)
    return (acc[:n] + p.base.astype(np.uint16)[None, :]) & mask[None, :]
