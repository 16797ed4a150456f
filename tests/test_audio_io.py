"""audio_io: block reading, resampling, WAV to pipes, the soft limiter, atomic outputs."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sparsecodec.audio import io as audio_io
from sparsecodec.errors import InputError, OutputExistsError, UsageError


class Pipe(io.RawIOBase):
    """A write-only, non-seekable sink (like stdout on a pipe) that records what was written."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, b: object) -> int:
        chunk = bytes(b)  # type: ignore[call-overload]
        self.data += chunk
        return len(chunk)


class ReadPipe(io.RawIOBase):
    """A read-only, non-seekable source over bytes, handing out at most 1000 bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        n = min(len(b), 1000, len(self._data) - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


@pytest.mark.parametrize(
    "bits,subtype,tol", [("16", "PCM_16", 1 / 32768), ("24", "PCM_24", 1e-6), ("32f", "FLOAT", 0)]
)
@pytest.mark.parametrize("channels", [1, 2])
def test_wav_writer_on_a_pipe_is_exact(
    bits: str, subtype: str, tol: float, channels: int, tone: Callable[..., np.ndarray]
) -> None:
    rate = 22050
    x = tone(rate, 0.3, channels=channels)
    pipe = Pipe()
    w = audio_io.open_writer(pipe, "wav", rate, channels, x.shape[1], bits)  # type: ignore[arg-type]
    for i in range(0, x.shape[1], 1000):  # odd block sizes
        w.write(x[:, i : i + 1000])
    w.close()
    y, sr = sf.read(io.BytesIO(bytes(pipe.data)), dtype="float32", always_2d=True)
    info = sf.info(io.BytesIO(bytes(pipe.data)))
    assert sr == rate and info.subtype == subtype and y.shape == (x.shape[1], channels)
    np.testing.assert_allclose(y.T, x, atol=tol + 1e-7)
    # The header announces exactly the bytes that follow.
    assert int.from_bytes(pipe.data[4:8], "little") == len(pipe.data) - 8


def test_wav_writer_pads_and_truncates_to_the_announced_length() -> None:
    pipe = Pipe()
    w = audio_io.WavWriter(pipe, 8000, 1, 100, "16")  # type: ignore[arg-type]
    w.write(np.full((1, 60), 0.25, dtype=np.float32))
    w.close()
    y, _ = sf.read(io.BytesIO(bytes(pipe.data)), dtype="float32")
    assert len(y) == 100 and np.allclose(y[:60], 0.25, atol=1e-4) and not y[60:].any()
    pipe = Pipe()
    w = audio_io.WavWriter(pipe, 8000, 1, 10, "16")  # type: ignore[arg-type]
    w.write(np.zeros((1, 50), dtype=np.float32))
    w.close()
    assert len(sf.read(io.BytesIO(bytes(pipe.data)))[0]) == 10


def test_flac_to_a_pipe_and_to_a_file(tone: Callable[..., np.ndarray]) -> None:
    rate = 16000
    x = tone(rate, 0.4, channels=2)
    pipe = Pipe()
    w = audio_io.open_writer(pipe, "flac", rate, 2, x.shape[1], "24")  # type: ignore[arg-type]
    w.write(x)
    w.close()
    y, sr = sf.read(io.BytesIO(bytes(pipe.data)), dtype="float32", always_2d=True)
    assert sr == rate and sf.info(io.BytesIO(bytes(pipe.data))).format == "FLAC"
    np.testing.assert_allclose(y.T, x, atol=1e-6)
    with pytest.raises(UsageError):
        audio_io.open_writer(io.BytesIO(), "flac", rate, 2, 10, "32f")


def test_soft_limiter_never_clips_or_wraps() -> None:
    t = audio_io.LIMIT_THRESHOLD
    quiet = np.linspace(-t, t, 1001, dtype=np.float32)[None]
    np.testing.assert_array_equal(audio_io.soft_limit(quiet), quiet)  # identity below -1 dBFS
    loud = np.linspace(-8.0, 8.0, 20001, dtype=np.float32)[None]
    y = audio_io.soft_limit(loud)
    assert np.all(np.abs(y) < 1.0)
    assert np.all(np.diff(y[0]) >= 0)  # monotonic: no fold-over
    assert np.array_equal(np.sign(y), np.sign(loud))
    pcm = np.frombuffer(audio_io.pcm_bytes(y, "16"), dtype="<i2")
    assert pcm.max() <= 32767 and pcm.min() >= -32768
    assert np.array_equal(np.sign(pcm[loud[0] > 0.01]), np.ones(int((loud[0] > 0.01).sum())))
    assert not np.isnan(audio_io.soft_limit(np.array([[np.nan, np.inf]], dtype=np.float32))).any()


def test_loud_wav_does_not_wrap(tone: Callable[..., np.ndarray]) -> None:
    rate = 8000
    x = 3.0 * tone(rate, 0.2)  # peaks at 1.5 FS
    pipe = Pipe()
    w = audio_io.WavWriter(pipe, rate, 1, x.shape[1], "16")  # type: ignore[arg-type]
    w.write(x)
    w.close()
    y, _ = sf.read(io.BytesIO(bytes(pipe.data)), dtype="float32")
    assert np.max(np.abs(y)) <= 1.0
    big = np.abs(x[0]) > 0.5
    assert np.all(np.sign(y[big]) == np.sign(x[0, big]))  # a wrapped sample would flip sign


def test_reader_blocks_tags_and_rejections(
    tmp_path: Path, write_audio: Callable[..., Path], tone: Callable[..., np.ndarray]
) -> None:
    rate = 44100
    x = tone(rate, 0.5, channels=2)
    path = tmp_path / "tagged.wav"
    with sf.SoundFile(str(path), "w", rate, 2) as f:
        f.title = "A Title"
        f.artist = "Someone"
        f.write(x.T)
    with audio_io.AudioReader(path) as r:
        assert (r.info.sample_rate, r.info.channels, r.info.frames) == (rate, 2, x.shape[1])
        assert r.info.tags.get("title") == "A Title" and r.info.tags.get("artist") == "Someone"
        y = np.concatenate(list(r.blocks(4096)), axis=1)
    np.testing.assert_allclose(y, x, atol=1 / 32768)

    with pytest.raises(InputError, match="no such file"):
        audio_io.AudioReader(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF garbage that is not audio" * 10)
    with pytest.raises(InputError, match="cannot read audio"):
        audio_io.AudioReader(bad)
    quad = write_audio("quad.wav", np.zeros((4, 100), np.float32), 8000)
    with pytest.raises(InputError, match="4 channels"):
        audio_io.AudioReader(quad)
    empty = write_audio("empty.wav", np.zeros((1, 0), np.float32), 8000)
    with pytest.raises(InputError, match="no audio"):
        audio_io.AudioReader(empty)


def test_stdin_spooling_reads_a_wav_from_a_pipe(tone: Callable[..., np.ndarray]) -> None:
    rate = 22050
    x = tone(rate, 0.3)
    buf = io.BytesIO()
    sf.write(buf, x.T, rate, format="WAV")
    spooled = audio_io.spool(io.BufferedReader(ReadPipe(buf.getvalue())))  # type: ignore[arg-type]
    with spooled, audio_io.AudioReader(spooled, name="<stdin>") as r:
        y = np.concatenate(list(r.blocks()), axis=1)
    np.testing.assert_allclose(y, x, atol=1 / 32768)


def test_resample_stream_keeps_length_and_pitch(tone: Callable[..., np.ndarray]) -> None:
    rate_in, rate_out = 96000, audio_io.analysis_rate(96000)
    assert rate_out == 48000 and audio_io.analysis_rate(44100) == 44100
    x = tone(rate_in, 1.0)
    blocks = (x[:, i : i + 7000] for i in range(0, x.shape[1], 7000))
    y = np.concatenate(list(audio_io.resample_blocks(blocks, rate_in, rate_out, 1)), axis=1)
    assert abs(y.shape[1] - audio_io.resampled_length(x.shape[1], rate_in, rate_out)) <= 1
    spec = np.abs(np.fft.rfft(y[0] * np.hanning(y.shape[1])))
    peak_hz = np.argmax(spec) * rate_out / y.shape[1]
    assert abs(peak_hz - 220.0) < 2.0


def test_atomic_output_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), audio_io.atomic_output(target) as f:
            f.write(b"partial")
            raise exc
        assert target.read_bytes() == b"old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    with audio_io.atomic_output(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(OutputExistsError):
        audio_io.ensure_writable(target, force=False)
    audio_io.ensure_writable(target, force=True)


def test_atomic_output_has_the_mode_of_a_plain_file(tmp_path: Path) -> None:
    """Outputs get 0666 less the umask (as open() would), not mkstemp's private 0600."""
    import os
    import stat

    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    target = tmp_path / "out.bin"
    with audio_io.atomic_output(target) as f:
        f.write(b"new")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    old = os.umask(0o027)
    try:
        with audio_io.atomic_output(target) as f:
            f.write(b"newer")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
