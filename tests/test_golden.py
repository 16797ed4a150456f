"""Golden .spev files (formats 1 and 2; layouts 1 and 2, ``voice_*`` the layout-2 ones with voice knots;
frozen): exact events, byte-identical re-writing, audio.

``NAME-f2`` is golden ``NAME``'s events in format 2: the same events, the same decoded audio."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sparsecodec.format import container as C

GOLDEN = Path(__file__).resolve().parent.parent / "formats" / "golden"
NAMES = sorted(p.name.removesuffix(".events.json") for p in GOLDEN.glob("*.events.json"))


def load(name: str) -> tuple[bytes, dict[str, Any]]:
    return (GOLDEN / f"{name}.spev").read_bytes(), json.loads((GOLDEN / f"{name}.events.json").read_text())


def test_goldens_exist() -> None:
    base = {"mono", "stereo_room", "mono_room", "empty", "voice_mix", "voice_stereo"}
    assert base | {f"{n}-f2" for n in base} <= set(NAMES)
    for name in NAMES:  # the layout-2 goldens hold voice knots and notes
        layout = json.loads((GOLDEN / f"{name}.events.json").read_text())["header"]["layout_version"]
        assert layout == (2 if name.startswith("voice_") else 1)


@pytest.mark.parametrize("name", NAMES)
def test_golden_events_are_exact(name: str) -> None:
    data, meta = load(name)
    assert hashlib.sha256(data).hexdigest() == meta["sha256"]
    assert data[4] == meta["format_version"] in C.FORMAT_VERSIONS
    assert meta["format_version"] == (2 if name.endswith("-f2") else 1)
    r = C.Reader(io.BytesIO(data))
    assert r.format_version == meta["format_version"]
    assert r.header.to_dict() == meta["header"]
    chunks = list(r)
    assert len(chunks) == len(meta["chunks"])
    for got, want in zip(chunks, meta["chunks"], strict=True):
        assert (got.index, got.start, got.length) == (want["index"], want["start"], want["length"])
        np.testing.assert_array_equal(got.times, np.array(want["times"], dtype=np.int64))
        codes = np.array(want["codes"], dtype=np.uint16).reshape(-1, 32)
        assert got.codes.dtype == np.uint16 and got.codes.tobytes() == codes.tobytes()  # byte for byte
        assert got.side == want["side"]
    assert C.Reader(io.BytesIO(data)).verify().n_events == sum(len(c["times"]) for c in meta["chunks"])


@pytest.mark.parametrize("name", NAMES)
def test_golden_rewrites_to_identical_bytes(name: str) -> None:
    data, _ = load(name)
    r = C.Reader(io.BytesIO(data))
    out = io.BytesIO()
    C.write_file(out, r.header, list(r), format_version=r.format_version)
    assert out.getvalue() == data


@pytest.mark.parametrize("name", [n for n in NAMES if not n.endswith("-f2")])
def test_format2_goldens_hold_the_format1_events_and_decode_identically(name: str) -> None:
    """Re-containered, not re-drawn: every chunk's times, codes and side data equal the format-1 golden's,
    the headers differ only in the comment tag, and the decodes are bit-identical (32-bit float)."""
    from sparsecodec import api as codec

    (d1, m1), (d2, m2) = load(name), load(f"{name}-f2")
    assert m1["chunks"] == m2["chunks"]
    assert {**m1["header"], "tags": {}} == {**m2["header"], "tags": {}}
    assert m2["audio"] is None or m2["audio"]["file"] == f"{name}.wav"
    c1, c2 = list(C.Reader(io.BytesIO(d1))), list(C.Reader(io.BytesIO(d2)))
    assert [(c.index, c.start, c.length, c.times.tolist(), c.codes.tobytes(), c.side) for c in c1] == [
        (c.index, c.start, c.length, c.times.tolist(), c.codes.tobytes(), c.side) for c in c2
    ]
    wavs = []
    for data in (d1, d2):
        out = io.BytesIO()
        codec.decode_file(io.BytesIO(data), out, bits="32f", fmt="wav")
        wavs.append(out.getvalue())
    assert wavs[0] == wavs[1]


@pytest.mark.parametrize("name", NAMES)
def test_golden_audio(name: str) -> None:
    """Released goldens decode to their stored reference (``NAME.wav``) within the stated tolerance."""
    _, meta = load(name)
    audio = meta.get("audio")
    if not audio:
        pytest.skip("no reference decode yet (run formats/make_golden.py --audio)")
    import soundfile as sf

    from sparsecodec import api as codec

    ref, rate = sf.read(str(GOLDEN / audio["file"]), dtype="float32", always_2d=True)
    out = io.BytesIO()
    codec.decode_file(GOLDEN / f"{name}.spev", out, bits="32f", fmt="wav")
    out.seek(0)
    got, got_rate = sf.read(out, dtype="float32", always_2d=True)
    assert got_rate == rate and got.shape == ref.shape
    err = got - ref
    assert float(np.abs(err).max(initial=0.0)) <= audio["max_abs"]
    signal = float(np.sum(ref.astype(np.float64) ** 2))
    if signal > 0:
        snr = 10 * np.log10(signal / max(float(np.sum(err.astype(np.float64) ** 2)), 1e-30))
        assert snr >= audio["snr_db"]


def test_empty_file_decodes_to_empty_wav_and_refuses_flac(tmp_path: Path) -> None:
    """A zero-length .spev decodes to a valid empty WAV; FLAC cannot hold empty audio (usage error)."""
    import soundfile as sf

    from sparsecodec import api as codec
    from sparsecodec.errors import UsageError

    r = codec.decode_file(GOLDEN / "empty.spev", tmp_path / "e.wav")
    assert r.frames == 0 and sf.info(str(tmp_path / "e.wav")).frames == 0
    with pytest.raises(UsageError):
        codec.decode_file(GOLDEN / "empty.spev", tmp_path / "e.flac")
    assert not (tmp_path / "e.flac").exists()
