"""Format 2 (formats/spev.md §4.4): predicted, zig-zag coded columns; versioning; hostile bodies; inspect."""

from __future__ import annotations

import io
import json
import struct
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from sparsecodec import errors
from sparsecodec.cli import cli
from sparsecodec.format import coding, events, quantize
from sparsecodec.format import container as C

RATE = 22050
HOP = 11025
TABLE = quantize.default_table()
WIDTHS = C._widths(TABLE)
PLAN = coding.plan(TABLE)
BASE = coding.base_codes(TABLE)

SPEC_BASE_CODES = [186, 1820, 31, 6, 0, 0, 41, 15, 15, 15, 15, 15, 15, 15, 15, 0,
                   63, 13, 74, 15, 36, 31, 0, 45, 20, 8, 3, 0, 15, 0, 15, 0]  # fmt: skip
"""The default table's base codes as listed in formats/spev.md §4.4 (frozen)."""


def header(n_chunks: int = 4, **kw: Any) -> C.Header:
    fields: dict[str, Any] = {
        "layout_version": 1,
        "encoder_id": "test",
        "weights_hash": "0" * 16,
        "sample_rate": RATE,
        "channels": 1,
        "n_samples": n_chunks * HOP,
        "time_rate": RATE,
        "hop_samples": HOP,
        "settings": {"kbps": 3.0},
    }
    return C.Header(**{**fields, **kw})


def encoder_like_chunks(n_chunks: int = 4, seed: int = 0) -> list[C.Chunk]:
    """Chunks shaped like real encodes: frames of 8 noise-band fill events sharing a template (level and
    band vary), a few pitched events from the prior, a silent chunk, room side data."""
    rng = np.random.default_rng(seed)
    template = quantize.quantize(events.defaults(1))[0].astype(np.int64)
    template[events.INDEX["noise_mix"]] = 31
    out = []
    for i in range(n_chunks):
        if i == 2:
            out.append(C.Chunk(i, i * HOP, HOP, np.zeros(0, np.int64), np.zeros((0, 32), np.uint16)))
            continue
        times, rows = [], []
        for f in range(6):
            t = i * HOP + f * (HOP // 6)
            for band in range(8):
                row = template.copy()
                row[events.INDEX["level"]] = 150 + rng.integers(0, 40)
                row[events.INDEX["noise_centre"]] = 6 + 7 * band
                row[events.INDEX["pan"]] = 15 + rng.integers(-1, 2)
                times.append(t)
                rows.append(row)
            if f % 2:
                times.append(t + 17)
                rows.append(quantize.quantize(events.sample_prior(rng, 1))[0].astype(np.int64))
        side = {"room": [0.5, 0.25]} if i % 2 else {}
        codes = np.array(rows, dtype=np.uint16)
        out.append(C.Chunk(i, i * HOP, HOP, np.array(times, np.int64), codes, side))
    return out


def prior_chunks(n_chunks: int = 4, per_chunk: int = 30, seed: int = 0) -> list[C.Chunk]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_chunks):
        n = 0 if i == 2 else per_chunk
        times = np.sort(rng.integers(i * HOP, (i + 1) * HOP, n)).astype(np.int64)
        out.append(C.Chunk(i, i * HOP, HOP, times, quantize.quantize(events.sample_prior(rng, n)), {}))
    return out


def write(chunks: list[C.Chunk], version: int = 2, **kw: Any) -> bytes:
    bio = io.BytesIO()
    C.write_file(bio, header(len(chunks), **kw), chunks, format_version=version)
    return bio.getvalue()


def assert_same(a: list[C.Chunk], b: list[C.Chunk]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x.index, x.start, x.length, x.side) == (y.index, y.start, y.length, y.side)
        assert y.times.dtype == np.int64 and y.codes.dtype == np.uint16
        np.testing.assert_array_equal(x.times, y.times)
        np.testing.assert_array_equal(np.asarray(x.codes, np.uint16), y.codes)


