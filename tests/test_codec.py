"""The public codec API: round trips with a quality floor, file objects, time ranges, damage, full scale."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sparsecodec import api as codec
from sparsecodec.audio import io as audio_io
from sparsecodec.errors import ChecksumError, UsageError
from sparsecodec.format import container, quantize

F0 = 220.0


def tone_pitch_and_level(audio: np.ndarray, rate: int) -> tuple[float, float]:
    """(f0 in Hz near 220, RMS in dBFS) of the steady middle of ``float[C, n]`` (mono mix).

    Silence gives a level of -inf and no pitch (nan), so it fails any floor.
    """
    x = np.asarray(audio, dtype=np.float64).mean(axis=0)
    seg = x[int(0.3 * rate) : int(1.2 * rate)]
    rms = float(np.sqrt(np.mean(seg**2)))
    level = 20 * np.log10(rms) if rms > 0 else -np.inf
    n_fft = 1 << 18
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1 / rate)
    band = np.flatnonzero((freqs > 150) & (freqs < 300))
    i = band[np.argmax(spec[band])]
    if spec[i] <= 1e-9 * len(seg):
        return float("nan"), level
    a, b, c = np.log(spec[i - 1 : i + 2] + 1e-300)
    return float((i + 0.5 * (a - c) / (a - 2 * b + c)) * rate / n_fft), level


def assert_tone_kept(ref: np.ndarray, out: np.ndarray, rate: int) -> None:
    """The decoded tone keeps its pitch within 10 cents and its level within 1 dB, and its length."""
    assert out.shape == ref.shape
    f_ref, l_ref = tone_pitch_and_level(ref, rate)
    f_out, l_out = tone_pitch_and_level(out, rate)
    assert abs(f_ref - F0) < 0.5
    cents = 1200 * abs(np.log2(f_out / f_ref)) if f_out > 0 else np.inf
    assert cents < 10, f"pitch {f_out:.2f} Hz vs {f_ref:.2f} Hz ({cents:.1f} cents)"
    assert abs(l_out - l_ref) < 1.0, f"level {l_out:.2f} dB vs {l_ref:.2f} dB"


def test_quality_check_rejects_silence_and_detuning(tone: Callable[..., np.ndarray]) -> None:
    rate = 22050
    ref = tone(rate, 1.5)
    assert_tone_kept(ref, ref, rate)
    with pytest.raises(AssertionError):
        assert_tone_kept(ref, np.zeros_like(ref), rate)
    with pytest.raises(AssertionError):
        assert_tone_kept(ref, tone(rate, 1.5, f0=F0 * 2 ** (15 / 1200)), rate)
    with pytest.raises(AssertionError):
        assert_tone_kept(ref, ref * 0.8, rate)


ROUND_TRIPS = [(8000, 1, "wav"), (22050, 2, "flac"), (44100, 1, "flac"), (48000, 2, "wav")]


@pytest.mark.slow
@pytest.mark.parametrize("rate,channels,fmt", ROUND_TRIPS)
def test_round_trip_keeps_a_tone(
    rate: int, channels: int, fmt: str, tmp_path: Path, tone: Callable[..., np.ndarray]
) -> None:
    ref = tone(rate, 1.5, channels=channels)
    src = tmp_path / f"in.{fmt}"
    sf.write(str(src), ref.T, rate, subtype="PCM_24")
    enc = codec.encode_file(src, tmp_path / "t.spev")
    assert enc.events >= 1 and enc.sample_rate == rate and enc.channels == channels
    assert enc.bytes == (tmp_path / "t.spev").stat().st_size
    out_path = tmp_path / f"out.{fmt}"
    dec = codec.decode_file(tmp_path / "t.spev", out_path, bits="24")
    out, out_rate = sf.read(str(out_path), dtype="float32", always_2d=True)
    assert out_rate == rate and sf.info(str(out_path)).format == fmt.upper()
    assert dec.frames == ref.shape[1] and dec.channels == channels
    assert_tone_kept(ref, out.T, rate)


@pytest.mark.slow
def test_file_objects_non_seekable_input_and_high_rate(
    tmp_path: Path, tone: Callable[..., np.ndarray]
) -> None:
    rate = 96000
    ref = tone(rate, 1.2)
    wav = io.BytesIO()
    sf.write(wav, ref.T, rate, format="WAV", subtype="PCM_16")

    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._b = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            data = self._b.read(len(b))
            b[: len(data)] = data
            return len(data)

    spev = io.BytesIO()
    res = codec.encode_file(
        io.BufferedReader(Pipe(wav.getvalue())),
        spev,
        tags={"title": "T"},  # type: ignore[arg-type]
    )
    assert res.bytes == len(spev.getvalue()) and res.tags["title"] == "T"
    spev.seek(0)
    h = container.Reader(spev).header
    assert (h.sample_rate, h.n_samples, h.time_rate) == (rate, ref.shape[1], 48000)
    spev.seek(0)
    out = io.BytesIO()
    dec = codec.decode_file(spev, out, rate=24000)
    y, sr = sf.read(io.BytesIO(out.getvalue()), always_2d=True)
    assert sr == 24000 and dec.frames == len(y) == round(ref.shape[1] * 24000 / rate)


def _decode(src: Path | io.BytesIO, **kw: object) -> np.ndarray:
    out = io.BytesIO()
    codec.decode_file(src, out, bits="32f", **kw)  # type: ignore[arg-type]
    y, _ = sf.read(io.BytesIO(out.getvalue()), dtype="float32", always_2d=True)
    return np.asarray(y.T)


def test_time_range_matches_full_decode(spev_file: Path) -> None:
    rate = 22050
    full = _decode(spev_file)
    assert full.shape == (1, 4 * rate) and np.abs(full).max() > 1e-3
    part = _decode(spev_file, start=1.5, end=3.25)
    a, b = round(1.5 * rate), round(3.25 * rate)
    assert part.shape == (1, b - a)
    np.testing.assert_allclose(part, full[:, a:b], atol=2e-5)
    tail = _decode(spev_file, start=2.0)
    np.testing.assert_allclose(tail, full[:, 2 * rate :], atol=2e-5)


def test_ignore_errors_renders_silence_for_lost_chunks(spev_file: Path, tmp_path: Path) -> None:
    data = bytearray(spev_file.read_bytes())
    with open(spev_file, "rb") as f:
        reader = container.Reader(f)
        entries = reader.index()
    assert entries is not None
    damaged = bytearray(data)
    damaged[entries[1].offset + 20] ^= 0xFF  # inside chunk 1
    with pytest.raises(ChecksumError):
        codec.decode_file(io.BytesIO(bytes(damaged)), io.BytesIO())
    out = io.BytesIO()
    res = codec.decode_file(io.BytesIO(bytes(damaged)), out, bits="32f", ignore_errors=True)
    assert res.lost_chunks == [1] and res.frames == 4 * 22050
    y, _ = sf.read(io.BytesIO(out.getvalue()), dtype="float32", always_2d=True)
    assert np.abs(y).max() > 1e-3


def test_loud_events_do_not_clip_or_wrap(tmp_path: Path) -> None:
    from sparsecodec.format import events
    from sparsecodec.synth import render_np

    rate, n = 16000, 16000
    v = events.defaults(8)
    v[:, events.INDEX["level"]] = 6.0  # eight events at +6 dBFS on top of each other
    v[:, events.INDEX["pitch"]] = 57.0
    times = np.zeros(8, dtype=np.int64)
    v = quantize.dequantize(quantize.quantize(v))
    raw = render_np.render(v, times / rate, n, rate)
    assert np.abs(raw).max() > 1.5  # the test is meaningful: the raw sum is far above full scale
    header = container.Header(1, "test", "none", rate, 1, n, rate, n)
    path = tmp_path / "loud.spev"
    with open(path, "wb") as f:
        container.write_file(f, header, [container.Chunk(0, 0, n, times, quantize.quantize(v), {})])
    y16 = _decode_int16(path)
    y32 = _decode(path)
    assert np.abs(y32).max() < 1.0
    assert y16.max() <= 32767 and y16.min() >= -32768
    # a wrapped sample would differ from the float decode by about 2.0 full scale
    np.testing.assert_allclose(y16 / 32768.0, y32[0], atol=2 / 32768)
    np.testing.assert_allclose(audio_io.soft_limit(raw)[0], y32[0], atol=1e-3)


def _decode_int16(path: Path) -> np.ndarray:
    out = io.BytesIO()
    codec.decode_file(path, out, bits="16")
    y, _ = sf.read(io.BytesIO(out.getvalue()), dtype="int16")
    return np.asarray(y, dtype=np.int32)


def test_one_set_of_tag_limits(tmp_path: Path) -> None:
    """What encode_file accepts is what the format allows (container.check_tags), no stricter, no looser."""
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(8000) / 8000)).astype(np.float32)
    sf.write(str(tmp_path / "a.wav"), x, 8000)
    many = {f"k{i}": "v" * 2000 for i in range(100)}  # beyond the old 64 tags / 1024 characters
    codec.encode_file(tmp_path / "a.wav", tmp_path / "a.spev", tags=many, init="analysis")
    with open(tmp_path / "a.spev", "rb") as f:
        assert container.Reader(f).header.tags == many
    too_many = {f"k{i}": "v" for i in range(container.MAX_TAGS + 1)}
    with pytest.raises(UsageError, match=f"max {container.MAX_TAGS}"):
        codec.encode_file(tmp_path / "a.wav", tmp_path / "b.spev", tags=too_many, init="analysis")
    assert not (tmp_path / "b.spev").exists()
