"""Quantisation tables: physical event vectors ↔ integer codes (no torch import).

A table is one entry per dimension — ``bits``, ``lo``, ``hi``, ``scale`` (``lin``/``log``) and ``default`` —
written into every file's header, so a decoder uses the table the encoder used and never guesses.
A value maps to the unit interval (linear, or linear in its logarithm), then to the nearest of
``2**bits`` evenly spaced levels; ``bits == 0`` means "not transmitted, decodes to ``default``".
Scale ``sym`` (signed dimensions whose neutral value is 0: glide, pan, envelope coefficients, ...) uses a grid
symmetric about zero, ``value = (code - K) / K * M`` with ``K = 2**(bits-1) - 1`` and ``M = max(|lo|, |hi|)``,
so 0 is exact (code ``K``); values are clipped to ``lo..hi``.

Accuracy of the default table (half a step, the worst case): level 0.19 dB, pitch 1.3 cents,
log-time dims about 6 % (6 bits over 7.6 decades of range are coarser; see docs/events.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sparsecodec.errors import FormatError
from sparsecodec.format import events

MAX_BITS = 16
"""Codes are stored as uint16; a table asking for more bits is rejected."""


class TableError(FormatError, ValueError):
    """A quantisation table is malformed or incompatible with the layout."""


Table = list[dict[str, Any]] | dict[str, list[dict[str, Any]]]
"""A layout-1 table (a list of 32 entries) or a layout-2 table (one such list per event kind, by name)."""


def default_table(dims: tuple[events.Dim, ...] = events.DIMS) -> list[dict[str, Any]]:
    """A dimension table's default quantisation as plain data (one dict per dimension, in order); layout 1's
    unless ``dims`` is given."""
    return [
        {"name": d.name, "bits": d.bits, "lo": d.lo, "hi": d.hi, "scale": d.scale, "default": d.default}
        for d in dims
    ]


def layout2_table() -> dict[str, list[dict[str, Any]]]:
    """Layout 2's default table: one list per kind (:data:`events.KIND_DIMS`)."""
    return {kind: default_table(dims) for kind, dims in events.KIND_DIMS.items()}


TABLES: dict[str, Table] = {"default": default_table(), "layout2": layout2_table()}
"""Tables by name; their values are frozen in formats/spev.md.  A header names one of these (a short string)
or carries a custom table in full, so a decoder never guesses.  ``default`` is layout 1's, ``layout2``
layout 2's."""

LAYOUT_TABLE = {1: "default", 2: "layout2"}
"""The table the encoder writes for each layout."""


def table_layout(table: Table) -> int:
    """The layout a (validated) table belongs to: a list is layout 1, a map of kinds layout 2."""
    return 2 if isinstance(table, dict) else 1


def table_name(table: Table) -> str | None:
    """The registered name of ``table`` if it equals one of :data:`TABLES` exactly, else ``None``."""
    return next((name for name, t in TABLES.items() if t == table), None)


def resolve_table(table: Any) -> Table:
    """A header's ``table`` field (a registered name or a full table) → a validated table."""
    if isinstance(table, str):
        if table not in TABLES:
            known = sorted(TABLES)
            raise TableError(f"unknown quantisation table {table[:64]!r} (this decoder knows {known})")
        return _copy(TABLES[table])
    return validate_table(table)


def _copy(table: Table) -> Table:
    if isinstance(table, dict):
        return {k: [dict(e) for e in v] for k, v in table.items()}
    return [dict(e) for e in table]


def validate_table(table: Any) -> Table:
    """Check a table read from a file (layout 1: a list; layout 2: a map of kinds); return it normalised.
    Raises :class:`TableError`."""
    if isinstance(table, dict):
        if set(table) != set(events.KIND_DIMS):
            raise TableError(f"a layout-2 table maps exactly the kinds {list(events.KIND_DIMS)}")
        out2 = {kind: _validate_list(table[kind], dims) for kind, dims in events.KIND_DIMS.items()}
        kind_entry = default_table((events.KIND,))[0]
        if any(t[events.KIND_DIM] != kind_entry for t in out2.values()):
            raise TableError(f"every kind's entry {events.KIND_DIM} must be the kind code {kind_entry}")
        return out2
    return _validate_list(table, events.DIMS)