def frame(payload: bytes) -> bytes:
    head = C.CHUNK_SYNC + struct.pack("<I", len(payload))
    return head + payload + struct.pack("<I", zlib.crc32(head + payload) & 0xFFFFFFFF)


def stored_payload(index: int, start: int, length: int, n: int, body: bytes) -> bytes:
    return struct.pack("<IQIIIB", index, start, length, n, len(body), C.METHOD_STORED) + body


def decode(body: bytes, n: int, start: int = 0, length: int = HOP) -> C.Chunk:
    return C.decode_chunk_payload(stored_payload(0, start, length, n, body), WIDTHS, plan=PLAN)


def body(
    split: int, widths: list[int], bits: bytes = b"", byte_planes: bytes = b"", side: bytes = b""
) -> bytes:
    """A format-2 body from its parts, as §4.4 lays it out."""
    return struct.pack("<IB", len(side), split) + bytes(widths) + bits + byte_planes + side


# ------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("make", [encoder_like_chunks, prior_chunks])
def test_round_trip_both_formats(version: int, make: Any) -> None:
    chunks = make()
    data = write(chunks, version)
    assert data[4] == version
    r = C.Reader(io.BytesIO(data))
    assert r.format_version == version
    assert_same(chunks, list(r))
    s = C.Reader(io.BytesIO(data)).verify()
    assert s.format_version == version and s.file_bytes == len(data)
    assert s.chunk_bytes is not None and 0 < s.chunk_bytes < len(data)
    assert s.chunk_bytes_per_event == pytest.approx(s.chunk_bytes / s.n_events)
    assert write(chunks, version) == data  # deterministic


def test_format2_is_smaller_on_encoder_like_events() -> None:
    chunks = encoder_like_chunks(8)
    head = len(write([], 2))
    n = sum(len(c.times) for c in chunks)
    f1 = (len(write(chunks, 1)) - head) / n
    f2 = (len(write(chunks, 2)) - head) / n
    assert f2 < 0.75 * f1, (f1, f2)
    # prior events carry no redundancy to predict, but the split choice keeps format 2 from losing much
    p = prior_chunks(8, per_chunk=60)
    n = sum(len(c.times) for c in p)
    assert (len(write(p, 2)) - head) / n < 1.02 * (len(write(p, 1)) - head) / n


def test_base_codes_are_the_specs() -> None:
    assert BASE.tolist() == SPEC_BASE_CODES
    # they are the defaults quantised with the table (here; the frozen list decides: release is a midpoint)
    assert quantize.quantize(events.defaults(1), TABLE)[0].tolist() == SPEC_BASE_CODES
    spec = (Path(__file__).resolve().parents[1] / "formats" / "spev.md").read_text()
    assert ", ".join(map(str, SPEC_BASE_CODES)) in spec


def test_a_body_written_by_hand_from_the_spec() -> None:
    """§4.4 by hand: 3 events; refs 0, 1, 1; level +3 from the base, then =, then -1; pitch +1 on the
    last event; cutoff 63 -> 0 on the second (a residual that wraps: +1 modulo 64); split 4 puts the 7-bit
    time column in byte planes and the others in bit planes."""
    level, pitch, cutoff = (events.INDEX[k] for k in ("level", "pitch", "cutoff"))
    widths = [7, 1] + [0] * 31
    widths[2 + level], widths[2 + pitch], widths[2 + cutoff] = 3, 2, 2
    # bit planes, MSB first: ref 011 | level 6,0,1: 100 100 001 | pitch 0,0,2: 001 000 | cutoff 0,2,0: 010 000
    bits = bytes([0b01110010, 0b00010010, 0b00010000])
    got = decode(body(4, widths, bits, bytes([5, 0, 95])), 3, start=1000)
    want = np.tile(BASE, (3, 1))
    want[:, level] = [189, 189, 188]
    want[2, pitch] = 1821
    want[1:, cutoff] = 0
    assert got.times.tolist() == [1005, 1005, 1100]
    assert got.codes.tolist() == want.tolist()
    # the writer codes the same events its own way; they read back the same
    again = C.Chunk(0, 1000, HOP, got.times, got.codes)
    payload, _ = C.encode_chunk_payload(again, WIDTHS, PLAN)
    back = C.decode_chunk_payload(payload, WIDTHS, plan=PLAN)
    assert back.codes.tolist() == want.tolist() and back.times.tolist() == [1005, 1005, 1100]


