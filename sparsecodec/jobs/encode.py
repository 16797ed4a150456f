"""Encode in fixed segments, on several cores: the input cut every ``segment_hops`` hops, each segment
encoded on its own after a pre-roll (:class:`~sparsecodec.encoder.stream.EncoderSettings`).

The cuts fall at multiples of ``segment_hops × hop`` samples of the stream, so they depend on the input
alone: one process or four, any block size, the same chunks.  Segment ``s`` covers
``[s·L, (s+1)·L)`` (``L = segment_hops × hop``); its encoder starts ``preroll_hops`` earlier (those chunks
are dropped; their events' tails and the transcriber's held notes carry into the segment) and reads one hop
past the end (the last window's look-ahead).  The last segment runs to the end of the stream, so it can be
up to ``L + hop`` long.

The driver reads and resamples the stream in order and hands each segment's samples to a forked worker
(:func:`encode_workers`), at most ``workers + 1`` segments in flight, so memory stays bounded whatever the
input's length; chunks are yielded in order.  No torch import here.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sparsecodec.jobs import procs

if TYPE_CHECKING:
    from sparsecodec.encoder.stream import EncodedChunk, EncoderSettings

MAX_WORKERS = 4
"""Most encode processes by default (each holds the encoder's networks and one segment)."""


@dataclass(frozen=True)
class Segment:
    """One segment's job: ``audio`` (``float32[C, n]``) starts at absolute sample ``offset``; chunks starting
    in ``[keep_from, keep_to)`` are kept (``keep_to`` None: to the end of the stream)."""

    audio: np.ndarray
    offset: int
    keep_from: int
    keep_to: int | None


def encode_segment(
    seg: Segment,
    sample_rate: int,
    channels: int,
    settings: EncoderSettings,
    progress: Callable[[float], None] | None = None,
    total_samples: int | None = None,
) -> list[EncodedChunk]:
    """The kept chunks of one segment (runs in a worker or in this process; same result).  ``progress``
    and ``total_samples`` as for :func:`stream.encode_stream` (absolute positions)."""
    from sparsecodec.encoder import stream

    hop = stream.hop_samples(sample_rate)
    out = []
    chunks = stream.encode_stream(
        [seg.audio], sample_rate, channels, settings, progress, total_samples, offset=seg.offset
    )
    for ch in chunks:
        if ch.start >= seg.keep_from and (seg.keep_to is None or ch.start < seg.keep_to):
            out.append(ch)
        if seg.keep_to is not None and ch.start + hop >= seg.keep_to:
            break  # the segment's last chunk: the windows after it belong to the next segment
    return out


def segments(
    blocks: Iterable[np.ndarray], channels: int, hop: int, segment_hops: int, preroll_hops: int
) -> Iterator[Segment]:
    """Cut a stream of ``float32[C, k]`` blocks into :class:`Segment` jobs (see the module's docstring).

    Holds one segment with its pre-roll and look-ahead at a time.  ``segment_hops`` 0: one segment."""
    length = segment_hops * hop if segment_hops > 0 else None
    pre = preroll_hops * hop
    parts: list[np.ndarray] = []
    have = 0  # samples in parts
    base = 0  # absolute sample of the first sample held
    s = 0  # the next segment
    for block in blocks:
        b = np.asarray(block, np.float32)
        if b.shape[1] == 0:
            continue
        parts.append(b)
        have += b.shape[1]
        while length is not None and base + have >= (s + 1) * length + hop:
            held = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
            first = max(0, s * length - pre)
            stop = (s + 1) * length + hop
            audio = np.ascontiguousarray(held[:, first - base : stop - base])
            yield Segment(audio, first, s * length, (s + 1) * length)
            s += 1
            keep = max(0, s * length - pre) - base  # the next segment's pre-roll onwards
            parts, have, base = [held[:, keep:]], have - keep, base + keep
    # the last segment runs to the end (the loop above left at least a hop past its start, or it is the first)
    keep_from = s * length if length is not None else 0
    first = max(0, keep_from - pre)
    held = np.concatenate(parts, axis=1) if parts else np.zeros((channels, 0), np.float32)
    yield Segment(np.ascontiguousarray(held[:, first - base :]), first, keep_from, None)


def segment_count(total_samples: int, hop: int, segment_hops: int) -> int:
    """How many segments :func:`segments` cuts a stream of ``total_samples`` into: segment ``s > 0`` exists
    when the stream reaches a hop past its start."""
    if segment_hops <= 0:
        return 1
    return 1 + max(0, (total_samples - hop) // (segment_hops * hop))


def encode_workers(total_samples: int | None, sample_rate: int, settings: EncoderSettings) -> int:
    """Processes for :func:`encode_segmented` (1: encode in this process).

    More than one only for a CPU encode with more than one segment, on a platform that can fork, from a
    process with no other threads (forking a threaded process, a Ray worker say, can deadlock the child);
    at most ``OMP_NUM_THREADS`` when set (``spev batch`` sets it per worker), else the CPUs this process may
    use (:func:`procs.usable_cpus`), and :data:`MAX_WORKERS`."""
    from sparsecodec.encoder import stream

    if settings.device != "cpu" or settings.segment_hops <= 0 or not total_samples:
        return 1
    if not procs.can_fork_workers():
        return 1
    n_segments = segment_count(total_samples, stream.hop_samples(sample_rate), settings.segment_hops)
    env = procs.env_threads()
    cpus = procs.usable_cpus() if env is None else env
    return max(1, min(cpus, MAX_WORKERS, n_segments))


def _worker_init() -> None:
    """Die with the parent and exit on SIGTERM (:func:`procs.worker_init`); one torch thread (the parent's
    thread pool does not survive the fork, and the workers share the CPUs already)."""
    procs.worker_init()
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def encode_segmented(
    blocks: Iterable[np.ndarray],
    sample_rate: int,
    channels: int,
    settings: EncoderSettings,
    *,
    workers: int = 1,
    total_samples: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> Iterator[EncodedChunk]:
    """Encode a stream of ``float32[C, k]`` blocks segment by segment (see the module's docstring); yields
    the chunks in order.  ``workers`` > 1 encodes segments in that many forked processes; the chunks are
    the same for any ``workers``.  ``progress`` gets the fraction done (``total_samples`` given) or the
    seconds done."""
    from sparsecodec.encoder import stream

    hop = stream.hop_samples(sample_rate)
    jobs = segments(blocks, channels, hop, settings.segment_hops, settings.preroll_hops)
    furthest = 0.0

    def forward(fraction: float) -> None:  # never backwards over a pre-roll
        nonlocal furthest
        furthest = max(furthest, fraction)
        if progress is not None:
            progress(furthest)

    def report(seg: Segment) -> None:  # a segment done: the stream up to its end
        done = seg.offset + seg.audio.shape[1] if seg.keep_to is None else seg.keep_to
        forward(min(1.0, done / total_samples) if total_samples else done / sample_rate)

    if workers <= 1:  # hop by hop, as encode_stream reports
        for seg in jobs:
            yield from encode_segment(seg, sample_rate, channels, settings, forward, total_samples)
            report(seg)
        return
    pending: collections.deque[tuple[Segment, Any]] = collections.deque()

    def oldest() -> Iterator[EncodedChunk]:  # the oldest segment's chunks, waited for
        done, result = pending.popleft()
        yield from result.get()
        report(done)

    with procs.fork_pool(workers, _worker_init) as pool:
        for seg in jobs:
            pending.append((seg, pool.apply_async(encode_segment, (seg, sample_rate, channels, settings))))
            if len(pending) > workers:
                yield from oldest()
        while pending:
            yield from oldest()
