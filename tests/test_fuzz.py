"""Fuzzing the .spev reader: damaged input may only ever raise FormatError subclasses.

Three levels: raw byte mutations and truncations (caught by CRCs, sync markers, lengths), chunk payloads
mutated *behind a recomputed CRC* (exercises the value checks), and arbitrary header maps behind a valid
CRC.  Each read runs under tracemalloc with a memory cap (no huge allocation).  Every case runs on format 1
and format 2 files (format 2 decodes its bodies differently: formats/spev.md §4.4).
"""

from __future__ import annotations

import functools
import io
import os
import struct
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsecodec import errors
from sparsecodec.format import container as C
from sparsecodec.format import events, quantize

HOP = 4000
MEMORY_CAP = 48 << 20


VERSIONS = st.sampled_from(C.FORMAT_VERSIONS)


@functools.cache
def sample(version: int = C.FORMAT_VERSION) -> tuple[bytes, list[int]]:
    """A small valid file (3 chunks, side data, a silent chunk) of format ``version``, its chunk offsets."""
    rng = np.random.default_rng(3)
    header = C.Header(
        layout_version=1,
        encoder_id="fuzz",
        weights_hash="f" * 8,
        sample_rate=16000,
        channels=2,
        n_samples=3 * HOP,
        time_rate=16000,
        hop_samples=HOP,
        tags={"a": "b"},
    )
    chunks = []
    for i, n in enumerate((5, 0, 7)):
        times = np.sort(rng.integers(i * HOP, (i + 1) * HOP, n)).astype(np.int64)
        codes = quantize.quantize(events.sample_prior(rng, n))
        chunks.append(C.Chunk(i, i * HOP, HOP, times, codes, {"room": [0.5, 0.25]} if i == 2 else {}))
    bio = io.BytesIO()
    C.write_file(bio, header, chunks, format_version=version)
    data = bio.getvalue()
    entries = C.Reader(io.BytesIO(data)).index()
    assert entries is not None
    return data, [e.offset for e in entries]


@pytest.fixture(autouse=True, scope="module")
def _tracing() -> Iterator[None]:
    """tracemalloc runs once for the whole module.  Starting and stopping it for every example (as this module
    did) made the suite's memory grow with the number of examples: each start/stop cycle interleaves the
    tracer's many small allocations with long-lived ones (hypothesis' own state), which fragments the heap
    (measured: RSS +14 MB over 2 400 examples, flat without the per-example cycle)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    yield
    if started:
        tracemalloc.stop()


def read_everything(data: bytes) -> None:
    """Every reading path over ``data``; only FormatError may escape, the peak of new allocations stays under
    ``MEMORY_CAP``."""
    if not tracemalloc.is_tracing():
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    for path in range(5):
        try:
            r = C.Reader(io.BytesIO(data))
            if path == 0:
                list(r)
            elif path == 1:
                r.verify()
            elif path == 2:
                list(r.iter_tolerant())
                assert len(r.lost) <= C.MAX_CHUNKS
            elif path == 3:
                list(r.chunks_for(HOP, 2 * HOP, preroll=0))
                C.summary(r)
            else:
                list(C.Reader(io.BufferedReader(_Pipe(data))).iter_tolerant())
        except errors.FormatError:
            pass
    assert tracemalloc.get_traced_memory()[1] - base < MEMORY_CAP


class _Pipe(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return self._f.readinto(b)


def mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position fraction ×1e6, value) operations: 0 flip a bit, 1 insert, 2 delete, 3 cut."""
    buf = bytearray(data)
    for kind, where, value in ops:
        if not buf:
            break
        pos = where * len(buf) // 1_000_000
        if kind == 0:
            buf[pos] ^= 1 << (value % 8)
        elif kind == 1:
            buf[pos:pos] = bytes([value % 256]) * (1 + value % 5)
        elif kind == 2:
            del buf[pos : pos + 1 + value % 16]
        else:
            del buf[pos:]
    return bytes(buf)


OPS = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 999_999), st.integers(0, 255)), min_size=1, max_size=4
)


def fuzz_settings(n: int) -> settings:
    """~200 examples in all, no deadline, derandomised (CI runs are reproducible).

    ``SPEV_FUZZ_SCALE=k`` runs k times as many random (not derandomised) examples, for a longer local hunt.
    """
    scale = int(os.environ.get("SPEV_FUZZ_SCALE", "1"))
    return settings(
        max_examples=n * scale,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        derandomize=scale == 1,
        database=None,
    )


@fuzz_settings(100)
@given(version=VERSIONS, ops=OPS)
def test_byte_mutations_raise_only_format_errors(version: int, ops: list[tuple[int, int, int]]) -> None:
    read_everything(mutate(sample(version)[0], ops))