def test_writer_references() -> None:
    """The writer predicts from the base or one of the 31 previous events, whichever needs fewest bits."""
    codes = np.tile(BASE, (40, 1))
    codes[:, 0] = np.arange(40) % 8 * 20  # level repeats with period 8
    refs, values = coding.choose_refs(codes[:, PLAN.dims], PLAN)
    assert refs[:8].tolist() == [0] + [1] * 7  # +20 from the previous event: 6 bits, against 8 from the base
    assert refs[8:].tolist() == [8] * 32 and not values[8:].any()
    codes = np.tile(BASE, (3, 1))  # identical rows: the base wins the tie for every event
    refs, values = coding.choose_refs(codes[:, PLAN.dims], PLAN)
    assert refs.tolist() == [0, 0, 0] and not values.any()


def test_a_deep_reference_chain_decodes_fast_in_little_memory() -> None:
    """65536 events, each referring to the one before (the longest chain a chunk can hold): pointer jumping
    resolves it in 17 rounds, in a few MiB."""
    n = C.MAX_EVENTS_PER_CHUNK
    level = events.INDEX["level"]
    widths = [0, 1] + [0] * 31
    widths[2 + level] = 2
    ref_plane = np.ones(n, np.uint8)
    ref_plane[0] = 0
    zig = np.full(n, 2, np.uint8)  # +1 each event
    planes = np.concatenate([ref_plane, zig >> 1 & 1, zig & 1])
    b = body(2, widths, np.packbits(planes).tobytes())
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        got = decode(b, n, length=1 << 20)
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got.codes[:, level].tolist() == ((BASE[level] + 1 + np.arange(n)) % 256).tolist()
    assert (got.codes[:, 1:31] == BASE[1:31]).all() and not got.times.any()
    assert elapsed < 5.0 and peak < 32 << 20, (elapsed, peak)


# ------------------------------------------------------------------------------------------- versioning


def test_writer_versions_and_bad_arguments() -> None:
    chunks = encoder_like_chunks()
    assert write(chunks)[4] == C.FORMAT_VERSION == 2
    assert write(chunks, 1)[4] == 1
    for bad in (0, 3, True):
        with pytest.raises(errors.UsageError):
            C.Writer(io.BytesIO(), header(), format_version=bad)


