"""Rendering a ``.spev`` file's events to audio: in this process, chunk by chunk (:func:`decode_serial`), or
in time segments across forked worker processes (:func:`decode_parallel`), each pre-rolled like a seek so
the samples are those of one process (to float32 rounding).  :func:`sparsecodec.api.decode_file` chooses.

Memory stays O(chunk) whatever the declared length: the renderer is never asked for more than
:data:`RENDER_STEP_S` of new output at once, and at most ``workers + 1`` segments are in flight.
"""

from __future__ import annotations

import collections
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from sparsecodec.audio import io as audio_io
from sparsecodec.format import events, quantize
from sparsecodec.jobs import procs
from sparsecodec.synth import voice

Source = str | Path | BinaryIO
Progress = Callable[[float], None]


RENDER_STEP_S = 8.0
"""Longest stretch (s) of output asked of the renderer at once: a gap between chunks, a long chunk or the
silence after the last one is rendered in steps of this size, so memory is O(step) whatever the length."""


def decode_serial(
    reader: Any,
    renderer: Any,
    first: int,
    last: int,
    out_rate: int,
    ignore_errors: bool,
    sink: Callable[[np.ndarray], None],
    progress: Progress | None = None,
    count_preroll: bool = True,
) -> tuple[int, int]:
    """Render output samples ``[first, last)`` (at ``out_rate``) of ``reader``'s file chunk by chunk into
    ``sink`` (``float32[C, k]`` blocks, in order); returns ``(events, chunks)`` read (the events of the
    pre-roll counted only if ``count_preroll``).

    Strict (not ``ignore_errors``): a whole-file decode reads the stream to its end and checks it as
    ``Reader.verify`` does; a ranged decode of a seekable file needs its index.  The renderer is never asked
    for more than :data:`RENDER_STEP_S` of new output at once."""
    from sparsecodec.errors import FormatError
    from sparsecodec.synth.render_np import ROOM_TAIL_S

    tr = reader.header.time_rate
    t0, t1 = first / out_rate, last / out_rate
    preroll = math.ceil((events.MAX_SUPPORT_S + ROOM_TAIL_S) * tr) if first > 0 else 0
    lo_tick = math.floor(t0 * tr)
    # a voice knot up to a gap after the end still shapes the glide into it (synth.voice.MAX_GAP_S)
    end_tick = math.ceil(t1 * tr)
    hi_tick = end_tick + (math.ceil(voice.MAX_GAP_S * tr) if last < _whole(reader, out_rate) else 0)
    whole = False
    if ignore_errors:
        chunks: Iterator[Any] = (
            c for c in reader.iter_tolerant() if c.start + c.length > lo_tick - preroll and c.start < hi_tick
        )
    elif first > 0 or last < _whole(reader, out_rate):
        if reader.seekable and reader.index() is None:
            raise FormatError(f"index unusable: {reader.index_error}")
        chunks = reader.chunks_for(lo_tick, hi_tick, preroll=preroll)
    else:
        chunks, whole = iter(reader), True
    no_v, no_t = np.zeros((0, events.N_DIMS)), np.zeros(0)
    done_s = 0.0  # output is final up to here (s); no event pushed later starts before it

    def advance(to_s: float) -> None:
        """Finalise silence in steps while ``to_s`` is more than one step ahead."""
        nonlocal done_s
        to_s = min(to_s, t1)
        while to_s - done_s > RENDER_STEP_S:
            done_s += RENDER_STEP_S
            sink(renderer.push(no_v, no_t, None, done_s))

    n_events = n_chunks = 0
    for chunk in chunks:
        advance(chunk.start / tr)
        safe_until = (chunk.start + chunk.length) / tr
        kind = chunk.codes[:, events.KIND_DIM] if reader.header.layout_version >= 2 else 0
        keep = (chunk.times < end_tick) | ((kind == events.KIND_VOICE) & (chunk.times < hi_tick))
        vectors = quantize.dequantize(chunk.codes[keep], reader.header.table)
        times_s = chunk.times[keep].astype(np.float64) / tr
        counted = chunk.times < end_tick
        n_events += int(counted.sum()) if count_preroll else int((counted & (chunk.times >= lo_tick)).sum())
        n_chunks += 1
        if safe_until - done_s <= RENDER_STEP_S:  # the usual case: one push per chunk, as ever
            sink(renderer.push(vectors, times_s, chunk.side or None, safe_until))
            done_s = max(done_s, safe_until)
        else:  # a long chunk: its events first, then its silence in steps
            step_to = max(done_s, chunk.start / tr)
            sink(renderer.push(vectors, times_s, chunk.side or None, step_to))
            done_s = step_to
            advance(safe_until)
            if done_s < min(safe_until, t1):
                sink(renderer.push(no_v, no_t, None, safe_until))
                done_s = min(safe_until, t1)
        if progress is not None and t1 > t0:
            progress(min(max((safe_until - t0) / (t1 - t0), 0.0), 1.0))
    advance(t1)
    sink(renderer.finish())
    if whole:
        reader.check_end()
    return n_events, n_chunks


