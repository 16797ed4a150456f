"""Structure-aware fuzzing of the ``.spev`` reader and decoder (not run in CI).

    python -m bench.fuzz --cases 100000 --out fuzz.md [--workers 2] [--timeout 10] [--batch 200]

Each case is a mutation of a valid file (the golden files in ``formats/golden/`` and small files made here):
bit flips, truncation, splices, trailing bytes, inflated lengths, hostile msgpack (huge declared
array/map/str lengths, deep nesting, odd values) in the header and the side data, chunk fields set to
boundary values, bit planes flipped behind a stored body, zstd frames that claim or expand to gigabytes or use
a huge window, index and trailer edits, chunks reordered, duplicated or past the end, and crafted-valid files
(huge declared durations, millions of tiny events).  Structural mutations recompute every CRC, so they reach
msgpack, zstd and the bit planes; the report gives the share of cases that did.

Every case runs in-process in a forked child (one child per batch of cases, ``--workers`` at a time) through
``codec.verify_file`` and ``codec.decode_file`` (WAV into a null sink, ``max_duration_s=--decode-max-s``: a
decode costs time in proportion to the declared duration, which that limit bounds), under a per-case
``SIGALRM`` timeout and an address-space cap.  Outcomes: a clean error (a ``SpevError`` subclass, by class),
a crash (any other exception, or the child dying on a signal), a hang (the timeout).  The report also gives
the worst peak RSS of a child (``ru_maxrss``) and the worst time per case.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import select
import signal
import struct
import sys
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, cast

import msgpack
import numpy as np
import zstandard

from sparsecodec import api as codec
from sparsecodec import errors
from sparsecodec.format import container as C
from sparsecodec.format import events, quantize

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "formats" / "golden"
AS_LIMIT = 3 << 30
"""Address-space cap of a child (bytes): a runaway allocation fails instead of swapping the machine."""
_FIXED = struct.Struct("<IQIIIB")
_INTERESTING_INTS = [0, 1, 2, 7, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**47, 2**48 - 1,
                     2**48, 2**63 - 1, 2**64 - 1, -1, -(2**63)]  # fmt: skip
_U32_VALUES = [
    0,
    1,
    2,
    255,
    1000,
    1001,
    65535,
    65536,
    65537,
    1 << 20,
    1 << 23,
    (1 << 23) + 1,
    2**31,
    2**32 - 1,
]


class CaseTimeout(BaseException):
    """SIGALRM in a child: the case ran past ``--timeout`` (a BaseException: no ``except`` hides it)."""


# ------------------------------------------------------------------------------------------ seed files


def _small_file(rng: np.random.Generator, seconds: float, rate: int, channels: int, per_chunk: int) -> bytes:
    """A small valid file: one chunk per second, random prior events, room side data on odd chunks."""
    n = round(seconds * rate)
    header = C.Header(
        layout_version=1,
        encoder_id="fuzz",
        weights_hash="0" * 16,
        sample_rate=rate,
        channels=channels,
        n_samples=n,
        time_rate=rate,
        hop_samples=rate,
        tags={"title": "fuzz"},
    )
    chunks = []
    for i, start in enumerate(range(0, n, rate)):
        length = min(rate, n - start)
        k = per_chunk if i % 3 != 1 else 0
        times = np.sort(rng.integers(start, start + length, k)).astype(np.int64)
        codes = quantize.quantize(events.sample_prior(rng, k))
        chunks.append(C.Chunk(i, start, length, times, codes, {"room": [0.4, 0.5]} if i % 2 else {}))
    bio = io.BytesIO()
    C.write_file(bio, header, chunks)
    return bio.getvalue()


def seed_files() -> list[bytes]:
    """The golden files and a few small synthetic ones (8-16 kHz, 1-3 s: cheap to decode)."""
    rng = np.random.default_rng(11)
    seeds = [p.read_bytes() for p in sorted(GOLDEN.glob("*.spev"))]
    seeds += [
        _small_file(rng, 2.0, 8000, 1, 6),
        _small_file(rng, 3.0, 8000, 2, 4),
        _small_file(rng, 1.5, 16000, 1, 12),
        _small_file(rng, 2.5, 11025, 2, 3),
    ]
    return seeds


# ------------------------------------------------------------------------------------ file structure


class Parts:
    """A valid file split into its structures (header map, chunk payloads); :meth:`build` re-assembles it
    with fresh CRCs, index and trailer (or the ones given)."""

    def __init__(self, data: bytes) -> None:
        r = C.Reader(io.BytesIO(data))
        self.header: dict[str, Any] = r.header.to_dict()
        entries = r.index()
        assert entries is not None
        self.chunks: list[bytes] = []
        for e in entries:
            (n,) = struct.unpack_from("<I", data, e.offset + 4)
            self.chunks.append(data[e.offset + 8 : e.offset + 8 + n])

    def header_block(
        self, body: bytes | None = None, method: int = 0, lens: tuple[int, int] | None = None
    ) -> bytes:
        hb = msgpack.packb(self.header, use_bin_type=True) if body is None else body
        data = zstandard.ZstdCompressor(level=3).compress(hb) if method == 1 else hb
        stored, raw = lens if lens is not None else (len(data), len(hb))
        head = C.MAGIC + struct.pack("<BBII", 1, method, stored, raw) + data
        return head + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF)


def frame(sync: bytes, payload: bytes, length: int | None = None) -> bytes:
    """A frame with a correct CRC (``length`` overrides the stored payload length)."""
    head = sync + struct.pack("<I", len(payload) if length is None else length)
    return head + payload + struct.pack("<I", zlib.crc32(head + payload) & 0xFFFFFFFF)


def assemble(
    head: bytes, payloads: list[bytes], index_rows: Sequence[tuple[int, ...]] | None = None
) -> bytes:
    """Header block + chunk frames + a matching (or the given) index + trailer, every CRC correct."""
    out = bytearray(head)
    rows: list[tuple[int, ...]] = []
    for p in payloads:
        fields = _FIXED.unpack_from(p) if len(p) >= _FIXED.size else (0, 0, 0, 0, 0, 0)
        rows.append((len(out), fields[0], fields[1], fields[2], fields[3]))
        out += frame(C.CHUNK_SYNC, p)
    if index_rows is not None:
        rows = list(index_rows)
    ix = struct.pack("<I", len(rows)) + b"".join(
        struct.pack("<QIQII", *(v & m for v, m in zip(r, _IX_MASKS, strict=True))) for r in rows
    )
    off = len(out)
    out += frame(C.INDEX_SYNC, ix)
    t = struct.pack("<4sQI", C.TRAILER_SYNC, off, len(rows))
    out += t + struct.pack("<I", zlib.crc32(t) & 0xFFFFFFFF)
    return bytes(out)


_IX_MASKS = (2**64 - 1, 2**32 - 1, 2**64 - 1, 2**32 - 1, 2**32 - 1)


def chunk_payload(
    index: int, start: int, length: int, n: int, body: bytes, method: int, raw_len: int | None = None
) -> bytes:
    return _FIXED.pack(index, start, length, n, len(body) if raw_len is None else raw_len, method) + body


def raw_body(p: bytes) -> bytes:
    """The decompressed body of a valid chunk payload."""
    _, _, _, _, raw_len, method = _FIXED.unpack_from(p)
    data = p[_FIXED.size :]
    return zstandard.ZstdDecompressor().decompress(data, max_output_size=raw_len) if method == 1 else data


# ----------------------------------------------------------------------------------- hostile pieces


def hostile_msgpack(rng: random.Random) -> bytes:
    """msgpack that declares huge lengths, nests deeply or is otherwise odd."""
    k = rng.randrange(9)
    big = rng.choice([2**16, 2**24, 2**31, 2**32 - 1])
    if k == 0:
        return b"\xdd" + struct.pack(">I", big)  # array32 with nothing behind it
    if k == 1:
        return b"\xdf" + struct.pack(">I", big)  # map32
    if k == 2:
        return b"\xdb" + struct.pack(">I", big) + b"x" * rng.randrange(16)  # str32
    if k == 3:
        return b"\xc6" + struct.pack(">I", big)  # bin32
    if k == 4:
        depth = rng.choice([100, 1000, 10_000, 100_000])
        return b"\x91" * depth + b"\xc0"  # nested arrays
    if k == 5:
        depth = rng.choice([100, 1000, 10_000])
        return b"\x81\xa1k" * depth + b"\xc0"  # nested maps
    if k == 6:
        return b"\xc7\x01\x05x"  # an ext type
    if k == 7:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    return b"\xdc" + struct.pack(">H", 65535) + b"\xc0" * rng.randrange(100)  # array16, short


_ZSTD_CACHE: dict[str, bytes] = {}


def zstd_bomb(rng: random.Random) -> tuple[bytes, int]:
    """(zstd frame, declared raw length): expands past the declared length, claims a huge content size, or
    needs a window over 8 MiB."""
    if not _ZSTD_CACHE:
        z = zstandard.ZstdCompressor(level=1, write_content_size=False)
        _ZSTD_CACHE["zeros64m"] = z.compress(bytes(64 << 20))
        _ZSTD_CACHE["claim"] = zstandard.ZstdCompressor(level=1, write_content_size=True).compress(
            bytes(1 << 20)
        )
        params = zstandard.ZstdCompressionParameters.from_level(1, window_log=27)
        _ZSTD_CACHE["window"] = zstandard.ZstdCompressor(compression_params=params).compress(bytes(32 << 20))
    k = rng.randrange(4)
    if k == 0:
        return _ZSTD_CACHE["zeros64m"], rng.choice([100, 1 << 20, C.MAX_CHUNK_RAW_BYTES])
    if k == 1:  # the content-size field edited to claim ~4 GiB (the frame header's last 4 bytes)
        f = bytearray(_ZSTD_CACHE["claim"])
        fhd = f[4]
        fcs_size = [0, 2, 4, 8][fhd >> 6] or (1 if fhd & 0x20 else 0)
        pos = 5 + (0 if fhd & 0x20 else 1) + [0, 1, 2, 4][fhd & 3]
        if fcs_size >= 4:
            f[pos : pos + 4] = struct.pack("<I", 0xFFFFFFF0)
        return bytes(f), 1 << 20
    if k == 2:
        return _ZSTD_CACHE["window"], C.MAX_CHUNK_RAW_BYTES
    return bytes(rng.randrange(256) for _ in range(rng.randrange(4, 200))), rng.randrange(1 << 20)


# ---------------------------------------------------------------------------------------- mutations


def _flip(data: bytes, rng: random.Random, n: int) -> bytes:
    b = bytearray(data)
    for _ in range(n):
        if b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _pick_value(rng: random.Random, key: str) -> Any:
    k = rng.randrange(8)
    if k < 3:
        return rng.choice(_INTERESTING_INTS)
    if k == 3:
        return rng.choice([None, True, 1.5, float("nan"), "x" * rng.choice([0, 10, 2000]), b"\x00"])
    if k == 4:
        return [rng.choice(_INTERESTING_INTS) for _ in range(rng.randrange(5))]
    if k == 5:
        return {"k": rng.choice(_INTERESTING_INTS), "n": {"d": [1, 2]}}
    if k == 6 and key in ("sample_rate", "time_rate"):
        return rng.choice([1, 1000, 8000, 44100, 384000, 1 << 20])
    return rng.randrange(-10, 1 << rng.randrange(1, 50))


def mutate(seed: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One case: (mutation kind, bytes)."""
    kind = rng.choice(KINDS)
    p = Parts(seed)
    head = p.header_block(method=rng.randrange(2))
    if kind == "bitflip":
        return kind, _flip(seed, rng, rng.choice([1, 1, 2, 4, 16]))
    if kind == "truncate":
        return kind, seed[: rng.randrange(len(seed))]
    if kind == "splice":
        b = bytearray(seed)
        i, j = sorted(rng.randrange(len(b) + 1) for _ in range(2))
        op = rng.randrange(3)
        if op == 0:
            del b[i:j]
        elif op == 1:
            b[i:i] = b[i:j]
        else:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 32)))
        return kind, bytes(b)
    if kind == "trailing":
        return kind, seed + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if kind == "header_field":
        for _ in range(rng.randrange(1, 4)):
            key = rng.choice([*C._HEADER_KEYS, "extra"])
            if rng.random() < 0.15:
                p.header.pop(key, None)
            else:
                p.header[key] = _pick_value(rng, key)
        body = msgpack.packb(p.header, use_bin_type=True)
        return kind, assemble(p.header_block(body, rng.randrange(2)), p.chunks)
    if kind == "header_msgpack":
        body = hostile_msgpack(rng)
        if rng.random() < 0.5:  # inside the map, as a value
            packed = msgpack.packb({k: v for k, v in p.header.items() if k != "settings"}, use_bin_type=True)
            body = bytes([packed[0] + 1]) + packed[1:] + msgpack.packb("settings") + body
        return kind, assemble(p.header_block(body, rng.randrange(2)), p.chunks)
    if kind == "header_lengths":
        hb = msgpack.packb(p.header, use_bin_type=True)
        lens = (
            rng.choice([len(hb), len(hb) + 1, C.MAX_HEADER_BYTES, 2**32 - 1]),
            rng.choice([len(hb), 0, C.MAX_HEADER_BYTES, C.MAX_HEADER_BYTES + 1]),
        )
        return kind, assemble(p.header_block(hb, 0, lens), p.chunks)
    if kind == "frame_length" and p.chunks:
        data = assemble(head, p.chunks)
        i = rng.randrange(len(p.chunks))
        entries = C.Reader(io.BytesIO(data)).index()
        assert entries is not None
        off = entries[i].offset
        b = bytearray(data)
        struct.pack_into("<I", b, off + 4, rng.choice(_U32_VALUES))
        return kind, bytes(b)
    if kind == "chunk_fields" and p.chunks:
        i = rng.randrange(len(p.chunks))
        fields = list(_FIXED.unpack_from(p.chunks[i]))
        j = rng.randrange(6)
        fields[j] = rng.choice(_U32_VALUES if j != 1 else [0, 1, 2**32, 2**47, 2**48 - 1, 2**64 - 1]) % (
            2**64 if j == 1 else 2**32
        )
        if j == 5:
            fields[5] = rng.randrange(256)
        payloads = list(p.chunks)
        payloads[i] = _FIXED.pack(*fields) + p.chunks[i][_FIXED.size :]
        return kind, assemble(head, payloads)
    if kind == "planes" and p.chunks:
        i = rng.randrange(len(p.chunks))
        index, start, length, n, _, _ = _FIXED.unpack_from(p.chunks[i])
        body = _flip(raw_body(p.chunks[i]), rng, rng.choice([1, 2, 8]))
        payloads = list(p.chunks)
        payloads[i] = chunk_payload(index, start, length, n, body, 0)
        return kind, assemble(head, payloads)
    if kind == "side_msgpack" and p.chunks:
        i = rng.randrange(len(p.chunks))
        index, start, length, n, _, _ = _FIXED.unpack_from(p.chunks[i])
        body = raw_body(p.chunks[i])
        (side_len,) = struct.unpack_from("<I", body, 1)
        planes = body[5 : len(body) - side_len]
        side = (
            hostile_msgpack(rng)
            if rng.random() < 0.7
            else msgpack.packb({"room": [rng.choice([-1.0, 1e30, float("inf")]), 0.0], "x" * 70: [1]})
        )
        body = body[:1] + struct.pack("<I", len(side)) + planes + side
        payloads = list(p.chunks)
        method = rng.randrange(2)
        data = zstandard.ZstdCompressor(level=3).compress(body) if method else body
        payloads[i] = chunk_payload(index, start, length, n, data, method, len(body))
        return kind, assemble(head, payloads)
    if kind == "zstd" and p.chunks:
        i = rng.randrange(len(p.chunks))
        index, start, length, n, _, _ = _FIXED.unpack_from(p.chunks[i])
        z, raw_len = zstd_bomb(rng)
        payloads = list(p.chunks)
        payloads[i] = chunk_payload(index, start, length, n, z, 1, raw_len)
        if rng.random() < 0.3:  # or the header
            return kind, assemble(_header_with_body(z, raw_len), p.chunks)
        return kind, assemble(head, payloads)
    if kind == "index" and p.chunks:
        data = assemble(head, p.chunks)
        entries = C.Reader(io.BytesIO(data)).index()
        assert entries is not None
        rows: list[tuple[int, ...]] = [(e.offset, e.index, e.start, e.length, e.n_events) for e in entries]
        r = list(rows[rng.randrange(len(rows))])
        r[rng.randrange(5)] = rng.choice(_INTERESTING_INTS) % 2**32
        rows[rng.randrange(len(rows))] = tuple(r)
        if rng.random() < 0.2:
            rows = rows * rng.choice([2, 1000])
        return kind, assemble(head, p.chunks, rows)
    if kind == "reorder" and len(p.chunks) > 1:
        payloads = list(p.chunks)
        op = rng.randrange(3)
        if op == 0:
            rng.shuffle(payloads)
        elif op == 1:
            payloads.insert(rng.randrange(len(payloads)), payloads[rng.randrange(len(payloads))])
        else:
            del payloads[rng.randrange(len(payloads))]
        return kind, assemble(head, payloads)
    if kind == "past_end":
        hdr = p.header
        end = -(-hdr["n_samples"] * hdr["time_rate"] // hdr["sample_rate"])
        payloads = list(p.chunks)
        body = b"\x00" + struct.pack("<I", 0)
        payloads.append(chunk_payload(len(payloads), end + rng.randrange(0, 1 << 20), 100, 0, body, 0))
        return kind, assemble(head, payloads)
    if kind == "long":  # crafted-valid: a huge declared duration, header only or with a chunk near its end
        hdr = p.header
        hdr["n_samples"] = rng.choice(
            [hdr["sample_rate"] * s for s in (60, 3600, 86_400, 86_401, 10**6)] + [2**48]
        )
        hdr["hop_samples"] = rng.choice([hdr["hop_samples"], 1, 2**32 - 1])
        body = msgpack.packb(hdr, use_bin_type=True)
        payloads = []
        if rng.random() < 0.5:
            end = -(-hdr["n_samples"] * hdr["time_rate"] // hdr["sample_rate"])
            payloads = [chunk_payload(0, max(end - 1000, 0), 1000, 0, b"\x00" + struct.pack("<I", 0), 0)]
        return kind, assemble(p.header_block(body, 1), payloads)
    if kind == "dense":  # crafted-valid: many chunks of up to 65536 identical events (zstd squeezes them)
        hdr = p.header
        rate = hdr["time_rate"]
        n = rng.choice([1000, 4096, 65536])
        n_chunks = rng.choice([1, 10, 100])
        length = rng.choice([1, rate // 10, rate, 66 * rate])
        hdr["n_samples"] = length * n_chunks * hdr["sample_rate"] // rate + 1
        hdr["hop_samples"] = length
        z, raw_len = dense_body(quantize.resolve_table(hdr["table"]), n)
        payloads = [chunk_payload(i, i * length, length, n, z, 1, raw_len) for i in range(n_chunks)]
        return kind, assemble(p.header_block(msgpack.packb(hdr, use_bin_type=True), 1), payloads)
    return "bitflip", _flip(seed, rng, 1)


_DENSE_CACHE: dict[tuple[tuple[int, ...], int], tuple[bytes, int]] = {}


def dense_body(table: quantize.Table, n: int) -> tuple[bytes, int]:
    """(zstd body, raw length) of ``n`` events at the chunk's start with all codes 0 (cached: the parent
    builds them before forking, so making a case does not count in a child's peak RSS)."""
    widths = C._widths(table)
    key = (tuple(int(w) for w in widths), n)
    if key not in _DENSE_CACHE:
        chunk = C.Chunk(0, 0, 1 << 30, np.zeros(n, np.int64), np.zeros((n, 32), np.uint16))
        raw, _ = C._encode_body(chunk, widths)
        _DENSE_CACHE[key] = (zstandard.ZstdCompressor(level=3).compress(raw), len(raw))
    return _DENSE_CACHE[key]


def _header_with_body(z: bytes, raw_len: int) -> bytes:
    head = C.MAGIC + struct.pack("<BBII", 1, 1, len(z), min(raw_len, C.MAX_HEADER_BYTES)) + z
    return head + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF)


KINDS = ("bitflip", "truncate", "splice", "trailing", "header_field", "header_msgpack", "header_lengths",
         "frame_length", "chunk_fields", "planes", "side_msgpack", "zstd", "index", "reorder", "past_end",
         "long", "dense")  # fmt: skip
STRUCTURAL = {"header_field", "header_msgpack", "header_lengths", "frame_length", "chunk_fields", "planes",
              "side_msgpack", "zstd", "index", "reorder", "past_end", "long", "dense"}  # fmt: skip
"""Kinds that recompute the CRCs after mutating."""


# --------------------------------------------------------------------------------------------- child


_REACHED: set[str] = set()


def _instrument() -> None:
    """Wrap the container's msgpack, zstd and bit-plane decoders to record which a case reached."""

    def wrap(name: str, tag: str) -> None:
        real = getattr(C, name)

        def spy(*args: Any, **kw: Any) -> Any:
            _REACHED.add(tag)
            return real(*args, **kw)

        setattr(C, name, spy)

    wrap("_unpack_msgpack", "msgpack")
    wrap("_decompress", "zstd")
    wrap("_decode_body", "planes")


class _NullSink(io.RawIOBase):
    """A write-only, non-seekable sink that counts bytes."""

    def __init__(self) -> None:
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        n = len(memoryview(b))
        self.n += n
        return n


def _outcome(fn: Any) -> str:
    try:
        fn()
        return "ok"
    except CaseTimeout:
        raise
    except errors.SpevError as exc:
        return "clean:" + type(exc).__name__
    except BaseException as exc:  # the point: anything else is a crash
        return f"crash:{type(exc).__name__}: {str(exc)[:200]}"


def run_case(case: int, seeds: list[bytes], decode_max_s: float) -> dict[str, Any]:
    rng = random.Random(case)
    kind, data = mutate(seeds[rng.randrange(len(seeds))], rng)
    _REACHED.clear()
    t = time.perf_counter()
    verify = _outcome(lambda: codec.verify_file(io.BytesIO(data)))
    verify_at = _outcome(lambda: codec.verify_file(io.BytesIO(data), max_duration_s=decode_max_s))
    decode = _outcome(
        lambda: codec.decode_file(
            io.BytesIO(data), cast(BinaryIO, _NullSink()), fmt="wav", max_duration_s=decode_max_s
        )
    )
    return {
        "case": case,
        "kind": kind,
        "crc_fixed": kind in STRUCTURAL,
        "size": len(data),
        "verify": verify,
        "verify_at": verify_at,
        "decode": decode,
        "reached": sorted(_REACHED),
        "s": round(time.perf_counter() - t, 4),
        "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def _child(cases: list[int], seeds: list[bytes], timeout: float, decode_max_s: float, wfd: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    os.environ["OMP_NUM_THREADS"] = "1"
    _instrument()

    def alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout()

    signal.signal(signal.SIGALRM, alarm)
    out = os.fdopen(wfd, "w", buffering=1)
    for case in cases:
        out.write(json.dumps({"start": case}) + "\n")
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            rec = run_case(case, seeds, decode_max_s)
        except CaseTimeout:
            rec = {"case": case, "kind": "?", "hang": True, "s": timeout}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        out.write(json.dumps(rec) + "\n")
    out.close()
    os._exit(0)


# -------------------------------------------------------------------------------------------- parent


def run(n_cases: int, workers: int, batch: int, timeout: float, decode_max_s: float, first: int) -> dict:
    seeds = seed_files()
    zstd_bomb(random.Random(0))  # build the cached frames once, before forking
    for seed in seeds:
        for n in (1000, 4096, 65536):
            dense_body(C.Reader(io.BytesIO(seed)).header.table, n)
    from sparsecodec.synth import render_np  # noqa: F401 - imported once, shared by the children

    todo = [list(range(a, min(a + batch, first + n_cases))) for a in range(first, first + n_cases, batch)]
    records: list[dict[str, Any]] = []
    active: dict[int, dict[str, Any]] = {}
    t0 = time.time()
    worst_child_rss = shown = 0
    while todo or active:
        while todo and len(active) < workers:
            cases = todo.pop(0)
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                try:
                    _child(cases, seeds, timeout, decode_max_s, w)
                finally:
                    os._exit(70)
            os.close(w)
            active[pid] = {
                "f": os.fdopen(r),
                "cases": cases,
                "done": set(),
                "current": None,
                "since": time.time(),
                "buf": "",
            }
        fds = {a["f"].fileno(): pid for pid, a in active.items()}
        ready, _, _ = select.select(list(fds), [], [], 0.5)
        for fd in ready:
            a = active[fds[fd]]
            chunk = os.read(fd, 1 << 16).decode()
            a["buf"] += chunk
            *lines, a["buf"] = a["buf"].split("\n")
            for line in lines:
                rec = json.loads(line)
                if "start" in rec:
                    a["current"], a["since"] = rec["start"], time.time()
                else:
                    records.append(rec)
                    a["done"].add(rec["case"])
                    a["current"] = None
        for pid, a in list(active.items()):
            if a["current"] is not None and time.time() - a["since"] > timeout * 3:
                os.kill(pid, signal.SIGKILL)  # a hang the alarm could not interrupt
            done, status, ru = os.wait4(pid, os.WNOHANG)
            if done == 0:
                continue
            worst_child_rss = max(worst_child_rss, ru.ru_maxrss)
            rest = a["f"].read()
            for line in (a["buf"] + rest).split("\n"):
                if line.strip():
                    rec = json.loads(line)
                    if "start" in rec:
                        a["current"] = rec["start"]
                    else:
                        records.append(rec)
                        a["done"].add(rec["case"])
                        a["current"] = None
            a["f"].close()
            del active[pid]
            if a["current"] is not None:  # died inside a case: a signal death (crash) or killed as a hang
                sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
                tag = "hang" if sig == signal.SIGKILL else f"crash:signal {sig or os.WEXITSTATUS(status)}"
                records.append(
                    {
                        "case": a["current"],
                        "kind": "?",
                        "verify": tag,
                        "decode": tag,
                        "s": timeout,
                        "rss_kb": ru.ru_maxrss,
                        "hang": sig == signal.SIGKILL,
                    }
                )
                a["done"].add(a["current"])
            rest_cases = [c for c in a["cases"] if c not in a["done"]]
            if rest_cases:
                todo.insert(0, rest_cases)
        if len(records) >= shown + 5000:
            shown = len(records) - len(records) % 5000
            print(f"{len(records)}/{n_cases} cases, {time.time() - t0:.0f} s", file=sys.stderr)
    print(file=sys.stderr)
    return {"records": records, "wall_s": time.time() - t0, "worst_child_rss_kb": worst_child_rss}


def summarise(res: dict[str, Any], args: argparse.Namespace) -> str:
    recs = res["records"]
    n = len(recs)
    outcomes: Counter[str] = Counter()
    crashes = [
        r
        for r in recs
        if any(str(r.get(k, "")).startswith("crash") for k in ("verify", "verify_at", "decode"))
    ]
    hangs = [r for r in recs if r.get("hang")]
    for r in recs:
        for k in ("verify", "decode"):
            v = str(r.get(k, ""))
            if v.startswith("clean:"):
                outcomes[f"{k}: {v[6:]}"] += 1
            elif v == "ok":
                outcomes[f"{k}: ok"] += 1
    fixed = [r for r in recs if r.get("crc_fixed")]
    reach = Counter(t for r in recs for t in r.get("reached", []))
    reach_fixed = Counter(t for r in fixed for t in r.get("reached", []))
    agree = sum(1 for r in recs if (r.get("verify_at") == "ok") == (r.get("decode") == "ok"))
    unsupported = sum(
        1 for r in recs if r.get("verify_at") == "ok" and r.get("decode") == "clean:UnsupportedStreamError"
    )
    worst_t = max(recs, key=lambda r: r.get("s", 0))
    worst_rss = max(r.get("rss_kb", 0) for r in recs)
    kinds = Counter(r.get("kind", "?") for r in recs)

    def share(tag: str) -> str:
        return f"{reach[tag] / max(n, 1):.1%} / {reach_fixed[tag] / max(len(fixed), 1):.1%}"

    cmd = (
        f"python -m bench.fuzz --cases {args.cases} --workers {args.workers} --timeout {args.timeout:g} "
        f"--batch {args.batch} --decode-max-s {args.decode_max_s:g}"
    )
    rss_mb = max(worst_rss, res["worst_child_rss_kb"]) / 1024
    worst = f"{worst_t.get('s', 0):.2f} s (case {worst_t.get('case')}, {worst_t.get('kind')})"
    lines = [
        f"Command: `{cmd}`",
        "",
        "| measure | value |",
        "|---|---|",
        f"| cases | {n} |",
        f"| cases with CRCs recomputed (structural) | {len(fixed)} ({len(fixed) / max(n, 1):.0%}) |",
        f"| reached msgpack (all / structural) | {share('msgpack')} |",
        f"| reached zstd (all / structural) | {share('zstd')} |",
        f"| reached the bit planes (all / structural) | {share('planes')} |",
        f"| crashes (non-SpevError exception or signal death) | {len(crashes)} |",
        f"| hangs (> {args.timeout:g} s) | {len(hangs)} |",
        f"| verify and decode agree, same limits | {agree} ({agree / max(n, 1):.2%}) |",
        f"| of the rest: valid files this decoder does not render (UnsupportedStreamError) | {unsupported} |",
        f"| worst peak RSS of a child | {rss_mb:.0f} MB |",
        f"| worst time per case (verify twice + decode) | {worst} |",
        f"| total wall time ({args.workers} workers) | {res['wall_s'] / 60:.1f} min |",
        "",
        "| outcome (per pass) | cases |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in sorted(outcomes.items())),
        "",
        "| mutation | cases |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in sorted(kinds.items())),
    ]
    if crashes or hangs:
        lines += ["", "Crashes and hangs (case: kind, verify, decode):", ""]
        lines += [
            f"- {r['case']}: {r.get('kind')}, {r.get('verify')}, {r.get('decode')}"
            for r in (crashes + hangs)[:50]
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=None, help="write the Markdown report here (and FILE.jsonl)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=250, help="cases per forked child")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--decode-max-s", type=float, default=60.0, help="max_duration_s of the decode pass")
    ap.add_argument("--first", type=int, default=0, help="first case number (cases are reproducible)")
    args = ap.parse_args(argv)
    res = run(args.cases, args.workers, args.batch, args.timeout, args.decode_max_s, args.first)
    report = summarise(res, args)
    print(report)
    if args.out is not None:
        args.out.write_text(report)
        with open(args.out.with_suffix(".jsonl"), "w") as f:
            for r in res["records"]:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
