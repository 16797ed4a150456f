"""Measure proposal accuracy on fresh synthetic mixtures (the test's setting, more seeds).

``python runs/eval_proposals.py [N_SEEDS] [N_EVENTS]``: pitched prior events at -20..-8 dBFS in the first half
of a 2**18-sample window at 44.1 kHz; a hit is a proposal within 20 ms and 1 semitone.  Compares the
shipped network with the analysis initialiser (``analysis.Analyzer``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sparsecodec.encoder import proposal
from sparsecodec.encoder.analysis import Analyzer
from sparsecodec.format import events
from sparsecodec.synth.render_np import render


def mixture(seed: int, n_events: int, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mono audio ``float32[2**18]`` and its events' (times, vectors)."""
    rng = np.random.default_rng(seed)
    v = events.sample_prior(rng, n_events)
    v[:, events.INDEX["noise_mix"]] = rng.uniform(0.0, 0.2, n_events)
    v[:, events.INDEX["level"]] = rng.uniform(-20.0, -8.0, n_events)
    v[:, events.INDEX["wet"]] = 0.0
    n = 1 << 18
    times = np.sort(rng.uniform(0.1, n / sr / 2 - 0.1, n_events))
    return render(v, times, n, sr)[0], times, v


def score(propose: Callable[..., Any], seeds: int, n_events: int, sr: int = 44100) -> tuple[float, ...]:
    """(hit rate, onset-only rate, seconds per call) over ``seeds`` mixtures."""
    hits = onsets = total = 0
    spent = 0.0
    pi = events.INDEX["pitch"]
    for seed in range(seeds):
        audio, times, v = mixture(1000 + seed, n_events, sr)
        t0 = time.perf_counter()
        pv, pt, _ = propose(audio, sr, 4 * n_events)
        spent += time.perf_counter() - t0
        for t, p in zip(times, v[:, pi], strict=True):
            total += 1
            near = np.abs(pt - t) <= 0.020
            onsets += bool(near.any())
            hits += bool((near & (np.abs(pv[:, pi] - p) <= 1.0)).any())
    return hits / total, onsets / total, spent / seeds


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    n_ev = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    net = proposal.load_default()
    assert net is not None
    print("network ", score(net.propose, seeds, n_ev))
    print("analysis", score(Analyzer(44100).propose, seeds, n_ev))


if __name__ == "__main__":
    main()
