"""Resource limits (formats/spev.md §7): hostile files cost bounded memory and CPU and fail with exit 4.

The known cases from the issues are crafted here byte by byte (valid CRCs, so they reach every check) and run
through the command line in a child process whose peak RSS is measured (``RUSAGE_CHILDREN`` of a wrapper).
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zstandard

from sparsecodec import api as codec
from sparsecodec import errors
from sparsecodec.format import container as C
from sparsecodec.format import events, quantize
from sparsecodec.jobs import render as decoding

RSS_LIMIT_MB = 300
BITS_PER_EVENT = sum(int(e["bits"]) for e in quantize.default_table())


# ------------------------------------------------------------------------------------------ crafting


def header_dict(**fields: object) -> dict:
    h = C.Header(
        layout_version=1,
        encoder_id="limits",
        weights_hash="0",
        sample_rate=8000,
        channels=1,
        n_samples=8000,
        time_rate=8000,
        hop_samples=8000,
    ).to_dict()
    h.update(fields)
    return h


def header_block(d: dict) -> bytes:
    hb = msgpack.packb(d, use_bin_type=True)
    z = zstandard.ZstdCompressor(level=19).compress(hb)
    head = C.MAGIC + struct.pack("<BBII", 1, 1, len(z), len(hb)) + z
    return head + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF)


def payload(index: int, start: int, length: int, n: int, side: bytes = b"") -> bytes:
    """A chunk payload of ``n`` events at ``start`` with every code 0 (zstd squeezes it to a few bytes)."""
    raw = b"\x00" + struct.pack("<I", len(side)) + bytes(-(-n * BITS_PER_EVENT // 8)) + side
    z = zstandard.ZstdCompressor(level=19).compress(raw)
    return struct.pack("<IQIIIB", index, start, length, n, len(raw), 1) + z


def frame(sync: bytes, body: bytes) -> bytes:
    head = sync + struct.pack("<I", len(body))
    return head + body + struct.pack("<I", zlib.crc32(head + body) & 0xFFFFFFFF)


def assemble(head: bytes, payloads: list[bytes], trailing: bytes = b"") -> bytes:
    out = bytearray(head)
    rows = []
    for p in payloads:
        index, start, length, n, _, _ = struct.unpack_from("<IQIIIB", p)
        rows.append(struct.pack("<QIQII", len(out), index, start, length, n))
        out += frame(C.CHUNK_SYNC, p)
    off = len(out)
    out += frame(C.INDEX_SYNC, struct.pack("<I", len(rows)) + b"".join(rows))
    t = struct.pack("<4sQI", C.TRAILER_SYNC, off, len(rows))
    return bytes(out + t + struct.pack("<I", zlib.crc32(t) & 0xFFFFFFFF) + trailing)


def run_spev(*args: str, timeout: float = 120.0) -> tuple[int, str, float, float]:
    """``python -m sparsecodec.cli ARGS`` in a child: (exit code, stderr, peak RSS in MB, seconds)."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.time()\n"
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
        "sys.stderr.buffer.write(r.stderr)\n"
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.time() - t)\n"
    )
    cmd = [sys.executable, "-c", wrapper, sys.executable, "-m", "sparsecodec.cli", *args]
    r = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={"NO_COLOR": "1", "PATH": ""}
    )
    code, rss_kb, seconds = r.stdout.split()
    return int(code), r.stderr, int(rss_kb) / 1024, float(seconds)


