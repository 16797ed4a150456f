"""The public codec API: :func:`encode_file` and :func:`decode_file` on paths or binary file objects.

The command line, the benchmark and batch jobs all call these.  Both stream: audio is read, analysed, rendered
and written block by block, so memory stays flat whatever the length.

>>> from sparsecodec.api import encode_file, decode_file
>>> r = encode_file("song.wav", "song.spev", kbps=4)          # doctest: +SKIP
>>> r.events, round(r.kbps, 2)                                 # doctest: +SKIP
>>> decode_file("song.spev", "out.flac", start=10.0, end=20.0)  # doctest: +SKIP

Outputs given as paths are written through a temporary file in the same folder and renamed into place only
when complete; an existing file is replaced (the CLI refuses unless ``--force``).  Outputs given as file
objects are written in order, without seeking, so pipes work.  No torch import here: the encoder (and, for
``device="cuda"``, the torch renderer) is imported inside the call that needs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from sparsecodec import __version__
from sparsecodec.audio import io as audio_io
from sparsecodec.errors import UnsupportedStreamError, UsageError
from sparsecodec.format import events, quantize
from sparsecodec.jobs import render

Source = str | Path | BinaryIO
Progress = Callable[[float], None]


@dataclass(frozen=True)
class EncodeResult:
    """What :func:`encode_file` produced."""

    duration_s: float
    """Length of the input in seconds."""
    sample_rate: int
    """Input (and default output) rate, Hz."""
    channels: int
    events: int
    """Number of events written."""
    chunks: int
    bytes: int
    """Size of the ``.spev`` output in bytes."""
    kbps: float
    """Whole-file bit rate: ``bytes * 8 / duration_s / 1000``."""
    tags: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    """Damage in the input that ``ignore_errors`` let through (truncation, NaN/Inf, clipping), a line each."""


@dataclass(frozen=True)
class DecodeResult:
    """What :func:`decode_file` produced."""

    duration_s: float
    """Length of the output in seconds."""
    sample_rate: int
    """Output rate, Hz."""
    channels: int
    frames: int
    """Frames written."""
    events: int
    """Events rendered (pre-roll included)."""
    chunks: int
    """Chunks read and rendered."""
    lost_chunks: list[int] = field(default_factory=list)
    """Indices of damaged chunks replaced by silence (``ignore_errors=True`` only)."""
    format: str = "wav"
    bits: str = "16"
    warnings: list[str] = field(default_factory=list)
    """Damage that ``ignore_errors`` let through (lost sync, bad chunks, trailing bytes), a line each."""


# ------------------------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _output(dst: Source, overwrite: bool = True) -> Iterator[BinaryIO]:
    """A binary file object for ``dst``: an atomic temporary for paths (see :func:`audio_io.atomic_output`
    for ``overwrite``), ``dst`` itself otherwise."""
    if isinstance(dst, (str, Path)):
        with audio_io.atomic_output(dst, overwrite=overwrite) as f:
            yield f
    else:
        yield dst


@contextlib.contextmanager
def _spev_input(src: Source) -> Iterator[BinaryIO]:
    """Open a ``.spev`` source for reading (paths opened here and closed after)."""
    if isinstance(src, (str, Path)):
        with open(audio_io.check_input_path(src), "rb") as f:
            yield f
    else:
        yield src


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    """Tags to write, within the format's limits (``container.check_tags``), else a :class:`UsageError`."""
    from sparsecodec.errors import FormatError
    from sparsecodec.format import container

    try:
        return container.check_tags({str(k): str(v) for k, v in tags.items()})
    except FormatError as exc:
        raise UsageError(f"tags: {exc}") from None


def _check_renderable(sample_rate: int, channels: int, rate: int | None) -> None:
    """Raise :class:`UnsupportedStreamError` (exit 4) for a valid header this decoder will not render: more
    than stereo, or (without ``--rate``) a sample rate outside the output range."""
    if not 1 <= channels <= audio_io.MAX_CHANNELS:
        raise UnsupportedStreamError(
            f"unsupported: {channels} channels (this decoder renders mono or stereo)"
        )
    if rate is None and not audio_io.MIN_RATE <= sample_rate <= audio_io.MAX_RATE:
        raise UnsupportedStreamError(
            f"unsupported: the file's sample rate {sample_rate} Hz is outside {audio_io.MIN_RATE}.."
            f"{audio_io.MAX_RATE} Hz (--rate RATE decodes at another rate)"
        )


