"""The numpy decoder (render_np): every dimension does what docs/events.md says, measured on audio."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sparsecodec.errors import SpevError
from sparsecodec.format import events
from sparsecodec.jobs import render as decoding
from sparsecodec.synth import kernels as dsp
from sparsecodec.synth import render_np

SR = 22050
C = events.INDEX


def tone(**kw: float) -> np.ndarray:
    """One default event with a few dims set; a sustained, almost pure first partial unless overridden."""
    v = events.defaults(1)
    base = {"tilt": -40.0, "t60_low": 60.0, "t60_high": 60.0, "duration": 8.0, "release": 4.0, "level": -12.0}
    for name, value in {**base, **kw}.items():
        v[0, C[name]] = value
    return v


def peak_hz(x: np.ndarray, sr: int) -> float:
    """Frequency of the strongest spectral peak (Hann, ×8 zero-padding, parabolic interpolation)."""
    n = len(x)
    spec = np.abs(np.fft.rfft(x * np.hanning(n), 8 * n))
    i = int(np.argmax(spec[1:-1])) + 1
    a, b, c = np.log(spec[i - 1 : i + 2] + 1e-30)
    return (i + 0.5 * (a - c) / (a - 2 * b + c)) * sr / (8 * n)


def rms_db(x: np.ndarray) -> float:
    return 20 * math.log10(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) + 1e-30)


def centroid(x: np.ndarray, sr: int) -> float:
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return float((p * f).sum() / p.sum())


@pytest.mark.parametrize("pitch", [28.0, 45.3, 60.0, 77.7, 96.0, 110.0])
def test_pitch_within_10_cents(pitch: float) -> None:
    a = render_np.render(tone(pitch=pitch), [0.0], SR, SR)[0]
    est = events.hz_to_pitch(peak_hz(a[2000:], SR))
    assert abs(est - pitch) * 100 < 10


@pytest.mark.parametrize("level", [-40.0, -12.0, 0.0])
def test_level_is_sine_equivalent_peak(level: float) -> None:
    a = render_np.render(tone(level=level), [0.0], SR, SR)[0]
    assert abs(20 * math.log10(np.abs(a[2000:]).max()) - level) < 0.5
    assert abs(rms_db(a[2000:6000]) - (level - 3.01)) < 0.5
    # a rich tone and a pure-noise event carry the same power for the same level
    rich = render_np.render(tone(level=level, tilt=-3.0, env1=6.0), [0.0], SR, SR)[0]
    assert abs(rms_db(rich[2000:6000]) - (level - 3.01)) < 0.5
    noise = tone(level=level, noise_mix=1.0, noise_decay=30.0, noise_centre=1000.0, noise_width=1.5)
    n = render_np.render(noise, [0.0], SR, SR)[0]
    assert abs(rms_db(n[2000:6000]) - (level - 3.01)) < 0.5


def measured_t60(x: np.ndarray, sr: int, t0: float, t1: float) -> float:
    """T60 from a straight-line fit of the 20 ms RMS envelope (dB) between t0 and t1 seconds."""
    w = int(0.02 * sr)
    frames = x[: len(x) // w * w].reshape(-1, w)
    db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-30)
    t = (np.arange(len(db)) + 0.5) * w / sr
    sel = (t > t0) & (t < t1)
    slope = np.polyfit(t[sel], db[sel], 1)[0]
    return -60.0 / slope


def test_t60_low_and_high() -> None:
    low = tone(pitch=float(events.hz_to_pitch(100.0)), t60_low=0.8, t60_high=0.8)
    a = render_np.render(low, [0.0], SR, SR)[0]
    assert abs(measured_t60(a, SR, 0.05, 0.6) / 0.8 - 1) < 0.1
    high = tone(pitch=float(events.hz_to_pitch(8000.0)), t60_low=5.0, t60_high=0.3)
    a = render_np.render(high, [0.0], SR // 2, SR)[0]
    assert abs(measured_t60(a, SR, 0.03, 0.3) / 0.3 - 1) < 0.1
    # in between, log-log interpolation: 894 Hz is half-way in log f -> geometric mean of the T60s
    mid = tone(pitch=float(events.hz_to_pitch(math.sqrt(100 * 8000))), t60_low=2.0, t60_high=0.5)
    a = render_np.render(mid, [0.0], SR, SR)[0]
    assert abs(measured_t60(a, SR, 0.05, 0.8) / 1.0 - 1) < 0.1


def test_release_after_duration() -> None:
    a = render_np.render(tone(duration=0.3, release=0.4), [0.0], SR, SR)[0]
    assert abs(measured_t60(a, SR, 0.35, 0.6) / 0.4 - 1) < 0.1
    assert rms_db(a[int(0.1 * SR) : int(0.25 * SR)]) > rms_db(a[int(0.5 * SR) : int(0.6 * SR)]) + 15


def rise_time(x: np.ndarray, sr: int) -> float:
    """Seconds from 10 % to 90 % of the peak of the 2 ms RMS envelope."""
    w = int(0.002 * sr)
    env = np.sqrt(np.mean(x[: len(x) // w * w].reshape(-1, w) ** 2, axis=1))
    top = env.max()
    return (np.argmax(env >= 0.9 * top) - np.argmax(env >= 0.1 * top)) * w / sr


def test_attack_sets_onset_sharpness() -> None:
    sharp = render_np.render(tone(attack=0.001), [0.1], SR // 2, SR)[0]
    slow = render_np.render(tone(attack=0.2), [0.1], SR // 2, SR)[0]
    assert rise_time(sharp, SR) < 0.012
    # raised cosine: 10 %..90 % takes 0.59 of the attack
    assert abs(rise_time(slow, SR) - 0.59 * 0.2) < 0.02
    # nothing before the onset (beyond the half-frame the window allows)
    assert np.abs(sharp[: int(0.1 * SR) - dsp.frame_size(SR) // 2]).max() == 0.0


def flatness(x: np.ndarray) -> float:
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.exp(np.mean(np.log(mag + 1e-12))) / np.mean(mag))


def test_noise_dims_move_the_spectrum() -> None:
    def noise(**kw: float) -> np.ndarray:
        v = tone(noise_mix=1.0, noise_decay=30.0, **kw)
        return render_np.render(v, [0.0], SR // 2, SR)[0][1000:]

    lo = centroid(noise(noise_centre=500.0, noise_width=1.0), SR)
    hi = centroid(noise(noise_centre=4000.0, noise_width=1.0), SR)
    assert 350 < lo < 700 and 3000 < hi < 5000
    # wider band -> more spread
    narrow, wide = noise(noise_width=0.3), noise(noise_width=6.0)
    spread = [np.mean(np.abs(np.fft.rfft(x)) > 0.1 * np.abs(np.fft.rfft(x)).max()) for x in (narrow, wide)]
    assert spread[1] > 3 * spread[0]
    # noise_mix 0 = partials only (pure tone), 0.5 = noisy
    pure = render_np.render(tone(noise_mix=0.0), [0.0], SR // 2, SR)[0][1000:]
    mixed = render_np.render(tone(noise_mix=0.5, noise_decay=30.0), [0.0], SR // 2, SR)[0][1000:]
    flat = [flatness(x) for x in (pure, mixed)]
    assert flat[1] > 10 * flat[0]
    # noise decay: a short noise_decay dies away
    short = render_np.render(tone(noise_mix=1.0, noise_decay=0.1), [0.0], SR // 2, SR)[0]
    assert abs(measured_t60(short, SR, 0.02, 0.09) / 0.1 - 1) < 0.15


def test_pan_is_equal_power() -> None:
    for pan in (-1.0, -0.3, 0.0, 0.6):
        st = render_np.render(tone(pan=pan), [0.0], SR // 2, SR, channels=2)
        mono = render_np.render(tone(pan=pan), [0.0], SR // 2, SR, channels=1)
        a = math.pi / 4 * (pan + 1)
        np.testing.assert_allclose(st[0], math.cos(a) * mono[0], atol=1e-5)
        np.testing.assert_allclose(st[1], math.sin(a) * mono[0], atol=1e-5)


def high_fraction(x: np.ndarray, sr: int, cut: float = 11000.0) -> float:
    p = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    return float(p[np.fft.rfftfreq(len(x), 1 / sr) > cut].sum() / p.sum())


def test_full_band_at_44k() -> None:
    sr = 44100
    v = tone(noise_mix=1.0, noise_centre=15000.0, noise_width=1.0, noise_decay=30.0)
    hiss = render_np.render(v, [0.0], sr // 4, sr)[0]
    assert high_fraction(hiss, sr) > 0.8
    mag = np.abs(np.fft.rfft(hiss * np.hanning(len(hiss))))
    assert mag[np.fft.rfftfreq(len(hiss), 1 / sr) > 20500].max() < 1e-2 * mag.max()  # nothing above 20 kHz
    bright = render_np.render(tone(pitch=84.0, tilt=0.0, cutoff=20000.0), [0.0], sr // 4, sr)
    dull = render_np.render(tone(pitch=84.0, tilt=0.0, cutoff=2000.0), [0.0], sr // 4, sr)
    assert high_fraction(bright[0], sr) > 0.2
    assert high_fraction(dull[0], sr) < 1e-6


def test_deterministic_and_seeded() -> None:
    v = events.sample_prior(np.random.default_rng(3), 12)
    t = np.sort(np.random.default_rng(4).uniform(0, 1, 12))
    a = render_np.render(v, t, SR * 2, SR, side={"room": [0.5, 1.0]}, channels=2)
    b = render_np.render(v, t, SR * 2, SR, side={"room": [0.5, 1.0]}, channels=2)
    assert np.array_equal(a, b)
    c = render_np.render(v, t, SR * 2, SR, side={"room": [0.5, 1.0]}, channels=2, seeds=np.arange(12) + 99)
    assert not np.array_equal(a, c)


def test_stream_chunks_equal_one_shot() -> None:
    rng = np.random.default_rng(5)
    v = events.sample_prior(rng, 40)
    t = np.sort(rng.uniform(0, 3.5, 40))
    n = 4 * SR
    side = {"room": [0.7, 0.5]}
    full = render_np.render(v, t, n, SR, side=side, channels=2)
    for start in (0, 30_000):
        stream = render_np.StreamRenderer(SR, 2, n, start_sample=start)
        got = []
        edges = [0.0, 0.37, 1.1, 1.1, 2.9, 3.5]
        for lo, hi in itertools.pairwise(edges):
            sel = (t >= lo) & (t < hi)
            got.append(stream.push(v[sel], t[sel], side, safe_until_s=hi))
        sel = t >= edges[-1]
        got.append(stream.push(v[sel], t[sel], side, safe_until_s=math.inf))
        got.append(stream.finish())
        out = np.concatenate(got, axis=1)
        assert out.shape == (2, n - start)
        np.testing.assert_allclose(out, full[:, start:], atol=2e-6)
    # render with start_s is the same slice
    part = render_np.render(v, t, SR, SR, side=side, channels=2, start_s=2.0)
    np.testing.assert_allclose(part, full[:, 2 * SR : 3 * SR], atol=2e-6)


def test_room_adds_a_tail_only_with_side_data() -> None:
    v = tone(duration=0.1, release=0.05, wet=1.0)
    dry = render_np.render(v, [0.0], SR, SR)[0]
    wet = render_np.render(v, [0.0], SR, SR, side={"room": [0.8, 0.5]})[0]
    tail = slice(int(0.3 * SR), int(0.6 * SR))
    assert np.abs(dry[tail]).max() < 1e-6
    assert rms_db(wet[tail]) > -12 - 40
    assert rms_db(wet[int(0.95 * SR) :]) < rms_db(wet[tail]) - 20  # it decays (rt60 0.8 s)


def test_support_bounds_the_event() -> None:
    v = tone(t60_low=60.0, duration=8.0, release=4.0)
    a = render_np.render(v, [0.0], int((events.MAX_SUPPORT_S + 0.5) * SR), SR)[0]
    assert np.abs(a[int((events.MAX_SUPPORT_S + 0.02) * SR) :]).max() == 0.0


def test_extremes_are_finite_and_bad_input_raises() -> None:
    v = np.stack([events.LO, events.HI, events.DEFAULT])
    for sr in (8000, 22050, 48000):
        a = render_np.render(v, [0.0, 0.01, 0.02], sr // 2, sr, side={"room": [100.0, 9.0]}, channels=2)
        assert np.isfinite(a).all()
    with pytest.raises(SpevError):
        render_np.render(np.full((1, 32), np.nan), [0.0], 100, SR)
    with pytest.raises(SpevError):
        render_np.render(events.defaults(2), [0.0], 100, SR)


def test_frame_size() -> None:
    assert [dsp.frame_size(r) for r in (8000, 22050, 44100, 48000)] == [128, 256, 512, 512]


def test_threads_give_the_same_audio() -> None:
    v = events.sample_prior(np.random.default_rng(8), 20)
    t = np.sort(np.random.default_rng(9).uniform(0, 1, 20))
    out = []
    for threads in (1, 2):
        stream = render_np.StreamRenderer(SR, 2, SR * 2, threads=threads)
        out.append(np.concatenate([stream.push(v, t, None, 1.0), stream.finish()], axis=1))
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)


def test_superposition_over_a_long_sparse_stream() -> None:
    """Rendering is linear: many small pushes with long silent gaps (accumulators dropped, compacted and
    re-created, rooms coming and going) give the sum of the events rendered one by one."""
    sr = 8000
    rng = np.random.default_rng(21)
    t = np.array([0.0, 0.3, 0.31, *np.arange(1.2, 20.0, 0.9), 14.0, 14.2, 30.5, 30.6, 31.0, 45.0])
    v = events.sample_prior(rng, len(t))
    v[:, C["wet"]] = 0.5
    v[:-4:6] = tone(duration=8.0, release=4.0, wet=0.5)[0]  # long notes keep rows live across many pushes
    n = int(48.0 * sr)
    rooms = [None, {"room": [0.4, 0.5]}]
    stream = render_np.StreamRenderer(sr, 2, n)
    got, total = [], np.zeros((2, n), dtype=np.float64)
    edges = np.arange(0.0, 48.0, 0.7)
    for i, (lo, hi) in enumerate(itertools.pairwise([*edges, 48.0])):
        sel = np.flatnonzero((t >= lo) & (t < hi))
        side = rooms[i % 2]
        got.append(stream.push(v[sel], t[sel], side, safe_until_s=hi, seeds=sel + 7))
        for j in sel:
            one = render_np.StreamRenderer(sr, 2, n)
            alone = one.push(v[j : j + 1], t[j : j + 1], side, safe_until_s=math.inf, seeds=[j + 7])
            total += np.concatenate([alone, one.finish()], axis=1)
    got.append(stream.finish())
    out = np.concatenate(got, axis=1)
    assert out.shape == (2, n)
    assert np.abs(total).max() > 0.05
    np.testing.assert_allclose(out, total, atol=2e-5)
    # nothing leaks into the long gaps
    assert np.abs(out[:, int(41.1 * sr) : int(44.9 * sr)]).max() < 1e-6


def test_low_partials_fold_at_dc() -> None:
    """A partial below one bin (taps under bin 0 fold back as conjugates, bin 0 is real) still has the
    right pitch and level."""
    low = tone(pitch=15.0, level=-12.0)  # 20.6 Hz: bin 0.24 at 22050 Hz / N = 256
    a = render_np.render(low, [0.0], SR, SR)[0]
    assert abs(events.hz_to_pitch(peak_hz(a[2000:], SR)) - 15.0) * 100 < 10
    assert abs(20 * math.log10(np.abs(a[4000:]).max()) + 12.0) < 0.5


def test_decode_threads_follow_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparsecodec import api as codec

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert decoding.decode_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "16")
    assert decoding.decode_threads() == 4
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert 1 <= decoding.decode_threads() <= 4
    # without the variable the count follows the idle CPUs
    monkeypatch.setattr(codec.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    monkeypatch.setattr(codec.os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert decoding.decode_threads() == 2
    monkeypatch.setattr(codec.os, "getloadavg", lambda: (3.5, 0.0, 0.0))
    assert decoding.decode_threads() == 1


def test_usable_cpus_follow_the_cgroup_quota(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A container limited to 2 CPUs of a 64-CPU host gets 2 decode threads and 2 batch jobs, not 4 and 64."""
    from sparsecodec.jobs import batch, procs

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(procs.os, "sched_getaffinity", lambda _pid: set(range(64)), raising=False)
    monkeypatch.setattr(procs.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    cpu_max = tmp_path / "cpu.max"
    monkeypatch.setattr(procs, "CGROUP_CPU_MAX", str(cpu_max))
    for text, cpus in [("200000 100000\n", 2), ("50000 100000\n", 1), ("max 100000\n", 64), ("garbage", 64)]:
        cpu_max.write_text(text)
        assert procs.usable_cpus() == cpus and batch.default_jobs() == cpus
    cpu_max.unlink()  # no cgroup v2 file: the affinity alone
    assert procs.usable_cpus() == 64 and decoding.decode_threads() == 4
    cpu_max.write_text("200000 100000\n")
    assert decoding.decode_threads() == 2


def test_decode_speed_bench_files(tmp_path: Path) -> None:
    """The decode-speed bench writes valid .spev files and tiles real ones to the asked event rate."""
    from bench import decode_speed
    from sparsecodec import api as codec

    v, t = decode_speed.synthetic_events(2.0, SR, 10.0, seed=1)
    src = tmp_path / "clips" / "a.spev"
    src.parent.mkdir()
    decode_speed.write_spev(src, v, t, 2 * SR, SR, 2, room=True)
    res = codec.decode_file(src, tmp_path / "a.wav")
    assert (res.events, res.frames, res.channels) == (20, 2 * SR, 2)
    tv, tt, ch = decode_speed.real_events(src.parent, 6.0, SR, 15.0, seed=2)
    assert ch == 2 and len(tt) == 90 and np.all(np.diff(tt) >= 0) and tt.max() < 6 * SR
    assert np.isin(tv[:, C["pitch"]], v[:, C["pitch"]]).all()  # only the file's events, duplicated


_PARALLEL_CHILD = """
import sys
import soundfile as sf
from sparsecodec import api
from sparsecodec.jobs import render as decoding

calls = []
real = decoding.decode_parallel
decoding.decode_parallel = lambda *a, **k: (calls.append(1), real(*a, **k))[1]
src, dst, bits = sys.argv[1:]
res = api.decode_file(src, dst, bits=bits)
print(len(calls), res.frames, res.events)
"""


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_parallel_decode_equals_one_process(tmp_path: Path, suffix: str) -> None:
    """A long file decoded by forked workers in segments (each pre-rolled like a seek) gives the samples
    of a one-process decode; WAV is packed by the workers, FLAC by the parent.  Each decode runs in a fresh
    child process: this one may hold threads (Ray's, from other tests), and forking a threaded process can
    deadlock the fork, which is why the decoder itself never forks from one."""
    import os
    import subprocess
    import sys

    from conftest import make_spev

    src = make_spev(tmp_path / "long.spev", seconds=45.0, rate=8000, channels=2, per_chunk=8)
    outs, calls = [], []
    for threads in ("1", "2"):
        dst = tmp_path / f"out{threads}{suffix}"
        bits = "24" if suffix == ".flac" else "32f"
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        run = subprocess.run(
            [sys.executable, "-c", _PARALLEL_CHILD, str(src), str(dst), bits],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=True,
        )
        n_calls, frames, n_events = map(int, run.stdout.split())
        calls.append(n_calls)
        outs.append(sf.read(dst, dtype="float32")[0])
        assert frames == 45 * 8000
        assert n_events == 45 * 8  # each event counted once, pre-rolls or not
    assert calls == [0, 1]  # only the 2-thread decode went parallel (45 s = two segments of 22.5 s)
    assert outs[0].shape == outs[1].shape == (45 * 8000, 2)
    assert np.abs(outs[0]).max() > 0.01
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-6)


def test_parallel_decode_only_from_a_single_threaded_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forking a threaded process can deadlock the child: another live thread keeps the decode in one
    process; the progress bar (rich, on a terminal) runs no thread of its own."""
    import io
    import sys
    import threading

    from sparsecodec.cli import console

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(decoding.procs.threading, "active_count", lambda: 1)
    assert decoding.decode_workers("x.spev", "cpu", False, 60.0) == 2
    assert decoding.decode_workers("x.spev", "cpu", False, 30.0) == 1  # under 20 s per worker
    assert decoding.decode_workers("x.spev", "cuda", False, 60.0) == 1
    assert decoding.decode_workers("x.spev", "cpu", True, 60.0) == 1  # --ignore-errors
    monkeypatch.setattr(decoding.procs.threading, "active_count", lambda: 2)
    assert decoding.decode_workers("x.spev", "cpu", False, 60.0) == 1
    monkeypatch.undo()

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    before = threading.active_count()
    with console.Console().progress("decoding") as update:
        assert update is not None
        update(0.5)
        assert threading.active_count() == before
    assert "decoding" in sys.stderr.getvalue()