def assert_refused(args: list[str], *needles: str, max_s: float = 30.0) -> None:
    code, err, rss, seconds = run_spev(*args)
    assert code == 4, (args, code, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert any(n in lines[0] for n in needles), (lines[0], needles)
    assert rss < RSS_LIMIT_MB, (args, rss)
    assert seconds < max_s, (args, seconds)


# ---------------------------------------------------------------------------------- the known cases


def test_header_only_file_with_a_huge_declared_length(tmp_path: Path) -> None:
    """~270 bytes that declare years of audio: `spev test` and decode refuse it (was: 3.16 GB RSS)."""
    data = assemble(header_block(header_dict(sample_rate=44100, time_rate=44100, n_samples=2**40)), [])
    assert len(data) < 400
    src = tmp_path / "long.spev"
    src.write_bytes(data)
    assert_refused(["test", str(src)], "MAX_DURATION_S")
    assert_refused(["decode", str(src), str(tmp_path / "out.wav")], "MAX_DURATION_S")
    assert_refused(["inspect", str(src)], "MAX_DURATION_S")
    assert not (tmp_path / "out.wav").exists()


def test_max_duration_raises_or_lowers_the_bound(tmp_path: Path) -> None:
    """`spev decode --max-duration SECONDS`: a user who needs a longer file can ask for it."""
    src = tmp_path / "silence.spev"
    src.write_bytes(assemble(header_block(header_dict(n_samples=120 * 8000)), []))
    assert_refused(["decode", "--max-duration", "60", str(src), str(tmp_path / "o.wav")], "MAX_DURATION_S")
    code, err, _, _ = run_spev("decode", "--max-duration", "200", str(src), str(tmp_path / "o.wav"))
    assert code == 0, err


def test_header_only_file_within_the_limit_streams_silence(tmp_path: Path) -> None:
    """Half an hour of declared silence decodes in bounded memory (the renderer works in steps)."""
    src = tmp_path / "silence.spev"
    src.write_bytes(assemble(header_block(header_dict(n_samples=1800 * 8000)), []))
    code, err, rss, _ = run_spev("decode", str(src), str(tmp_path / "out.wav"))
    assert code == 0, err
    assert rss < RSS_LIMIT_MB
    assert (tmp_path / "out.wav").stat().st_size >= 2 * 1800 * 8000
    with pytest.raises(errors.LimitError, match="MAX_DURATION_S"):
        codec.decode_file(src, tmp_path / "short.wav", max_duration_s=60.0)  # the --max-duration parameter
    assert codec.decode_file(src, io.BytesIO(), fmt="wav", start=1790.0).frames == 10 * 8000


def test_parallel_path_does_not_list_every_sample(tmp_path: Path) -> None:
    """~840 bytes, chunks at both ends of a huge declared length (was: a 46.6 GiB list of bounds)."""
    n = 2**47
    head = header_block(header_dict(n_samples=n, hop_samples=2**32 - 1))
    huge = tmp_path / "huge.spev"
    huge.write_bytes(assemble(head, [payload(0, 0, 8000, 5), payload(1, n - 8000, 8000, 5)]))
    assert_refused(["decode", str(huge), str(tmp_path / "o.wav")], "MAX_DURATION_S")
    # within the limit: an hour with events at both ends, through the parallel path when CPUs allow
    hour = 3600 * 8000
    ok = tmp_path / "hour.spev"
    ok.write_bytes(
        assemble(
            header_block(header_dict(n_samples=hour)),
            [payload(0, 0, 8000, 5), payload(1, hour - 8000, 8000, 5)],
        )
    )
    code, err, rss, _ = run_spev("decode", str(ok), str(tmp_path / "hour.wav"))
    assert code == 0, err
    assert rss < RSS_LIMIT_MB
    assert decoding._segment_count(0, 86_400 * 384_000, 384_000, 4) == 960  # computed one at a time


def dense_file(n_chunks: int, seconds_per_chunk: float, n: int = 65536) -> bytes:
    """``n_chunks`` chunks of ``n`` events each (all at the chunk's start, every code 0)."""
    length = round(seconds_per_chunk * 8000)
    head = header_block(header_dict(n_samples=n_chunks * length, hop_samples=length))
    return assemble(head, [payload(i, i * length, length, n) for i in range(n_chunks)])


@pytest.mark.parametrize(
    "command",
    [
        ["test", "{src}"],
        ["decode", "{src}", "{out}/a.wav"],
        ["decode", "{src}", "--stems", "{out}/stems"],
        ["export", "{src}", "-o", "{out}/a.json"],
        ["edit", "{src}", "{out}/b.spev", "--gain", "1"],
        ["inspect", "--events", "{src}"],
        ["plot", "{src}", "-o", "{out}/a.png"],
    ],
)
def test_millions_of_tiny_events_are_refused(tmp_path: Path, command: list[str]) -> None:
    """6.5 M events in ~13 KB (was: export 5.85 GB, decode --stems 3.66 GB, edit exit 1)."""
    src = tmp_path / "dense.spev"
    data = dense_file(100, 1.0)
    assert len(data) < 20_000
    src.write_bytes(data)
    args = [a.format(src=src, out=tmp_path) for a in command]
    assert_refused(args, "MAX_EVENTS_PER_S")


def test_65_million_events_over_a_long_declared_duration_are_refused_quickly(tmp_path: Path) -> None:
    """1000 chunks of 65536 events, each 66 s (within 1000/s), 18 h in all: the total is over MAX_EVENTS and
    the index says so before anything is rendered (was: ~9 min of CPU)."""
    src = tmp_path / "total.spev"
    data = dense_file(1000, 66.0)
    assert len(data) < 200_000
    src.write_bytes(data)
    for args in (
        ["decode", str(src), str(tmp_path / "a.wav")],
        ["test", str(src)],
        ["export", str(src), "-o", str(tmp_path / "a.json")],
    ):
        assert_refused(args, "MAX_EVENTS", max_s=60.0)


def test_edit_with_a_crafted_header_exits_4(tmp_path: Path) -> None:
    """hop_samples = 1 over a long declared length (was: a 2 PiB allocation and exit 1)."""
    src = tmp_path / "hops.spev"
    src.write_bytes(
        assemble(header_block(header_dict(n_samples=3600 * 8000, hop_samples=1)), [payload(0, 0, 1, 1)])
    )
    assert_refused(["edit", str(src), str(tmp_path / "o.spev"), "--gain", "1"], "MAX_CHUNKS")
    assert_refused(["test", str(src)], "MAX_CHUNKS")


# ------------------------------------------------------------------------- decode agrees with test


def _good_payloads() -> tuple[bytes, list[bytes]]:
    head = header_block(header_dict(n_samples=3 * 8000))
    return head, [payload(i, i * 8000, 8000, 3) for i in range(3)]


@pytest.mark.parametrize("damage", ["trailing", "past_end", "index"])
def test_decode_fails_where_test_fails(tmp_path: Path, damage: str) -> None:
    head, payloads = _good_payloads()
    if damage == "trailing":
        data = assemble(head, payloads, trailing=b"\x00junk")
        needle = "after the end-of-stream trailer"
    elif damage == "past_end":
        data = assemble(head, [*payloads, payload(3, 3 * 8000, 8000, 3)])
        needle = "past the end"
    else:
        data = bytearray(assemble(head, payloads))
        ix = data.rindex(C.INDEX_SYNC)
        struct.pack_into("<I", data, ix + 8 + 4 + 8 + 4 + 8 + 4, 4)  # entry 0 claims 4 events
        body_len = struct.unpack_from("<I", data, ix + 4)[0]
        crc = zlib.crc32(bytes(data[ix : ix + 8 + body_len])) & 0xFFFFFFFF
        struct.pack_into("<I", data, ix + 8 + body_len, crc)
        data = bytes(data)
        needle = "index"
    src = tmp_path / "damaged.spev"
    src.write_bytes(data)
    assert_refused(["test", str(src)], needle)
    # a seekable decode checks the index first: trailing bytes hide the trailer from it
    assert_refused(["decode", str(src), str(tmp_path / "o.wav")], needle, "index unusable")
    with pytest.raises(errors.FormatError):
        codec.decode_file(io.BytesIO(data), io.BytesIO(), fmt="wav")  # a pipe reads to the end too
    r = codec.decode_file(src, tmp_path / "o2.wav", ignore_errors=True)
    assert r.frames == 3 * 8000
    if damage != "index":  # a tolerant front-to-back read does not use the index
        assert r.warnings, r


def test_ranged_decode_needs_the_index(tmp_path: Path) -> None:
    head, payloads = _good_payloads()
    src = tmp_path / "noindex.spev"
    src.write_bytes(assemble(head, payloads)[:-3])  # the trailer is cut: the index is unusable
    with pytest.raises(errors.FormatError, match="index unusable"):
        codec.decode_file(src, tmp_path / "o.wav", start=1.0)


# ----------------------------------------------------------------------------------- the API limits


def test_writer_and_reader_share_the_limits() -> None:
    h = C.Header(**{k: v for k, v in header_dict().items() if k != "table"})
    cap = C.max_events_in_chunk(8000, 8000)
    assert cap == C.MAX_EVENTS_PER_S and C.max_events_in_chunk(1, 8000) == C.MAX_EVENTS_PER_S
    assert C.max_events_in_chunk(10**9, 8000) == C.MAX_EVENTS_PER_CHUNK
    w = C.Writer(io.BytesIO(), h)
    n = cap + 1
    with pytest.raises(errors.LimitError, match="MAX_EVENTS_PER_S"):
        w.write_chunk(C.Chunk(0, 0, 8000, np.zeros(n, np.int64), np.zeros((n, 32), np.uint16)))
    with pytest.raises(errors.FormatError, match="past the end"):
        w.write_chunk(C.Chunk(0, 8000, 8000, np.zeros(0, np.int64), np.zeros((0, 32), np.uint16)))
    with pytest.raises(errors.LimitError, match="MAX_DURATION_S"):
        C.Writer(io.BytesIO(), C.Header(**{**h.__dict__, "n_samples": 86_401 * 8000}))
    long = assemble(header_block(header_dict(n_samples=86_401 * 8000)), [])
    with pytest.raises(errors.LimitError):
        C.Reader(io.BytesIO(long))
    assert C.Reader(io.BytesIO(long), max_duration_s=86_401).verify().n_chunks == 0


def test_index_is_packed() -> None:
    head, payloads = _good_payloads()
    r = C.Reader(io.BytesIO(assemble(head, payloads)))
    ix = r.index()
    assert ix is not None and len(ix) == 3 and ix.n_events == 9
    assert ix.rows.nbytes == 3 * 28
    assert [e.index for e in ix] == [0, 1, 2] and ix[-1].start == 16000 and ix == list(ix)


def test_silence_decodes_in_steps_without_changing_the_audio(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 40 s gap between two chunks is rendered in RENDER_STEP_S steps: the same samples as one push."""
    rng = np.random.default_rng(1)
    codes = quantize.quantize(events.sample_prior(rng, 3))
    n = 42 * 8000
    h = C.Header(**{k: v for k, v in header_dict(n_samples=n).items() if k != "table"})
    a = C.Chunk(0, 0, 8000, np.array([0, 100, 4000]), codes, {"room": [1.0, 0.5]})
    b = C.Chunk(1, n - 8000, 8000, np.array([n - 8000, n - 7900, n - 4000]), codes)
    bio = io.BytesIO()
    C.write_file(bio, h, [a, b])

    def decode() -> np.ndarray:
        out = io.BytesIO()
        codec.decode_file(io.BytesIO(bio.getvalue()), out, fmt="wav", bits="32f")
        return np.frombuffer(out.getvalue()[-n * 4 :], dtype="<f4")

    stepped = decode()
    monkeypatch.setattr(decoding, "RENDER_STEP_S", 1e9)
    np.testing.assert_allclose(stepped, decode(), atol=1e-6)
    assert np.abs(stepped[:8000]).max() > 0 and np.abs(stepped[-8000:]).max() > 0