def test_a_format1_reader_refuses_format2_clearly(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§11: a reader of format 1 only (simulated) stops at the version byte: NewerVersionError, exit 4,
    one line that says so; format 1 files still read."""
    f2, f1 = tmp_path / "f2.spev", tmp_path / "f1.spev"
    f2.write_bytes(write(encoder_like_chunks(), 2))
    f1.write_bytes(write(encoder_like_chunks(), 1))
    monkeypatch.setattr(C, "FORMAT_VERSIONS", (1,))
    with pytest.raises(errors.NewerVersionError, match="format version 2 is newer"):
        C.Reader(io.BytesIO(f2.read_bytes()))
    result = runner.invoke(cli, ["test", str(f2)])
    assert result.exit_code == 4 and "format version 2 is newer than this reader" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert runner.invoke(cli, ["test", str(f1)]).exit_code == 0


def test_base_codes_of_full_tables_need_no_floating_point() -> None:
    """A full (unregistered) table predicts from the exact zero of its sym dimensions and 0 elsewhere."""
    table = quantize.default_table()
    table[events.INDEX["wet"]] = {
        **table[events.INDEX["wet"]],
        "default": 0.5 / 15,
    }  # on a midpoint: no matter
    base = coding.base_codes(table)
    sym = [e["scale"] == "sym" for e in table]
    assert base.tolist() == [(1 << (e["bits"] - 1)) - 1 if s else 0 for e, s in zip(table, sym, strict=True)]
    chunks = encoder_like_chunks()
    data = write(chunks, 2, table=table)
    r = C.Reader(io.BytesIO(data))
    assert r.header.table == table
    assert_same(chunks, list(r))


def test_encode_file_writes_either_format_with_the_same_events_and_audio(tmp_path: Path, tone: Any) -> None:
    import soundfile as sf

    from sparsecodec import api

    wav = tmp_path / "t.wav"
    sf.write(str(wav), tone(RATE, 1.5).T, RATE)
    decoded = []
    chunks = []
    for version in (1, 2):
        out = tmp_path / f"t{version}.spev"
        api.encode_file(wav, out, init="analysis", format_version=version)
        assert out.read_bytes()[4] == version
        chunks.append(list(C.Reader(io.BytesIO(out.read_bytes()))))
        pcm = io.BytesIO()
        api.decode_file(out, pcm, bits="32f", fmt="wav")
        decoded.append(pcm.getvalue())
    assert_same(chunks[0], chunks[1])
    assert decoded[0] == decoded[1]
    with pytest.raises(errors.UsageError):
        api.encode_file(wav, tmp_path / "x.spev", format_version=3)


# -------------------------------------------------------------------------------------- hostile bodies


def _hostile_bodies() -> dict[str, tuple[bytes, int]]:
    level = 2 + events.INDEX["level"]
    w = [0, 0] + [0] * 31
    ref_w = [0, 1] + [0] * 31
    wide = list(w)
    wide[level] = 5  # a byte-plane column (split 4) whose values must stay under 2^5
    return {
        "short": (b"\x00" * 10, 0),
        "split": (body(33, w), 1),
        "time width": (body(4, [33, 0] + [0] * 31), 1),
        "ref width": (body(4, [0, 17] + [0] * 31), 1),
        "code width": (body(4, [0, 0, 9] + [0] * 30), 1),
        "length": (body(4, w) + b"\x00", 1),
        "padding": (body(4, ref_w, bytes([0b00000001])), 1),
        "ref": (body(4, ref_w, bytes([0b10000000])), 2),  # event 0 refers 1 back
        "byte value": (body(4, wide, b"", bytes([0x20])), 1),
        "time": (body(4, [8, 0] + [0] * 31, b"", bytes([200])), 1),  # 200 outside [0, 100)
        "side msgpack": (body(4, w, side=b"\xc1"), 1),
        "side size": (struct.pack("<IB", C.MAX_SIDE_BYTES + 1, 4) + bytes(33), 1),
    }


@pytest.mark.parametrize("case", list(_hostile_bodies()))
def test_hostile_bodies_give_clear_errors(case: str) -> None:
    b, n = _hostile_bodies()[case]
    length = 100 if case == "time" else HOP
    with pytest.raises(errors.FormatError) as exc:
        decode(b, n, length=length)
    assert str(exc.value).startswith("chunk 0")
    if case == "side size":
        assert isinstance(exc.value, errors.LimitError)


def test_hostile_chunks_in_a_file_exit_4_at_the_command_line(tmp_path: Path, runner: CliRunner) -> None:
    """A well-checksummed chunk with a bad body: `spev test` and `spev decode` say which chunk, exit 4."""
    data = write(encoder_like_chunks(), 2)
    offs = [e.offset for e in C.Reader(io.BytesIO(data)).index() or []]
    (n,) = struct.unpack_from("<I", data, offs[1] + 4)
    b, _ = _hostile_bodies()["ref"]
    bad = data[: offs[1]] + frame(stored_payload(1, HOP, HOP, 2, b)) + data[offs[1] + 12 + n :]
    path = tmp_path / "bad.spev"
    path.write_bytes(bad)
    for args in (["test", str(path)], ["decode", str(path), str(tmp_path / "o.wav")]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 4, result.stderr
        assert "chunk 1" in result.stderr and "Traceback" not in result.stderr


def test_every_truncation_and_bit_flip_of_a_format2_file_is_detected() -> None:
    data = write(encoder_like_chunks(3), 2)
    for cut in range(0, len(data), 3):
        with pytest.raises(errors.TruncatedError):
            list(C.Reader(io.BytesIO(data[:cut])))
    rng = np.random.default_rng(5)
    for pos in rng.integers(14, len(data), 60):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(errors.FormatError):
            C.Reader(io.BytesIO(bytes(flipped))).verify()


@pytest.mark.parametrize("n_events", [1001, C.MAX_EVENTS_PER_CHUNK + 1])
def test_huge_declared_counts_are_refused_before_decoding(n_events: int) -> None:
    """A 38-byte body of zero-width columns may claim any count: the limits stop it first."""
    data = bytearray(write(encoder_like_chunks(), 2))
    off = (C.Reader(io.BytesIO(bytes(data))).index() or [])[0].offset
    (n,) = struct.unpack_from("<I", data, off + 4)
    forged = frame(stored_payload(0, 0, HOP, n_events, body(0, [0] * 33)))
    with pytest.raises(errors.LimitError):
        list(C.Reader(io.BytesIO(bytes(data[:off]) + forged + bytes(data[off + 12 + n :]))))


# ----------------------------------------------------------------------------------------------- inspect


def test_inspect_shows_bytes_per_event_target_and_true_rate(tmp_path: Path, runner: CliRunner) -> None:
    path = tmp_path / "a.spev"
    data = write(encoder_like_chunks(), 2)
    path.write_bytes(data)
    r = C.Reader(io.BytesIO(data))
    n = r.verify().n_events
    chunk_bytes = r.chunk_bytes
    assert chunk_bytes is not None
    result = runner.invoke(cli, ["inspect", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    lines = {line.split()[0]: line.split(None, 1)[1] for line in result.stdout.splitlines()[1:]}
    assert (
        lines["size"] == f"{len(data)} bytes, {len(data) / n:.2f} bytes/event (chunks {chunk_bytes / n:.2f})"
    )
    kbps = len(data) * 8 / (4 * HOP / RATE) / 1000
    assert lines["rate"] == f"{kbps:.2f} kbps (target 3 kbps)"
    assert lines["format"] == "2, layout 1"
    doc = json.loads(runner.invoke(cli, ["inspect", "--json", "-"], input=data).stdout)
    assert doc["format_version"] == 2 and doc["chunk_bytes"] == chunk_bytes and doc["target_kbps"] == 3.0
    assert doc["bytes_per_event"] == pytest.approx(len(data) / n)
    assert doc["chunk_bytes_per_event"] == pytest.approx(chunk_bytes / n)
    # no target recorded (or an event rate asked for instead): the true rate alone
    path.write_bytes(write(encoder_like_chunks(), 1, settings={"kbps": 3.0, "events_per_second": 20.0}))
    out = runner.invoke(cli, ["inspect", str(path)], catch_exceptions=False).stdout
    assert "kbps\n" in out and "target" not in out and "format       1, layout 1" in out


def test_header_records_the_target_and_the_settings_that_differ() -> None:
    """An encode's header keeps ``kbps`` and what differs from the writing version's defaults (≈ 150 bytes
    less than every setting), as opusenc keeps the options it was given."""
    from sparsecodec import api
    from sparsecodec.encoder.stream import EncoderSettings

    assert api._recorded(EncoderSettings(), EncoderSettings()) == {"kbps": 4.0}
    given = EncoderSettings(kbps=2.0, refine_steps=3, init="analysis", voice=False)
    assert api._recorded(given, EncoderSettings()) == {
        "kbps": 2.0,
        "refine_steps": 3,
        "init": "analysis",
        "voice": False,
    }
    rate = EncoderSettings(events_per_second=12.0)
    assert api._target_kbps(api._recorded(rate, EncoderSettings())) is None  # an event rate, no kbps target
