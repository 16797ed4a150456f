"""Segmented encoding (sparsecodec/jobs/encode.py): fixed cuts, the same chunks for any worker count and block
size, and every hop of the stream in exactly one chunk."""

from __future__ import annotations

import numpy as np
import pytest

from sparsecodec.encoder import stream
from sparsecodec.jobs import encode as jobs_encode

SR = 8000
HOP = stream.hop_samples(SR)


def _blocks(x: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    out, i, k = [], 0, 0
    while i < x.shape[1]:
        n = sizes[k % len(sizes)]
        out.append(x[:, i : i + n])
        i, k = i + n, k + 1
    return out


@pytest.mark.parametrize("n_hops", [0.5, 3.0, 5.0, 5.5, 7.2, 11.0])
@pytest.mark.parametrize("sizes", [[10**9], [777], [HOP, 13, 5000]])
def test_cuts_depend_on_the_stream_alone(n_hops: float, sizes: list[int]) -> None:
    """Segments of 2 hops with 1 hop of pre-roll: the cuts, pre-rolls and look-aheads are slices of the
    stream, whatever the blocks."""
    n = int(n_hops * HOP)
    x = np.arange(2 * n, dtype=np.float32).reshape(2, n)
    segs = list(jobs_encode.segments(_blocks(x, sizes), 2, HOP, segment_hops=2, preroll_hops=1))
    length = 2 * HOP
    assert [s.keep_from for s in segs] == [i * length for i in range(len(segs))]
    for i, s in enumerate(segs):
        assert s.offset == max(0, i * length - HOP)
        np.testing.assert_array_equal(s.audio, x[:, s.offset : s.offset + s.audio.shape[1]])
        if s.keep_to is None:
            assert i == len(segs) - 1 and s.offset + s.audio.shape[1] == n
        else:
            assert s.keep_to == (i + 1) * length and s.offset + s.audio.shape[1] == s.keep_to + HOP
    assert len(segs) == jobs_encode.segment_count(n, HOP, 2)
    # the last segment starts before the end and holds less than a segment and a hop past its start
    assert segs[-1].keep_from < max(n, 1) and n - segs[-1].keep_from < length + HOP


def test_one_segment_when_off() -> None:
    x = np.ones((1, 5 * HOP), np.float32)
    segs = list(jobs_encode.segments([x], 1, HOP, segment_hops=0, preroll_hops=1))
    assert (
        len(segs) == 1
        and segs[0].offset == 0
        and segs[0].keep_to is None
        and segs[0].audio.shape[1] == x.shape[1]
    )


def _tones(seconds: float) -> np.ndarray:
    """Stereo plucked tones every 0.7 s with a noise floor: events in every segment and across the cuts."""
    rng = np.random.default_rng(3)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = 0.002 * rng.standard_normal((2, n))
    for k, t0 in enumerate(np.arange(0.1, seconds - 0.2, 0.7)):
        f = 220.0 * 2 ** ((k * 5 % 12) / 12)
        env = np.where(t >= t0, np.exp(-(t - t0) * 3.0), 0.0)
        x += 0.2 * env * np.sin(2 * np.pi * f * (t - t0)) * np.array([[1.0], [0.6]])
    return x.astype(np.float32)


def _encode(
    x: np.ndarray, workers: int, sizes: list[int], segment_hops: int = 2
) -> list[stream.EncodedChunk]:
    settings = stream.EncoderSettings(init="analysis", segment_hops=segment_hops)
    return list(jobs_encode.encode_segmented(_blocks(x, sizes), SR, 2, settings, workers=workers))


def test_same_chunks_for_any_worker_count_and_block_size() -> None:
    x = _tones(6.3 * HOP / SR)  # 6.3 hops: segments [0, 2), [2, 4) and [4, 6.3) hops, pre-rolls of a hop
    assert len(list(jobs_encode.segments([x], 2, HOP, 2, 1))) == 3
    ref = _encode(x, 1, [10**9])
    assert [c.start for c in ref] == [i * HOP for i in range(7)]
    assert sum(c.length for c in ref) == x.shape[1]
    assert all(len(c.times) for c in ref[:6])
    for workers, sizes in ((2, [10**9]), (3, [4001, 999]), (1, [HOP // 3])):
        got = _encode(x, workers, sizes)
        assert len(got) == len(ref)
        for a, b in zip(ref, got, strict=True):
            assert (a.start, a.length) == (b.start, b.length)
            np.testing.assert_array_equal(a.times, b.times)
            np.testing.assert_allclose(a.vectors, b.vectors, rtol=0, atol=1e-9)


def test_a_short_input_is_one_unsegmented_stream() -> None:
    """Up to a segment and a hop, segmenting changes nothing: the chunks are ``encode_stream``'s."""
    x = _tones(2.5 * HOP / SR)
    seg = _encode(x, 1, [10**9])
    plain = list(stream.encode_stream([x], SR, 2, stream.EncoderSettings(init="analysis", segment_hops=2)))
    assert len(seg) == len(plain) == 3
    for a, b in zip(seg, plain, strict=True):
        np.testing.assert_array_equal(a.times, b.times)
        np.testing.assert_array_equal(a.vectors, b.vectors)


def test_workers_follow_the_input_and_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    s = stream.EncoderSettings()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(jobs_encode.procs, "usable_cpus", lambda: 8)
    seg = s.segment_hops * HOP
    assert jobs_encode.encode_workers(seg + HOP - 1, SR, s) == 1  # one segment
    assert jobs_encode.encode_workers(seg + HOP, SR, s) == 2
    assert jobs_encode.encode_workers(3 * seg + HOP, SR, s) == 4
    assert jobs_encode.encode_workers(40 * seg, SR, s) == jobs_encode.MAX_WORKERS
    assert jobs_encode.encode_workers(None, SR, s) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert jobs_encode.encode_workers(40 * seg, SR, s) == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    s.device = "cuda"
    assert jobs_encode.encode_workers(40 * seg, SR, s) == 1


def test_progress_in_one_process_moves_forward_hop_by_hop() -> None:
    x = _tones(4.3 * HOP / SR)  # two segments: the second's pre-roll must not move the bar back
    seen: list[float] = []
    settings = stream.EncoderSettings(init="analysis", segment_hops=2)
    chunks = jobs_encode.encode_segmented(
        [x], SR, 2, settings, workers=1, total_samples=x.shape[1], progress=seen.append
    )
    assert len(list(chunks)) == 5
    assert len(seen) >= 5 and seen == sorted(seen) and seen[-1] == 1.0