def _validate_list(table: Any, dims: tuple[events.Dim, ...]) -> list[dict[str, Any]]:
    if not isinstance(table, list) or len(table) != events.N_DIMS:
        raise TableError(f"quantisation table must list {events.N_DIMS} dimensions")
    out = []
    for i, entry in enumerate(table):
        if not isinstance(entry, dict):
            raise TableError(f"table entry {i} is not a map")
        try:
            bits = int(entry["bits"])
            lo, hi, default = float(entry["lo"]), float(entry["hi"]), float(entry["default"])
            scale = str(entry["scale"])
            name = str(entry["name"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TableError(f"table entry {i} is incomplete: {exc}") from None
        if name != dims[i].name:
            raise TableError(f"table entry {i} is {name!r}, layout says {dims[i].name!r}")
        if not 0 <= bits <= MAX_BITS:
            raise TableError(f"table entry {name!r}: bits {bits} outside 0..{MAX_BITS}")
        if scale not in ("lin", "log", "sym"):
            raise TableError(f"table entry {name!r}: unknown scale {scale!r}")
        if not all(math.isfinite(x) for x in (lo, hi, default)) or (bits and not hi > lo):
            raise TableError(f"table entry {name!r}: bad range")
        if scale == "log" and bits and lo <= 0:
            raise TableError(f"table entry {name!r}: log scale needs lo > 0")
        if scale == "sym" and bits and (bits < 2 or not lo <= 0.0 <= hi):
            raise TableError(f"table entry {name!r}: sym scale needs 2+ bits and lo <= 0 <= hi")
        out.append({"name": name, "bits": bits, "lo": lo, "hi": hi, "scale": scale, "default": default})
    return out


def _arrays(table: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-dimension bits, log flags, mapped lo/hi and defaults of a table (``sym`` handled by callers)."""
    bits = np.array([e["bits"] for e in table], dtype=np.int64)
    is_log = np.array([e["scale"] == "log" for e in table], dtype=bool)
    lo = np.array([e["lo"] for e in table], dtype=np.float64)
    hi = np.array([e["hi"] for e in table], dtype=np.float64)
    default = np.array([e["default"] for e in table], dtype=np.float64)
    lo_m = np.where(is_log, np.log(np.where(is_log, np.maximum(lo, 1e-300), 1.0)), lo)
    hi_m = np.where(is_log, np.log(np.where(is_log, np.maximum(hi, 1e-300), 1.0)), hi)
    return bits, is_log, lo_m, hi_m, default


def quantize(vectors: np.ndarray, table: Table | None = None) -> np.ndarray:
    """Physical ``float[N, 32]`` → codes ``uint16[N, 32]`` (values outside the range are clipped).  With a
    layout-2 table each event uses its kind's table (dimension 31; anything but a voice knot is a note)."""
    table = table or TABLES["default"]
    if isinstance(table, dict):
        v = np.asarray(vectors, dtype=np.float64).reshape(-1, events.N_DIMS)
        voice = events.is_voice(v)
        out = np.zeros(v.shape, dtype=np.uint16)
        notes = v[~voice].copy()
        notes[:, events.KIND_DIM] = events.KIND_NOTE  # anything but a voice knot is a note
        out[~voice] = _quantize(notes, table["note"])
        out[voice] = _quantize(v[voice], table["voice"])
        return out
    return _quantize(vectors, table)


def _quantize(vectors: np.ndarray, table: list[dict[str, Any]]) -> np.ndarray:
    bits, is_log, lo_m, hi_m, _ = _arrays(table)
    v = np.asarray(vectors, dtype=np.float64).reshape(-1, events.N_DIMS)
    mapped = np.where(is_log, np.log(np.maximum(v, 1e-300)), v)
    span = np.where(hi_m > lo_m, hi_m - lo_m, 1.0)
    unit = np.clip((mapped - lo_m) / span, 0.0, 1.0)
    levels = (1 << bits) - 1
    codes = np.rint(np.nan_to_num(unit, nan=0.0) * levels)
    is_sym, k, m = _sym(table)
    if is_sym.any():
        clipped = np.nan_to_num(np.clip(v, lo_m, hi_m), nan=0.0)
        sym_codes = np.clip(np.rint(clipped / m * k) + k, 0, 2 * k)
        codes = np.where(is_sym, sym_codes, codes)
    return np.where(bits > 0, codes, 0).astype(np.uint16)


def dequantize(codes: np.ndarray, table: Table | None = None) -> np.ndarray:
    """Codes ``uint[N, 32]`` → physical ``float64[N, 32]`` (codes above a dimension's levels are clipped).
    With a layout-2 table each event uses its kind's table; an unknown kind is a :class:`FormatError`."""
    table = table or TABLES["default"]
    if isinstance(table, dict):
        c = np.asarray(codes).reshape(-1, events.N_DIMS)
        kind = c[:, events.KIND_DIM].astype(np.int64)
        if len(kind) and int(kind.max()) >= len(events.KINDS):
            raise FormatError(f"event kind {int(kind.max())} is not known to this decoder (it reads 0-1)")
        out = np.zeros(c.shape, dtype=np.float64)
        voice = kind == events.KIND_VOICE
        out[~voice] = _dequantize(c[~voice], table["note"])
        out[voice] = _dequantize(c[voice], table["voice"])
        return out
    return _dequantize(codes, table)


def _dequantize(codes: np.ndarray, table: list[dict[str, Any]]) -> np.ndarray:
    bits, is_log, lo_m, hi_m, default = _arrays(table)
    c = np.asarray(codes).reshape(-1, events.N_DIMS).astype(np.float64)
    levels = np.maximum((1 << bits) - 1, 1)
    unit = np.minimum(c, levels) / levels
    mapped = lo_m + unit * (hi_m - lo_m)
    value = np.where(is_log, np.exp(mapped), mapped)
    is_sym, k, m = _sym(table)
    if is_sym.any():
        sym_value = np.clip((np.minimum(c, 2 * k) - k) / k * m, lo_m, hi_m)
        value = np.where(is_sym, sym_value, value)
    return np.where(bits > 0, value, default)


def _sym(table: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``sym`` dims: a mask, ``K = 2**(bits-1) - 1`` (the zero code) and ``M = max(|lo|, |hi|)``."""
    is_sym = np.array([e["scale"] == "sym" and e["bits"] >= 2 for e in table], dtype=bool)
    k = np.array([max((1 << max(e["bits"] - 1, 0)) - 1, 1) for e in table], dtype=np.float64)
    m = np.array([max(abs(e["lo"]), abs(e["hi"]), 1e-300) for e in table], dtype=np.float64)
    return is_sym, k, m


def column_widths(table: Table) -> np.ndarray:
    """``int64[32]``: the container's code width of each dimension (layout 2: the widest kind's)."""
    lists = list(table.values()) if isinstance(table, dict) else [table]
    return np.array([max(int(t[d]["bits"]) for t in lists) for d in range(events.N_DIMS)], dtype=np.int64)


def note_table(table: Table) -> list[dict[str, Any]]:
    """The table of kind ``note`` (layout 1's only table)."""
    return table["note"] if isinstance(table, dict) else table


def bits_per_event(table: Table | None = None) -> int:
    """Raw bits per event of a table, before entropy coding (time not included; layout 2: the widths of
    :func:`column_widths`)."""
    return int(column_widths(table or TABLES["default"]).sum())