def _output_range(
    total_s: float, start: float | None, end: float | None, out_rate: int
) -> tuple[int, int, int]:
    """``(out_rate, first, last)``: output samples ``[first, last)`` of a file lasting ``total_s`` for the
    ``start``/``end`` seconds asked (default: all).  Raises :class:`UsageError` for a bad rate or range."""
    if not audio_io.MIN_RATE <= out_rate <= audio_io.MAX_RATE:
        raise UsageError(f"--rate {out_rate}: choose {audio_io.MIN_RATE}..{audio_io.MAX_RATE} Hz")
    t0 = 0.0 if start is None else float(start)
    t1 = total_s if end is None else min(float(end), total_s)
    whole_empty = start is None and end is None and total_s == 0  # an empty file decodes to empty audio
    if not whole_empty and (not (math.isfinite(t0) and math.isfinite(t1)) or t0 < 0 or t0 >= t1):
        raise UsageError(f"empty or invalid time range {t0:g}..{t1:g} s (file lasts {total_s:.3f} s)")
    first = 0 if t0 == 0 else round(t0 * out_rate)
    last = round(total_s * out_rate) if end is None or t1 >= total_s else round(t1 * out_rate)
    return out_rate, first, last


def resolve_device(device: str) -> str:
    """``cpu``, ``cuda`` or ``auto`` → ``cpu``/``cuda``.

    ``auto`` imports torch only when a GPU driver is present.
    """
    if device not in ("cpu", "cuda", "auto"):
        raise UsageError(f"unknown device {device!r} (choose cpu, cuda or auto)")
    if device == "cpu":
        return "cpu"
    if device == "auto" and not (os.path.exists("/proc/driver/nvidia/version") or os.name == "nt"):
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise UsageError("--device cuda: no CUDA device is available")
    return "cpu"


# -------------------------------------------------------------------------------------------- encode


def encode_file(
    src: Source,
    dst: Source,
    *,
    kbps: float | None = None,
    events_per_second: float | None = None,
    refine: int = 0,
    tags: dict[str, str] | None = None,
    device: str = "cpu",
    progress: Progress | None = None,
    init: str | None = None,
    ignore_errors: bool = False,
    overwrite: bool = True,
    format_version: int | None = None,
    workers: int | None = None,
) -> EncodeResult:
    """Encode audio ``src`` to a ``.spev`` at ``dst``.

    ``src``: a path or a binary file object of anything soundfile reads (a non-seekable stream is spooled to
    a temporary file first).  ``dst``: a path (written atomically) or a binary file object (written in order).
    ``kbps`` (default 4) sets the event budget; ``events_per_second`` caps the event rate instead;
    ``refine`` adds that many joint optimisation steps per window; ``init`` picks what proposes events
    (``"analysis"``, ``"hybrid"``, ``"network"``; default: the encoder's); ``tags`` are merged over the input
    file's own metadata (title, artist...).  ``progress`` receives the fraction done in [0, 1].
    Raises :class:`~sparsecodec.errors.InputError` for unreadable audio, and for damaged audio (a WAV/FLAC
    shorter than its header says, a decode error mid-stream, NaN/Inf samples) unless ``ignore_errors``, which
    encodes what is sound and lists the damage in ``EncodeResult.warnings``; ``UsageError`` for bad options.
    Nothing is left at a path ``dst`` when it raises; ``overwrite=False`` refuses (``OutputExistsError``) a
    ``dst`` that exists when the output is complete, without replacing it.  ``format_version`` (default: the
    container's, 2) picks the container format; 1 writes files that format-1 readers can read.  ``workers``:
    processes that encode the input's 30 s segments (default: :func:`jobs.encode.encode_workers`); the file
    is the same for any count.

    (Over 80 lines only for its documented keyword arguments; the work is in :mod:`sparsecodec.encoder`.)
    """
    _check_encode_options(kbps, events_per_second, refine)
    if workers is not None and workers < 1:
        raise UsageError(f"workers must be >= 1, got {workers}")
    if format_version is not None and format_version not in (1, 2):
        raise UsageError(f"format version {format_version}: choose 1 or 2")
    device = resolve_device(device)

    with contextlib.ExitStack() as stack:
        if not isinstance(src, (str, Path)) and not audio_io.is_seekable(src):
            src = stack.enter_context(audio_io.spool(src))
        reader = stack.enter_context(audio_io.AudioReader(src, ignore_errors=ignore_errors))
        info = reader.info
        from sparsecodec.encoder import stream as encoder
        from sparsecodec.format import container  # after the input is known to be good: the encoder is heavy

        rate = audio_io.analysis_rate(info.sample_rate)
        all_tags = _check_tags({**info.tags, **(tags or {})})
        settings = encoder.EncoderSettings(refine_steps=refine, device=device, init=init)
        if kbps is not None:  # else the settings' own default budget
            settings.kbps = kbps
        settings.events_per_second = events_per_second
        table = quantize.TABLES[quantize.LAYOUT_TABLE[events.LAYOUT_VERSION]]
        header = container.Header(
            layout_version=events.LAYOUT_VERSION,
            encoder_id=encoder.encoder_id(settings.init),
            weights_hash=encoder.weights_hash(settings.init),
            sample_rate=info.sample_rate,
            channels=info.channels,
            n_samples=info.frames,
            time_rate=rate,
            hop_samples=int(encoder.hop_samples(rate)),
            table=table,
            settings=_recorded(settings, encoder.EncoderSettings()),
            tags=all_tags,
            software=f"spev {__version__}",
            history=[],
        )
        blocks = audio_io.resample_blocks(reader.blocks(), info.sample_rate, rate, info.channels)
        out = stack.enter_context(_output(dst, overwrite))
        writer = container.Writer(out, header, format_version=format_version or container.FORMAT_VERSION)
        n_analysis = audio_io.resampled_length(info.frames, info.sample_rate, rate)
        from sparsecodec.jobs import encode as jobs_encode

        stream = jobs_encode.encode_segmented(
            blocks,
            rate,
            info.channels,
            settings,
            workers=jobs_encode.encode_workers(n_analysis, rate, settings) if workers is None else workers,
            total_samples=n_analysis,
            progress=progress,
        )
        n_events, n_chunks = _write_chunks(stream, writer, table)
        writer.close()
        n_bytes = writer.bytes_written
    if progress is not None:
        progress(1.0)
    duration = info.frames / info.sample_rate
    return EncodeResult(
        duration_s=duration,
        sample_rate=info.sample_rate,
        channels=info.channels,
        events=n_events,
        chunks=n_chunks,
        bytes=n_bytes,
        kbps=n_bytes * 8.0 / duration / 1000.0,
        tags=all_tags,
        warnings=list(reader.warnings),
    )


