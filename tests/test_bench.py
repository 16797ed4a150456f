"""The benchmark's metrics and harness, on small synthetic signals (no Debian music needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench import metrics
from bench.codecs import Codec, CodecError, CodecResult, Mp3Codec, OpusCodec
from bench.devset import Clip, _not_silent, make_phrase, save_manifest
from bench.run import run_benchmark, select_clips, to_markdown

SR = 44100


def rich_signal(seconds: float, sr: int = SR, seed: int = 0, channels: int = 2) -> np.ndarray:
    """Decaying harmonic notes with bright partials up to ~16 kHz plus a noise floor: float32[C, T]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = np.zeros(n)
    for k, onset in enumerate(np.arange(0.0, seconds - 0.3, 0.5)):
        f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        s = int(onset * sr)
        tt = t[: n - s]
        env = np.exp(-tt * (2.0 + k % 3))
        note = sum(np.sin(2 * np.pi * f0 * h * tt + h) / h**0.7 for h in range(1, 40) if f0 * h < 16000)
        x[s:] += env * note
    x += 0.02 * rng.standard_normal(n)
    x *= 0.5 / np.max(np.abs(x))
    out = np.stack([x, np.roll(x, 37)])[:channels]
    return out.astype(np.float32)


class IdentityCodec(Codec):
    """Decoded = input (a 'perfect' codec)."""

    family = "test"

    def __init__(self, name: str = "identity") -> None:
        self.name = name

    def run(self, src: Path, workdir: Path, timeout_s: float) -> CodecResult:
        dec = workdir / "decoded.wav"
        shutil.copy(src, dec)
        return CodecResult(dec, src.stat().st_size // 100)


class DegradeCodec(IdentityCodec):
    """Low-passed at 2 kHz (soxr down/up) plus white noise at -30 dB: a clearly worse decode."""

    def run(self, src: Path, workdir: Path, timeout_s: float) -> CodecResult:
        audio, sr = sf.read(str(src), dtype="float32", always_2d=True)
        low = metrics.resample(metrics.resample(audio.T, sr, 4000), 4000, sr)
        noisy = low + 0.03 * np.random.default_rng(1).standard_normal(low.shape).astype(np.float32)
        dec = workdir / "decoded.wav"
        sf.write(str(dec), np.clip(noisy.T, -1, 1), sr)
        return CodecResult(dec, src.stat().st_size // 100)


class BrokenCodec(IdentityCodec):
    def run(self, src: Path, workdir: Path, timeout_s: float) -> CodecResult:
        raise CodecError("exit 4: deliberately broken")


# ---------------------------------------------------------------- metrics


def test_mrstft_identity_zero_and_monotone_in_noise() -> None:
    x = rich_signal(2.0, channels=1)
    rng = np.random.default_rng(3)
    little = x + 0.001 * rng.standard_normal(x.shape).astype(np.float32)
    lots = x + 0.05 * rng.standard_normal(x.shape).astype(np.float32)
    assert metrics.mrstft(x, x, SR) == 0.0
    d_little, d_lots = metrics.mrstft(x, little, SR), metrics.mrstft(x, lots, SR)
    assert 0.0 < d_little < d_lots
    assert metrics.mrstft(x, lots, SR, rate=44100) > metrics.mrstft(x, little, SR, rate=44100)
    with pytest.raises(metrics.MetricError):
        metrics.mrstft(x, x[:, :-5], SR)


def test_align_recovers_a_delay_and_fits_length() -> None:
    x = rich_signal(2.0)
    late = np.pad(x, ((0, 0), (1234, 0)))[:, : x.shape[1] + 500]
    aligned, lag = metrics.align(x, late, SR)
    assert lag == 1234
    assert aligned.shape == x.shape
    np.testing.assert_allclose(aligned[:, :-1234], x[:, :-1234], atol=1e-6)
    kept, lag2 = metrics.align(x, late, SR, shift=False)  # measure only
    assert lag2 == 1234 and kept.shape == x.shape
    assert not np.allclose(kept, x, atol=1e-3)
    mono, _ = metrics.align(x, late[:1], SR)  # mono decode of a stereo reference
    assert mono.shape == x.shape


def _need_visqol() -> None:
    pytest.importorskip("visqol")
    pytest.importorskip("numba")  # without its JIT visqol-python is ~8x slower: too slow for the suite


def test_visqol_identical_is_best() -> None:
    _need_visqol()
    x = rich_signal(3.0, channels=1)
    noisy = x + 0.03 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    best = metrics.visqol(x, x, SR, "audio")
    assert best > 4.5
    assert metrics.visqol(x, noisy, SR, "audio") < best - 0.5
    assert metrics.visqol(x, np.zeros_like(x), SR, "audio") == 1.0


def test_note_f1_and_event_filter() -> None:
    ref = [{"onset": 0.5, "pitch": 60.0, "offset": 1.0}, {"onset": 1.0, "pitch": 64.0, "offset": 1.5}]
    on, pitch = np.array([0.51, 1.02]), np.array([60.2, 63.9])
    assert metrics.note_f1(ref, on, pitch)["f1"] == pytest.approx(1.0)
    assert metrics.note_f1(ref, on + 0.1, pitch)["f1"] == 0.0  # onsets 100 ms late
    assert metrics.note_f1(ref, on, pitch + 1.0)["f1"] == 0.0  # a semitone off
    assert metrics.note_f1(ref, np.zeros(0), np.zeros(0))["f1"] == 0.0
    export = {
        "events": [
            {"time": 0.5, "pitch": 60.0, "level_db": -10.0},
            {"time": 0.7, "pitch": None, "level_db": -5.0},  # unpitched
            {"time": 0.9, "pitch": 72.0, "level_db": -60.0},  # > 40 dB below the loudest
            {"time": 1.0, "pitch": 64.0, "level_db": -30.0},
        ]
    }
    on2, pitch2 = metrics.events_to_notes(export)
    assert on2.tolist() == [0.5, 1.0] and pitch2.tolist() == [60.0, 64.0]


def test_true_kbps() -> None:
    assert metrics.true_kbps(1000, 8.0) == pytest.approx(1.0)


def test_devset_helpers_are_seeded() -> None:
    a, b = make_phrase(0, 60, True, 7), make_phrase(0, 60, True, 7)
    assert a == b and a != make_phrase(0, 60, True, 8)
    assert all(0 <= n["onset"] < n["offset"] <= 9.0 for n in a)
    assert 12 <= len(a) <= 40  # about 2 notes/s over 9 s
    assert _not_silent(rich_signal(2.0), SR)
    assert not _not_silent(np.zeros((2, SR), np.float32), SR)
    clips = [Clip(f"{c}-00", c, "x.wav", SR, 1, 1.0, "t") for c in ("music", "speech", "notes", "long")]
    assert [c.id for c in select_clips(clips, quick=True, only=None)] == ["music-00", "speech-00", "notes-00"]
    assert [c.id for c in select_clips(clips, quick=False, only="long,speech-00")] == ["speech-00", "long-00"]


# ---------------------------------------------------------------- harness


def _tiny_devset(root: Path) -> list[Clip]:
    clips = []
    for i in range(2):
        cid = f"music-{i:02d}"
        sf.write(str(root / f"{cid}.wav"), rich_signal(3.0, seed=i).T, SR, subtype="PCM_16")
        clips.append(Clip(cid, "music", f"{cid}.wav", SR, 2, 3.0, "synthetic"))
    save_manifest(root, clips, seed=0)
    return clips


@pytest.mark.skipif(
    shutil.which("opusenc") is None or shutil.which("opusdec") is None, reason="opus-tools not installed"
)
def test_harness_ranks_codecs(tmp_path: Path) -> None:
    _need_visqol()
    clips = _tiny_devset(tmp_path)
    codecs: list[Codec] = [
        OpusCodec(6),
        OpusCodec(12),
        IdentityCodec(),
        DegradeCodec("degraded"),
        BrokenCodec("broken"),
    ]
    if shutil.which("lame"):
        codecs.append(Mp3Codec(8))
    out = tmp_path / "out"
    doc = run_benchmark(clips, tmp_path, codecs, out, plot=False, log=lambda s: None)

    rows = {(r["clip"], r["codec"]): r for r in doc["rows"]}
    for c in clips:
        o6, o12 = rows[c.id, "opus-6"], rows[c.id, "opus-12"]
        assert o6["ok"] and o12["ok"], (o6.get("error"), o12.get("error"))
        assert o12["visqol"] > o6["visqol"] + 0.3
        assert o12["mrstft22"] < o6["mrstft22"]
        assert 4.0 < o6["kbps"] < o12["kbps"] < 30.0  # true bitrate from the file size (Ogg overhead incl.)
        assert abs(o12["lag_ms"]) < 1.0  # opusdec removes the pre-skip
        assert o6["enc_xrt"] > 0 and o6["dec_xrt"] > 0
        if shutil.which("time", path="/usr/bin"):  # the command's own peak RSS, not this Python's
            assert 0 < o6["enc_rss_mb"] < 100 and 0 < o6["dec_rss_mb"] < 100
        clean, bad = rows[c.id, "identity"], rows[c.id, "degraded"]
        assert clean["mrstft22"] == pytest.approx(0.0, abs=1e-3)
        assert bad["visqol"] < clean["visqol"] - 0.5
        assert bad["mrstft22"] > clean["mrstft22"] + 0.1
        broken = rows[c.id, "broken"]
        assert not broken["ok"] and "deliberately broken" in broken["error"]
        if (c.id, "mp3-8") in rows:
            mp3 = rows[c.id, "mp3-8"]
            assert (
                mp3["ok"] and mp3["shifted"] and mp3["lag_ms"] > 1.0
            )  # lame's delay, removed before scoring

    saved = json.loads((out / "results.json").read_text())
    assert len(saved["rows"]) == len(clips) * len(codecs)
    summary = {s["codec"]: s for s in saved["summary"]}
    assert summary["broken"]["n_failed"] == 2 and summary["opus-12"]["n_ok"] == 2
    assert summary["opus-12"]["visqol"] > summary["opus-6"]["visqol"]
    md = (out / "results.md").read_text()
    assert "| opus-12 | 2/2 |" in md and "deliberately broken" in md
    assert md == to_markdown(saved["summary"], saved["meta"])
