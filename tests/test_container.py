"""The .spev container: round trips, pipes, seeking, damage detection and limits (formats/spev.md)."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import threading
import tracemalloc
import zlib
from typing import Any

import msgpack
import numpy as np
import pytest
import zstandard

from sparsecodec import errors
from sparsecodec.format import container as C
from sparsecodec.format import events, quantize

RATE = 22050
HOP = 11025


class Pipe(io.RawIOBase):
    """A non-seekable byte stream (reads and writes), like stdin/stdout on a pipe."""

    def __init__(self, data: bytes = b"", chunk: int = 7) -> None:
        self._data = bytearray(data)
        self._chunk = chunk  # short reads, as a pipe may give
        self.written = bytearray()

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        raise OSError("pipe")

    def seek(self, *_: Any) -> int:
        raise OSError("pipe")

    def readinto(self, b: Any) -> int:
        n = min(len(b), self._chunk, len(self._data))
        b[:n] = self._data[:n]
        del self._data[:n]
        return n

    def write(self, b: Any) -> int:
        self.written += bytes(b)
        return len(b)


def make_header(channels: int = 1, n_chunks: int = 4, **kw: Any) -> C.Header:
    fields: dict[str, Any] = {
        "layout_version": 1,
        "encoder_id": "test",
        "weights_hash": "0" * 16,
        "sample_rate": RATE,
        "channels": channels,
        "n_samples": n_chunks * HOP,
        "time_rate": RATE,
        "hop_samples": HOP,
        "settings": {"kbps": 3.0, "refine": 0},
        "tags": {"title": "test é"},
    }
    return C.Header(**{**fields, **kw})


def make_chunks(n_chunks: int = 4, per_chunk: int = 30, seed: int = 0, side: bool = True) -> list[C.Chunk]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_chunks):
        n = 0 if i == 2 else per_chunk  # one silent chunk
        times = np.sort(rng.integers(i * HOP, (i + 1) * HOP, n)).astype(np.int64)
        codes = quantize.quantize(events.sample_prior(rng, n))
        s = {"room": [0.75, 0.5]} if side and i % 2 else {}
        out.append(C.Chunk(i, i * HOP, HOP, times, codes, s))
    return out


def encode(header: C.Header | None = None, chunks: list[C.Chunk] | None = None) -> bytes:
    bio = io.BytesIO()
    C.write_file(bio, header or make_header(), make_chunks() if chunks is None else chunks)
    return bio.getvalue()


def assert_same(a: list[C.Chunk], b: list[C.Chunk]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x.index, x.start, x.length) == (y.index, y.start, y.length)
        np.testing.assert_array_equal(x.times, y.times)
        np.testing.assert_array_equal(x.codes, y.codes)
        assert y.codes.dtype == np.uint16 and y.times.dtype == np.int64
        assert x.side == y.side


def chunk_offsets(data: bytes) -> list[int]:
    r = C.Reader(io.BytesIO(data))
    entries = r.index()
    assert entries is not None
    return [e.offset for e in entries]


def refresh_crc(data: bytearray, offset: int) -> None:
    """Recompute the CRC of the frame at ``offset`` (to forge a well-checksummed but invalid frame)."""
    (n,) = struct.unpack_from("<I", data, offset + 4)
    crc = zlib.crc32(bytes(data[offset : offset + 8 + n])) & 0xFFFFFFFF
    struct.pack_into("<I", data, offset + 8 + n, crc)


def raw_header(d: dict[str, Any], version: int = 1) -> bytes:
    """A header block holding ``d`` as plain msgpack with a valid CRC."""
    hb = msgpack.packb(d)
    head = C.MAGIC + struct.pack("<BBII", version, 0, len(hb), len(hb)) + hb
    return head + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF)


# --------------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("channels", [1, 2])
def test_round_trip(channels: int) -> None:
    header, chunks = make_header(channels), make_chunks()
    data = encode(header, chunks)
    r = C.Reader(io.BytesIO(data))
    assert r.header.to_dict() == header.to_dict()
    assert r.header.table == quantize.default_table()
    assert_same(chunks, list(r))
    assert_same(chunks, list(r))  # seekable: can iterate again
    assert r.verify().n_events == sum(len(c.times) for c in chunks)


def test_writer_is_deterministic_and_empty_file_is_valid() -> None:
    assert encode() == encode()
    empty = encode(make_header(n_chunks=0), [])
    r = C.Reader(io.BytesIO(empty))
    assert list(r) == [] and r.index() == []
    s = C.summary(r)
    assert s.n_events == 0 and s.n_chunks == 0 and s.file_bytes == len(empty)


def test_side_data_is_float32_and_typed() -> None:
    chunks = make_chunks(2)
    chunks[1].side = {"room": np.array([0.1, 0.3]), "extra": (1, 2.5, 3)}
    back = list(C.Reader(io.BytesIO(encode(make_header(n_chunks=2), chunks))))
    assert back[1].side == {
        "room": [float(np.float32(0.1)), float(np.float32(0.3))],
        "extra": [1.0, 2.5, 3.0],
    }
    assert back[0].side == {}
    bads: list[dict[Any, Any]] = [
        {"room": [1.0]},
        {"room": [-1.0, 0.0]},
        {"room": ["a", "b"]},
        {"x": [float("nan")]},
        {1: [1.0]},
    ]
    for bad in bads:
        chunks[1].side = bad
        with pytest.raises(errors.FormatError):
            encode(make_header(n_chunks=2), chunks)


def test_bytes_per_event_is_small() -> None:
    """Prior events, default table, ~60 events per chunk: close to the table's 170 raw bits + time."""
    chunks = make_chunks(8, per_chunk=60, side=False)
    n = sum(len(c.times) for c in chunks)
    full = len(encode(make_header(n_chunks=8), chunks))
    head = len(encode(make_header(n_chunks=8), []))
    per_event = (full - head) / n
    assert per_event < 24.0, per_event
    assert head < 1000  # the header (with the quantisation table) is compressed