@fuzz_settings(60)
@given(version=VERSIONS, which=st.integers(0, 2), ops=OPS, stored=st.booleans())
def test_chunk_payloads_behind_valid_crc(
    version: int, which: int, ops: list[tuple[int, int, int]], stored: bool
) -> None:
    """Mutate one chunk's payload (optionally its uncompressed body) and re-checksum it."""
    data, offs = sample(version)
    off = offs[which]
    (n,) = struct.unpack_from("<I", data, off + 4)
    payload = data[off + 8 : off + 8 + n]
    if stored:  # re-store the body uncompressed so mutations reach the planes, columns and side data
        widths = C._widths(quantize.default_table())
        plan = C.coding.plan(quantize.default_table()) if version == 2 else None
        chunk = C.decode_chunk_payload(payload, widths, plan=plan)
        raw, _ = C._encode_body(chunk, widths) if plan is None else C._encode_body_v2(chunk, widths, plan)
        fixed = bytearray(payload[:25])
        struct.pack_into("<IB", fixed, 20, len(raw), C.METHOD_STORED)
        payload = bytes(fixed) + raw
    payload = mutate(payload, ops)
    head = C.CHUNK_SYNC + struct.pack("<I", len(payload))
    frame = head + payload + struct.pack("<I", zlib.crc32(head + payload) & 0xFFFFFFFF)
    read_everything(data[:off] + frame + data[off + 8 + n + 4 :])


def _values() -> st.SearchStrategy[Any]:
    leaf = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(),
        st.text(max_size=8),
        st.binary(max_size=8),
    )
    return st.recursive(
        leaf,
        lambda kids: st.one_of(
            st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=4), kids, max_size=4)
        ),
        max_leaves=12,
    )


@fuzz_settings(40)
@given(
    version=VERSIONS,
    replace=st.dictionaries(st.sampled_from(C._HEADER_KEYS), _values(), min_size=1, max_size=3),
)
def test_header_fields_behind_valid_crc(version: int, replace: dict[str, Any]) -> None:
    data, offs = sample(version)
    d = C.Reader(io.BytesIO(data)).header.to_dict()
    d.update(replace)
    hb = msgpack.packb(d)
    head = C.MAGIC + struct.pack("<BBII", version, 0, len(hb), len(hb)) + hb
    read_everything(head + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF) + data[offs[0] :])


@fuzz_settings(20)
@given(
    version=VERSIONS,
    n_samples=st.integers(0, 2**48 - 1),
    hop=st.integers(1, 2**32 - 1),
    n_events=st.sampled_from([0, 1, 1000, 1001, 65536]),
    length=st.integers(1, 2**32 - 1),
    start=st.integers(0, 2**40),
)
def test_declared_counts_behind_valid_crc(
    version: int, n_samples: int, hop: int, n_events: int, length: int, start: int
) -> None:
    """Crafted-valid declarations (huge lengths, tiny hops, dense chunks): only FormatError, bounded memory.
    The events are all-zero codes, so a 65536-event chunk is a few hundred bytes of zstd (format 1), or a
    38-byte body of zero-width columns (format 2: every event at the chunk's start with the base codes)."""
    d = C.Reader(io.BytesIO(sample(version)[0])).header.to_dict()
    d.update(n_samples=n_samples, hop_samples=hop)
    hb = msgpack.packb(d)
    head = C.MAGIC + struct.pack("<BBII", version, 0, len(hb), len(hb)) + hb
    head += struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF)
    if version == 1:
        raw = b"\x00" + struct.pack("<I", 0) + bytes(-(-n_events * BITS // 8))
    else:
        raw = struct.pack("<I", 0) + bytes(1 + 2 + 31)
    z = _ZSTD.compress(raw)
    payload = struct.pack("<IQIIIB", 0, start, length, n_events, len(raw), 1) + z
    chunk = C.CHUNK_SYNC + struct.pack("<I", len(payload)) + payload
    chunk += struct.pack("<I", zlib.crc32(chunk) & 0xFFFFFFFF)
    ix = struct.pack("<IQIQII", 1, len(head), 0, start, length, n_events)
    index = C.INDEX_SYNC + struct.pack("<I", len(ix)) + ix
    index += struct.pack("<I", zlib.crc32(index) & 0xFFFFFFFF)
    t = struct.pack("<4sQI", C.TRAILER_SYNC, len(head) + len(chunk), 1)
    read_everything(head + chunk + index + t + struct.pack("<I", zlib.crc32(t) & 0xFFFFFFFF))


BITS = sum(int(e["bits"]) for e in quantize.default_table())
_ZSTD = zstandard.ZstdCompressor(level=3)