def _write_chunks(stream: Iterable[Any], writer: Any, table: quantize.Table) -> tuple[int, int]:
    """Quantise the encoder's ``EncodedChunk``s with ``table`` and write them; ``(events, chunks)``."""
    from sparsecodec.format import container

    n_events = n_chunks = 0
    for ec in stream:
        codes = quantize.quantize(ec.vectors, table)
        chunk = container.Chunk(
            index=n_chunks,
            start=int(ec.start),
            length=int(ec.length),
            times=np.asarray(ec.times, dtype=np.int64),
            codes=codes,
            side=dict(ec.side or {}),
        )
        writer.write_chunk(chunk)
        n_events += len(codes)
        n_chunks += 1
    return n_events, n_chunks


def _check_encode_options(kbps: float | None, events_per_second: float | None, refine: int) -> None:
    """:class:`UsageError` for an encoder option out of its range."""
    if kbps is not None and not (0.05 <= kbps <= 1000.0):
        raise UsageError(f"--kbps {kbps}: choose a value between 0.05 and 1000")
    if events_per_second is not None and not (0.0 < events_per_second <= 2000.0):
        raise UsageError(f"--events-per-second {events_per_second}: choose a value in (0, 2000]")
    if refine < 0:
        raise UsageError("--refine takes a number of steps >= 0")


def _recorded(settings: Any, defaults: Any) -> dict[str, Any]:
    """The settings a header records: ``kbps`` (the target, shown by ``spev inspect``) and those that differ
    from the writing software's defaults (as opusenc records the options it was given): the defaults of a
    version are known from the header's ``software``, and a 10 s clip saves ≈ 150 bytes (0.12 kbps)."""
    given, base = _plain(settings), _plain(defaults)
    return {k: v for k, v in given.items() if k == "kbps" or base.get(k) != v}


def _plain(obj: Any) -> dict[str, Any]:
    """Settings as a plain msgpack-able dict."""
    data = (
        dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) and not isinstance(obj, type) else dict(obj)
    )
    return {str(k): v for k, v in data.items() if isinstance(v, (int, float, str, bool, type(None)))}


# -------------------------------------------------------------------------------------------- decode


