"""Decode-speed benchmark: 3 minutes of 20 events/s stereo 44.1 kHz.

Three variants (each prints one line: × real time on the wall clock and per CPU-second, peak RSS):

* ``synthetic`` (default): events from ``events.sample_prior`` pushed through ``render_np.StreamRenderer``
  in chunks of 2**17 samples (≈2.97 s), as the codec does.
* ``--real DIR``: the events of real ``.spev`` files (``spev encode`` of fluidsynth renders, say) tiled
  to ``--seconds`` and duplicated/thinned to ``--eps`` events/s, written as a ``.spev`` with the container
  Writer and decoded end to end by ``codec.decode_file`` to a WAV file.
* ``--cli``: the same file (synthetic events unless ``--real``) decoded by a ``spev decode`` subprocess,
  start-up included; CPU time from ``RUSAGE_CHILDREN``.

CPU time (user + system, all threads) is the robust figure on a shared machine; wall-clock speed on a
loaded machine is pessimistic.  ``--write-spev PATH`` just writes the synthetic file (e.g. a 1-hour one for
``/usr/bin/time -v spev decode``).

    python bench/decode_speed.py [--seconds 180] [--rate 44100] [--eps 20] [--channels 2] [--room]
                                 [--threads 2] [--real DIR] [--cli] [--write-spev PATH]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from sparsecodec.format import container, events, quantize  # noqa: E402
from sparsecodec.synth import render_np  # noqa: E402

HOP = 1 << 17
"""Chunk hop of the written files and of the synthetic push loop (samples)."""


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def synthetic_events(seconds: float, rate: int, eps: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors float64[N, 32], times int64[N] samples)``: prior events at uniform random times."""
    rng = np.random.default_rng(seed)
    n_total = int(seconds * rate)
    n_events = int(seconds * eps)
    vectors = quantize.dequantize(quantize.quantize(events.sample_prior(rng, n_events)))
    times = np.sort(rng.integers(0, n_total, n_events))
    return vectors, times


