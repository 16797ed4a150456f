"""Decode-speed benchmark: 3 minutes of 20 events/s stereo 44.1 kHz through ``render_np.StreamRenderer``.

Events come from ``events.sample_prior``; the stream is pushed in chunks of 2**17 samples (≈2.97 s), as the
codec does.  Prints × real time and peak RSS.  Threads pinned to 2.

    python bench/decode_speed.py [--seconds 180] [--rate 44100] [--eps 20] [--channels 2] [--room]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from sparsecodec import events, render_np  # noqa: E402


def main() -> None:
    """Run the benchmark and print one summary line."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--rate", type=int, default=44100)
    ap.add_argument("--eps", type=float, default=20.0, help="events per second")
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=1 << 17, help="samples per pushed chunk")
    ap.add_argument("--room", action="store_true", help="add side data room [1.2 s, 0.5]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="StreamRenderer threads (the target is 2 cores)")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    sr = args.rate
    n_total = int(args.seconds * sr)
    n_events = int(args.seconds * args.eps)
    vectors = events.sample_prior(rng, n_events)
    times = np.sort(rng.integers(0, n_total, n_events))
    side = {"room": [1.2, 0.5]} if args.room else None

    t0 = time.perf_counter()
    c0 = time.process_time()
    stream = render_np.StreamRenderer(sr, args.channels, n_total, threads=args.threads)
    got = 0
    peak = 0.0
    for start in range(0, n_total, args.chunk):
        end = min(start + args.chunk, n_total)
        sel = (times >= start) & (times < end)
        block = stream.push(vectors[sel], times[sel] / sr, side, safe_until_s=end / sr)
        got += block.shape[1]
        peak = max(peak, float(np.abs(block).max(initial=0.0)))
    block = stream.finish()
    got += block.shape[1]
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    assert got == n_total, (got, n_total)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        f"decoded {args.seconds:.0f} s, {n_events} events, {args.channels} ch @ {sr} Hz in {elapsed:.2f} s: "
        f"{args.seconds / elapsed:.1f}x real time (wall); {cpu:.2f} CPU-s = {args.seconds / cpu:.1f}x "
        f"real time per CPU-second (robust on a shared machine); peak RSS {rss_mb:.0f} MB; "
        f"output peak {peak:.2f}"
    )


if __name__ == "__main__":
    main()