def decode_file(
    src: Source,
    dst: Source,
    *,
    start: float | None = None,
    end: float | None = None,
    rate: int | None = None,
    bits: str = "16",
    fmt: str | None = None,
    device: str = "cpu",
    ignore_errors: bool = False,
    progress: Progress | None = None,
    overwrite: bool = True,
    max_duration_s: float | None = None,
) -> DecodeResult:
    """Decode a ``.spev`` ``src`` to WAV or FLAC at ``dst``.

    ``start``/``end`` (seconds) pick a time range, found through the file's index (events that start up to
    ``events.MAX_SUPPORT_S`` plus the room tail before ``start`` are pre-rolled so the range sounds as it does
    in a full decode).  ``rate`` renders at another rate (default: the original); ``bits`` is ``"16"``,
    ``"24"`` or ``"32f"``; ``fmt`` is ``"wav"``/``"flac"`` (default: from ``dst``'s suffix, else WAV).
    ``ignore_errors`` decodes intact chunks and renders silence for damaged ones (listed in
    :attr:`DecodeResult.lost_chunks`, the damage in :attr:`DecodeResult.warnings`).  Output passes the soft
    limiter (:func:`audio_io.soft_limit`).  ``max_duration_s`` raises (or lowers) the bound on the file's
    declared duration (default ``container.MAX_DURATION_S``, 24 h; the CLI's ``--max-duration``).

    Raises :class:`~sparsecodec.errors.FormatError` subclasses for a bad file, and for a file over a
    resource limit (formats/spev.md §7: :class:`~sparsecodec.errors.LimitError`).  Without
    ``ignore_errors`` a whole-file decode fails on any damage ``spev test`` reports (it reads the stream to
    its end: index, trailer, trailing bytes); a ranged decode needs the index intact.  Memory stays
    O(chunk) whatever the declared length: silence is streamed in blocks.

    (Over 80 lines only for its documented keyword arguments; the work is in :mod:`sparsecodec.jobs.render`.)
    """
    from sparsecodec.format import container

    if max_duration_s is None:
        max_duration_s = container.MAX_DURATION_S
    if not max_duration_s > 0:
        raise UsageError(f"--max-duration {max_duration_s}: choose a positive number of seconds")

    fmt = audio_io.format_for(dst if isinstance(dst, (str, Path)) else None, fmt)
    if bits not in audio_io.BITS_CHOICES:
        raise UsageError(f"unknown bit depth {bits!r} (choose 16, 24 or 32f)")
    if fmt == "flac" and bits == "32f":
        raise UsageError("FLAC stores integers: use --bits 16 or 24 (or WAV for 32f)")
    device = resolve_device(device)

    with contextlib.ExitStack() as stack:
        f = stack.enter_context(_spev_input(src))
        reader = container.Reader(f, max_duration_s=max_duration_s)
        h = reader.header  # layout, table and limits already validated by the reader
        if not ignore_errors and reader.seekable:
            reader.index()  # totals over the whole file (LimitError) before rendering; damage as it is read
        _check_renderable(h.sample_rate, h.channels, rate)
        out_rate, first, last = _output_range(
            h.n_samples / h.sample_rate, start, end, int(rate or h.sample_rate)
        )
        n_out = last - first
        channels = int(h.channels)

        out = stack.enter_context(_output(dst, overwrite))
        writer = audio_io.open_writer(out, fmt, out_rate, channels, n_out, bits)
        workers = render.decode_workers(src, device, ignore_errors, n_out / out_rate)
        if workers > 1:
            assert isinstance(src, (str, Path))
            reader.verify()  # as `spev test` does (cheap next to rendering): decode fails where test fails
            n_events, n_chunks = render.decode_parallel(
                Path(src), workers, out_rate, channels, first, last, writer, progress, max_duration_s
            )
        else:
            renderer = render.make_renderer(device, out_rate, channels, last, first)
            n_events, n_chunks = render.decode_serial(
                reader, renderer, first, last, out_rate, ignore_errors, writer.write, progress
            )
        lost = sorted(set(reader.lost)) if ignore_errors else []
        warnings = list(reader.damage) if ignore_errors else []
        writer.close()
    if progress is not None:
        progress(1.0)
    return DecodeResult(
        duration_s=n_out / out_rate,
        sample_rate=out_rate,
        channels=channels,
        frames=n_out,
        events=n_events,
        chunks=n_chunks,
        lost_chunks=lost,
        format=fmt,
        bits=bits,
        warnings=warnings,
    )


# ------------------------------------------------------------------------------------- inspect / test