def _whole(reader: Any, out_rate: int) -> int:
    """The file's length in output samples."""
    return round(reader.header.n_samples * out_rate / reader.header.sample_rate)


PARALLEL_MIN_SEGMENT_S = 20.0
"""A decode is split over processes only when each process gets at least this much audio (s)."""
PARALLEL_MAX_SEGMENT_S = 90.0
"""Longest segment (s) one process renders at a time: bounds the memory of segments in flight."""


def decode_workers(src: Source, device: str, ignore_errors: bool, seconds: float) -> int:
    """Processes for :func:`decode_parallel` (1: decode in this process).

    More than one only for a CPU decode of a named file (the workers reopen it) with at least
    :data:`PARALLEL_MIN_SEGMENT_S` per process, on a platform that can fork, from a process with no other
    threads (forking a threaded process, a Ray worker say, can deadlock the child)."""
    if device != "cpu" or ignore_errors or not isinstance(src, (str, Path)):
        return 1
    if not procs.can_fork_workers():
        return 1
    return max(1, min(decode_threads(), int(seconds // PARALLEL_MIN_SEGMENT_S)))


def _segment_count(first: int, last: int, rate: int, workers: int) -> int:
    """Segments over ``[first, last)``: a multiple of ``workers`` segments of equal length, each at most
    :data:`PARALLEL_MAX_SEGMENT_S`, so every process gets the same share (see :func:`_segment_bounds`)."""
    return workers * max(1, math.ceil((last - first) / (workers * PARALLEL_MAX_SEGMENT_S * rate)))


def _segment_bounds(first: int, last: int, per: int, i: int) -> tuple[int, int]:
    """Edges (samples) of segment ``i`` of ``per`` equal segments over ``[first, last)``: computed one at a
    time, so a long decode never lists them all."""
    return first + (last - first) * i // per, first + (last - first) * (i + 1) // per


def _render_segment(
    path: Path,
    out_rate: int,
    channels: int,
    first: int,
    last: int,
    bits: str | None,
    count_preroll: bool,
    max_duration_s: float | None = None,
) -> tuple[np.ndarray | bytes, int, int]:
    """Worker: output samples ``[first, last)`` of ``path`` (one thread), as ``float32[C, last - first]``
    or, given ``bits``, limited and packed PCM bytes; with the events (see :func:`decode_serial`) and
    chunks read.  The seek pre-roll makes the audio equal to a one-process decode."""
    from sparsecodec.format import container
    from sparsecodec.synth import render_np

    blocks: list[np.ndarray] = []
    packed: list[bytes] = []

    def sink(block: np.ndarray) -> None:  # pack as we go: the float samples never pile up
        if bits is None:
            blocks.append(block)
        elif block.shape[1]:
            packed.append(audio_io.pcm_bytes(audio_io.soft_limit(block), bits))

    with open(path, "rb") as f:
        limit = container.MAX_DURATION_S if max_duration_s is None else max_duration_s
        reader = container.Reader(f, max_duration_s=limit)
        renderer = render_np.StreamRenderer(out_rate, channels, last, start_sample=first, threads=1)
        n_events, n_chunks = decode_serial(
            reader, renderer, first, last, out_rate, False, sink, count_preroll=count_preroll
        )
    if bits is not None:
        return b"".join(packed), n_events, n_chunks
    audio = np.concatenate([b for b in blocks if b.shape[1]] or [np.zeros((channels, 0), np.float32)], 1)
    return audio, n_events, n_chunks


def _worker_init() -> None:
    """The parent handles Ctrl-C and terminates the pool; a worker exits on SIGTERM and dies with its parent
    (:func:`procs.worker_init`), so none keeps rendering after a killed ``spev decode``."""
    procs.worker_init()


def decode_parallel(
    path: Path,
    workers: int,
    out_rate: int,
    channels: int,
    first: int,
    last: int,
    writer: audio_io.AudioWriter,
    progress: Progress | None = None,
    max_duration_s: float | None = None,
) -> tuple[int, int]:
    """Render ``[first, last)`` as equal time segments in ``workers`` forked processes (each pre-rolls like a
    seek, so the audio equals a one-process decode to float32 rounding) and write them in order.

    For WAV the workers also limit and pack the samples.  At most ``workers + 1`` segments are in flight,
    so memory stays bounded whatever the file's length.  Returns ``(events, chunks)`` read, pre-roll
    included."""
    from sparsecodec.synth import render_np

    per = _segment_count(first, last, out_rate, workers)
    wav = writer if isinstance(writer, audio_io.WavWriter) else None
    bits = wav.bits if wav is not None else None
    n_events = n_chunks = 0
    render_np.warm_tables(out_rate)  # built once here, shared copy-on-write by the forked workers
    with procs.fork_pool(workers, _worker_init) as pool:

        def submit(i: int) -> Any:
            a, b = _segment_bounds(first, last, per, i)
            # later segments' pre-rolls re-read events an earlier segment counted
            args = (path, out_rate, channels, a, b, bits, a == first, max_duration_s)
            return pool.apply_async(_render_segment, args)

        pending = collections.deque(submit(i) for i in range(min(per, workers + 1)))
        for i in range(per):
            a, b = _segment_bounds(first, last, per, i)
            audio, ev, ch = pending.popleft().get()
            if i + workers + 1 < per:
                pending.append(submit(i + workers + 1))
            if isinstance(audio, bytes):
                assert wav is not None
                wav.write_pcm(audio, b - a)
            else:
                writer.write(audio)
            n_events, n_chunks = n_events + ev, n_chunks + ch
            if progress is not None:
                progress((i + 1) / per)
    return n_events, n_chunks


def make_renderer(device: str, rate: int, channels: int, n_total: int, start_sample: int) -> Any:
    """A StreamRenderer: numpy on CPU; the torch generator's on CUDA when it offers one."""
    if device == "cuda":
        from sparsecodec.synth import render_torch as generator

        return generator.StreamRenderer(rate, channels, n_total, start_sample=start_sample, device="cuda")
    from sparsecodec.synth import render_np

    threads = decode_threads()
    return render_np.StreamRenderer(rate, channels, n_total, start_sample=start_sample, threads=threads)


def decode_threads() -> int:
    """Threads for the numpy decoder: ``OMP_NUM_THREADS`` when set (``spev batch`` sets it per worker), else
    the idle CPUs this process may use (usable CPUs minus the 1-minute load average, rounded), 1 to 4.

    On a busy machine a second thread only adds contention (measured: slower on the wall clock), so the
    count follows the load; the audio is the same for any count (up to float32 rounding)."""
    env = procs.env_threads()
    if env is not None:
        return max(1, min(env, 4))
    cpus = procs.usable_cpus()
    try:
        idle = round(cpus - os.getloadavg()[0])
    except (AttributeError, OSError):  # no load average on this platform
        idle = cpus
    return max(1, min(cpus, idle, 4))