def test_container_does_not_import_torch() -> None:
    code = (
        "import sys, sparsecodec.format.container as c; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------- pipes


def test_pipe_write_gives_same_bytes_and_pipe_read_works() -> None:
    header, chunks = make_header(2), make_chunks()
    pipe = Pipe()
    C.write_file(pipe, header, chunks)  # type: ignore[arg-type]
    data = bytes(pipe.written)
    assert data == encode(header, chunks)
    r = C.Reader(Pipe(data))  # type: ignore[arg-type]
    assert not r.seekable
    assert_same(chunks, list(r))
    with pytest.raises(errors.UsageError):
        list(r)  # a pipe can be read once
    s = C.summary(C.Reader(io.BufferedReader(Pipe(data))))
    assert s.file_bytes == len(data) and s.n_chunks == 4
    assert s.kbps == pytest.approx(len(data) * 8 / (4 * HOP / RATE) / 1000)


def test_real_os_pipe() -> None:
    data = encode()
    rfd, wfd = os.pipe()

    def feed() -> None:
        with os.fdopen(wfd, "wb") as w:
            w.write(data)

    t = threading.Thread(target=feed)
    t.start()
    with os.fdopen(rfd, "rb") as f:
        r = C.Reader(f)
        assert_same(make_chunks(), list(r))
    t.join()


def test_chunks_for_uses_the_index() -> None:
    chunks = make_chunks(6)
    data = bytearray(encode(make_header(n_chunks=6), chunks))
    offs = chunk_offsets(bytes(data))
    # Damage chunk 0: a reader that scanned from the start would fail; the index skips it.
    data[offs[0] + 20] ^= 0xFF
    r = C.Reader(io.BytesIO(bytes(data)))
    got = list(r.chunks_for(3 * HOP + 5, 4 * HOP, preroll=HOP))
    assert [c.index for c in got] == [2, 3]
    assert_same(chunks[2:4], got)
    assert [c.index for c in r.chunks_for(5 * HOP, None, preroll=0)] == [5]
    # default preroll is MAX_SUPPORT_S (10 s ≫ 6 × 0.5 s): everything up to `end`, damaged chunk 0 too
    with pytest.raises(errors.ChecksumError):
        list(r.chunks_for(5 * HOP, 5 * HOP + 1))
    assert (
        len(list(C.Reader(io.BytesIO(encode(make_header(n_chunks=6), chunks))).chunks_for(5 * HOP, None)))
        == 6
    )


def test_chunks_for_falls_back_to_scanning() -> None:
    chunks = make_chunks(6)
    data = bytearray(encode(make_header(n_chunks=6), chunks))
    data[-3] ^= 0x10  # trailer CRC
    r = C.Reader(io.BytesIO(bytes(data)))
    assert [c.index for c in r.chunks_for(3 * HOP, 4 * HOP, preroll=0)] == [3]
    assert r.index() is None and r.index_error
    pipe = C.Reader(Pipe(encode(make_header(n_chunks=6), chunks)))  # type: ignore[arg-type]
    assert [c.index for c in pipe.chunks_for(2 * HOP, 3 * HOP, preroll=0)] == [2]


# ------------------------------------------------------------------------------------------------ damage


def test_every_truncation_is_detected() -> None:
    data = encode(make_header(n_chunks=3), make_chunks(3, per_chunk=4))
    for cut in range(len(data)):
        with pytest.raises(errors.TruncatedError):
            list(C.Reader(io.BytesIO(data[:cut])))


def test_bit_flips_raise_checksum_errors() -> None:
    data = encode()
    offs = chunk_offsets(data)
    hdr = bytearray(data)
    hdr[30] ^= 0x04  # inside the (compressed) header
    with pytest.raises(errors.ChecksumError):
        C.Reader(io.BytesIO(bytes(hdr)))
    body = bytearray(data)
    body[offs[1] + 40] ^= 0x01
    r = C.Reader(io.BytesIO(bytes(body)))
    with pytest.raises(errors.ChecksumError):
        list(r)
    with pytest.raises(errors.ChecksumError):
        C.Reader(io.BytesIO(bytes(body))).verify()
    index = bytearray(data)
    index[-30] ^= 0x01  # inside the index
    with pytest.raises(errors.ChecksumError):
        C.Reader(io.BytesIO(bytes(index))).verify()


def test_wrong_magic_newer_version_and_limits() -> None:
    data = encode()
    with pytest.raises(errors.BadMagicError):
        C.Reader(io.BytesIO(b"RIFF" + data[4:]))
    with pytest.raises(errors.NewerVersionError):
        C.Reader(io.BytesIO(data[:4] + bytes([3]) + data[5:]))
    huge = data[:6] + struct.pack("<I", C.MAX_HEADER_BYTES + 1) + data[10:]
    with pytest.raises(errors.LimitError):
        C.Reader(io.BytesIO(huge))
    with pytest.raises(errors.FormatError):
        C.Reader(io.BytesIO(b"\x00" * 64))
    with pytest.raises(errors.TruncatedError):
        C.Reader(io.BytesIO(b""))


def test_unsupported_layout_and_bad_header_fields() -> None:
    d = make_header().to_dict()
    with pytest.raises(errors.UnsupportedLayoutError):
        C.Reader(io.BytesIO(raw_header({**d, "layout_version": 0})))
    with pytest.raises(errors.UnsupportedLayoutError):
        C.Writer(io.BytesIO(), make_header(layout_version=3))
    with pytest.raises(errors.FormatError, match="does not fit event layout 2"):
        C.Writer(io.BytesIO(), make_header(layout_version=2))  # a layout-1 table
    with pytest.raises(errors.FormatError, match="does not fit event layout 1"):
        C.Reader(io.BytesIO(raw_header({**d, "table": "layout2"})))
    assert C.Reader(io.BytesIO(raw_header(d))).header.to_dict() == d  # stored (uncompressed) header is fine
    for bad in (
        {**d, "sample_rate": 0},
        {**d, "channels": True},
        {**d, "tags": {"k": 3}},
        {**d, "table": d["table"][:5]},
        {k: v for k, v in d.items() if k != "hop_samples"},
        [1, 2, 3],
    ):
        with pytest.raises(errors.FormatError):
            C.Reader(io.BytesIO(raw_header(bad)))  # type: ignore[arg-type]
    with pytest.raises(errors.LimitError):
        C.Reader(io.BytesIO(raw_header({**d, "tags": {"k": "v" * (C.MAX_TAG_VALUE_BYTES + 1)}})))
    with pytest.raises(errors.LimitError):
        encode(make_header(tags={"k" * (C.MAX_TAG_KEY_BYTES + 1): "v"}))


def test_too_many_events() -> None:
    n = C.MAX_EVENTS_PER_CHUNK + 1
    big = C.Chunk(0, 0, 1 << 20, np.zeros(n, np.int64), np.zeros((n, 32), np.uint16))
    with pytest.raises(errors.LimitError):
        C.Writer(io.BytesIO(), make_header()).write_chunk(big)
    # A well-checksummed chunk claiming too many events is rejected before decoding.
    data = bytearray(encode())
    off = chunk_offsets(bytes(data))[0]
    struct.pack_into("<I", data, off + 8 + 16, n)
    refresh_crc(data, off)
    with pytest.raises(errors.LimitError):
        list(C.Reader(io.BytesIO(bytes(data))))


def test_chunk_values_are_validated() -> None:
    data = bytearray(encode())
    off = chunk_offsets(bytes(data))[0]
    struct.pack_into("<I", data, off + 8 + 12, 5)  # shrink chunk 0's length: its times fall outside
    refresh_crc(data, off)
    with pytest.raises(errors.FormatError, match="outside"):
        list(C.Reader(io.BytesIO(bytes(data))))
    w = C.Writer(io.BytesIO(), make_header())
    ok = make_chunks(1)[0]
    codes = ok.codes.copy()
    codes[0, events.INDEX["glide"]] = 64  # 6-bit dimension
    for bad in (
        C.Chunk(0, 0, HOP, ok.times[::-1].copy(), ok.codes),  # descending
        C.Chunk(0, 0, HOP, ok.times + HOP, ok.codes),  # outside the range
        C.Chunk(0, 0, HOP, ok.times, codes),  # code wider than its table width
        C.Chunk(0, 0, HOP, ok.times, ok.codes[:, :5]),  # wrong shape
        C.Chunk(1, 0, HOP, ok.times, ok.codes),  # index not consecutive
        C.Chunk(0, 0, 0, ok.times[:0], ok.codes[:0]),  # empty range
    ):
        with pytest.raises(errors.FormatError):
            w.write_chunk(bad)
    w.write_chunk(ok)
    with pytest.raises(errors.FormatError):  # overlaps chunk 0
        w.write_chunk(C.Chunk(1, HOP - 1, HOP, ok.times[:0], ok.codes[:0]))


def test_zstd_bomb_is_refused_without_allocating() -> None:
    data = bytearray(encode())
    off = chunk_offsets(bytes(data))[0]
    bomb = zstandard.ZstdCompressor(level=1).compress(b"\0" * (64 << 20))  # declares 64 MiB
    fixed = bytearray(data[off + 8 : off + 8 + 25])
    struct.pack_into("<IB", fixed, 20, 100, C.METHOD_ZSTD)
    payload = bytes(fixed) + bomb
    frame = C.CHUNK_SYNC + struct.pack("<I", len(payload)) + payload
    frame += struct.pack("<I", zlib.crc32(frame) & 0xFFFFFFFF)
    forged = bytes(data[:off]) + frame
    tracemalloc.start()
    try:
        with pytest.raises(errors.FormatError, match="zstd"):
            list(C.Reader(io.BytesIO(forged)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


# ---------------------------------------------------------------------------------------------- tolerant


def test_tolerant_reading_skips_damaged_chunks() -> None:
    chunks = make_chunks(5)
    data = bytearray(encode(make_header(n_chunks=5), chunks))
    offs = chunk_offsets(bytes(data))
    data[offs[1] + 30] ^= 0x20  # payload of chunk 1
    data[offs[3] + 5] ^= 0x40  # length field of chunk 3
    for f in (io.BytesIO(bytes(data)), Pipe(bytes(data))):
        r = C.Reader(f)  # type: ignore[arg-type]
        got = list(r.iter_tolerant())
        assert [c.index for c in got] == [0, 2, 4]
        assert_same([chunks[i] for i in (0, 2, 4)], got)
        assert r.lost == [1, 3] and len(r.damage) >= 2


def test_tolerant_reading_of_truncated_and_padded_streams() -> None:
    chunks = make_chunks(5)
    data = encode(make_header(n_chunks=5), chunks)
    offs = chunk_offsets(data)
    r = C.Reader(io.BytesIO(data[: offs[3] + 17]))
    assert [c.index for c in r.iter_tolerant()] == [0, 1, 2]
    assert r.lost == [3, 4]  # estimated from the header's length and hop
    garbage = data[: offs[2]] + b"SPCKjunk" * 3 + data[offs[2] :]
    r = C.Reader(io.BytesIO(garbage))
    assert [c.index for c in r.iter_tolerant()] == [0, 1, 2, 3, 4]
    assert r.lost == [] and r.damage
    with pytest.raises(errors.FormatError):
        C.Reader(io.BytesIO(garbage)).verify()


def test_verify_rejects_trailing_data_and_summary() -> None:
    data = encode()
    with pytest.raises(errors.FormatError, match="after"):
        C.Reader(io.BytesIO(data + b"x")).verify()
    s = C.Reader(io.BytesIO(data)).verify()
    assert s.n_chunks == 4 and s.n_events == 90 and s.duration_s == pytest.approx(2.0)
    assert s.events_per_s == pytest.approx(45.0) and s.file_bytes == len(data)
    assert C.summary(C.Reader(io.BytesIO(data))) == s