@dataclass(frozen=True)
class FileInfo:
    """A ``.spev`` file's summary (``spev inspect``)."""

    path: str
    duration_s: float
    sample_rate: int
    channels: int
    events: int
    chunks: int
    events_per_s: float
    bytes: int
    kbps: float
    """The true rate: whole-file bytes × 8 ÷ duration."""
    layout_version: int
    encoder_id: str
    weights_hash: str
    time_rate: int
    hop_samples: int
    software: str
    tags: dict[str, str]
    settings: dict[str, Any]
    format_version: int = 1
    bytes_per_event: float | None = None
    """Whole-file bytes ÷ events (None without events)."""
    chunk_bytes: int | None = None
    """Bytes of the chunk frames: the file without its header, index and trailer (None when not found)."""
    chunk_bytes_per_event: float | None = None
    target_kbps: float | None = None
    """The encoder's bit-rate target from the header's settings (None when not recorded or when an event
    rate was asked for instead)."""


def read_info(
    src: Source, *, name: str | None = None, with_events: bool = False, max_duration_s: float | None = None
) -> tuple[FileInfo, list[Any]]:
    """Read a ``.spev`` file front to back: its :class:`FileInfo` and, with ``with_events``, its events as
    ``(time_s, float64[32] physical vector)`` pairs.  Memory grows with the events only when listing them,
    and listing stops with :class:`~sparsecodec.errors.LimitError` above ``edit.MAX_EVENTS`` events.
    ``max_duration_s``: as for :func:`decode_file`.
    """
    from sparsecodec.errors import LimitError
    from sparsecodec.format import container
    from sparsecodec.tools.edit import MAX_EVENTS, check_event_count

    listed: list[Any] = []
    with _spev_input(src) as f:
        reader = container.Reader(f, max_duration_s=max_duration_s or container.MAX_DURATION_S)
        h = reader.header
        if with_events:
            check_event_count(reader, str(name or src))
            n_events = n_chunks = 0
            for chunk in reader:
                n_chunks += 1  # noqa: SIM113
                n_events += len(chunk.times)
                if n_events > MAX_EVENTS:
                    raise LimitError(f"more than {MAX_EVENTS} events to list (MAX_EVENTS of the event tools)")
                vecs = quantize.dequantize(chunk.codes, h.table)
                listed.extend(zip((chunk.times / h.time_rate).tolist(), vecs, strict=True))
        else:
            summary = container.summary(reader)
            n_events, n_chunks = summary.n_events, summary.n_chunks
        size = int(reader.file_bytes or 0)
        chunk_bytes = reader.chunk_bytes
    duration = h.n_samples / h.sample_rate
    info = FileInfo(
        path=name or (str(src) if isinstance(src, (str, Path)) else "<stdin>"),
        duration_s=duration,
        sample_rate=h.sample_rate,
        channels=h.channels,
        events=n_events,
        chunks=n_chunks,
        events_per_s=n_events / duration if duration > 0 else 0.0,
        bytes=size,
        kbps=size * 8.0 / duration / 1000.0 if duration > 0 else 0.0,
        layout_version=h.layout_version,
        encoder_id=h.encoder_id,
        weights_hash=h.weights_hash,
        time_rate=h.time_rate,
        hop_samples=h.hop_samples,
        software=h.software,
        tags=dict(h.tags),
        settings=dict(h.settings),
        format_version=reader.format_version,
        bytes_per_event=size / n_events if n_events and size else None,
        chunk_bytes=chunk_bytes,
        chunk_bytes_per_event=chunk_bytes / n_events if n_events and chunk_bytes is not None else None,
        target_kbps=_target_kbps(h.settings),
    )
    return info, listed


def _target_kbps(settings: dict[str, Any]) -> float | None:
    """The ``kbps`` an encode aimed at, from its recorded settings (not when ``events_per_second`` set the
    event budget instead)."""
    kbps = settings.get("kbps")
    if isinstance(kbps, bool) or not isinstance(kbps, (int, float)) or not math.isfinite(kbps):
        return None
    return None if settings.get("events_per_second") else float(kbps)


def verify_file(src: Source, *, max_duration_s: float | None = None) -> int:
    """Check every CRC, structure and resource limit of a ``.spev`` file (``spev test``); returns the chunk
    count.  ``max_duration_s``: as for :func:`decode_file`.

    Raises a :class:`~sparsecodec.errors.FormatError` subclass on the first problem.
    """
    from sparsecodec.format import container

    with _spev_input(src) as f:
        limit = max_duration_s or container.MAX_DURATION_S
        return int(container.Reader(f, max_duration_s=limit).verify().n_chunks)