def real_events(
    src_dir: Path, seconds: float, rate: int, eps: float, seed: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Events of every ``.spev`` in ``src_dir`` (at ``rate``), tiled end to end up to ``seconds`` and
    resampled to ``eps`` events/s (random duplicates at a jittered time, or random thinning).  Returns
    ``(vectors, times in samples, channels)``."""
    vec_parts: list[np.ndarray] = []
    time_parts: list[np.ndarray] = []
    channels, offset = 1, 0
    files = sorted(src_dir.glob("*.spev"))
    if not files:
        raise SystemExit(f"no .spev files in {src_dir}")
    clips = []
    for path in files:
        with open(path, "rb") as f:
            reader = container.Reader(f)
            h = reader.header
            if h.time_rate != rate:
                raise SystemExit(f"{path}: time rate {h.time_rate}, expected {rate}")
            channels = max(channels, h.channels)
            cs = list(reader)
            v = np.concatenate([quantize.dequantize(c.codes, h.table) for c in cs])
            t = np.concatenate([c.times for c in cs])
            clips.append((v, t, h.n_samples))
    n_total = int(seconds * rate)
    i = 0
    while offset < n_total:
        v, t, n = clips[i % len(clips)]
        vec_parts.append(v)
        time_parts.append(t + offset)
        offset += n
        i += 1
    v_all, t_all = np.concatenate(vec_parts), np.concatenate(time_parts)
    keep = t_all < n_total
    v_all, t_all = v_all[keep], t_all[keep]
    rng = np.random.default_rng(seed)
    want = int(seconds * eps)
    if len(t_all) >= want:
        pick = np.sort(rng.choice(len(t_all), want, replace=False))
        v_all, t_all = v_all[pick], t_all[pick]
    else:
        extra = rng.integers(0, len(t_all), want - len(t_all))
        jitter = rng.integers(-rate // 20, rate // 20, len(extra))
        v_all = np.concatenate([v_all, v_all[extra]])
        t_all = np.concatenate([t_all, np.clip(t_all[extra] + jitter, 0, n_total - 1)])
    order = np.argsort(t_all, kind="stable")
    return v_all[order], t_all[order], channels


def write_spev(
    path: Path, vectors: np.ndarray, times: np.ndarray, n_total: int, rate: int, channels: int, room: bool
) -> None:
    """Write events as a ``.spev`` (default table, one chunk per :data:`HOP` samples)."""
    header = container.Header(
        layout_version=1,
        encoder_id="bench-decode-speed",
        weights_hash="",
        sample_rate=rate,
        channels=channels,
        n_samples=n_total,
        time_rate=rate,
        hop_samples=HOP,
    )
    codes = quantize.quantize(vectors)
    side = {"room": [1.2, 0.5]} if room else {}
    with open(path, "wb") as f, container.Writer(f, header) as w:
        for i, start in enumerate(range(0, n_total, HOP)):
            sel = (times >= start) & (times < start + HOP)
            chunk = container.Chunk(i, start, min(HOP, n_total - start), times[sel], codes[sel], dict(side))
            w.write_chunk(chunk)


def run_stream(
    vectors: np.ndarray, times: np.ndarray, n_total: int, rate: int, channels: int, room: bool, threads: int
) -> float:
    """Push the events through a StreamRenderer chunk by chunk; returns the output's peak."""
    side = {"room": [1.2, 0.5]} if room else None
    stream = render_np.StreamRenderer(rate, channels, n_total, threads=threads)
    got = 0
    peak = 0.0
    for start in range(0, n_total, HOP):
        end = min(start + HOP, n_total)
        sel = (times >= start) & (times < end)
        block = stream.push(vectors[sel], times[sel] / rate, side, safe_until_s=end / rate)
        got += block.shape[1]
        peak = max(peak, float(np.abs(block).max(initial=0.0)))
    block = stream.finish()
    got += block.shape[1]
    assert got == n_total, (got, n_total)
    return peak


def main() -> None:
    """Run the benchmark and print one summary line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--rate", type=int, default=44100)
    ap.add_argument("--eps", type=float, default=20.0, help="events per second")
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--room", action="store_true", help="add side data room [1.2 s, 0.5]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="decoder threads (the target is 2 cores)")
    ap.add_argument("--real", type=Path, help="directory of .spev files whose events are tiled (see above)")
    ap.add_argument("--cli", action="store_true", help="time a `spev decode` subprocess end to end")
    ap.add_argument("--write-spev", type=Path, help="only write the synthetic .spev file here")
    args = ap.parse_args()

    sr = args.rate
    n_total = int(args.seconds * sr)
    channels = args.channels
    if args.real:
        vectors, times, channels = real_events(args.real, args.seconds, sr, args.eps, args.seed)
        label = f"real ({args.real.name})"
    else:
        vectors, times = synthetic_events(args.seconds, sr, args.eps, args.seed)
        label = "synthetic"
    if args.write_spev:
        write_spev(args.write_spev, vectors, times, n_total, sr, channels, args.room)
        print(f"wrote {args.write_spev}: {len(times)} events, {args.seconds:.0f} s, {channels} ch @ {sr} Hz")
        return

    tmp = Path(tempfile.mkdtemp(prefix="spev-bench-"))
    try:
        if args.cli or args.real:
            src, dst = tmp / "in.spev", tmp / "out.wav"
            write_spev(src, vectors, times, n_total, sr, channels, args.room)
        t0 = time.perf_counter()
        if args.cli:
            spev = shutil.which("spev")
            cmd = [spev] if spev else [sys.executable, "-m", "sparsecodec.cli"]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            c0 = _cpu(resource.RUSAGE_CHILDREN)
            subprocess.run([*cmd, "decode", str(src), str(dst)], check=True, env=env)
            cpu = _cpu(resource.RUSAGE_CHILDREN) - c0
            rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
            how, peak = "spev decode (CLI, start-up included)", float("nan")
        elif args.real:
            from sparsecodec import api as codec

            os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by codec.decode_file
            c0 = _cpu()
            codec.decode_file(src, dst)
            cpu = _cpu() - c0
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
            how, peak = "codec.decode_file to WAV", float("nan")
        else:
            c0 = _cpu()
            peak = run_stream(vectors, times, n_total, sr, channels, args.room, args.threads)
            cpu = _cpu() - c0
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
            how = "StreamRenderer"
        elapsed = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"{label}, {how}, {args.threads} thread(s): {args.seconds:.0f} s, {len(times)} events, {channels} ch "
        f"@ {sr} Hz{' + room' if args.room else ''} in {elapsed:.2f} s wall = {args.seconds / elapsed:.1f}x "
        f"real time; {cpu:.2f} CPU-s = {args.seconds / cpu:.1f}x real time per CPU-second; "
        f"peak RSS {rss_mb:.0f} MB" + ("" if np.isnan(peak) else f"; output peak {peak:.2f}")
    )


if __name__ == "__main__":
    main()
