"""``spev view``: one self-contained HTML page to look at, hear and read the events of a ``.spev`` file.

The page (docs/view.md) holds everything it needs: its script and style inline (no library: a canvas
scatter plot written for this page), the events, one audio clip per event, the full decode, the optional
original and their spectrograms.  It makes no network request (a Content-Security-Policy forbids them) and
works from ``file://``.

What is built here, at build time, by the real decoder:

- **Clips.**  Every event is rendered alone by :func:`sparsecodec.synth.render_np.render` (mono, at
  :data:`CLIP_RATE`, with its own noise seed and its chunk's room, so it is exactly that event's share of
  the decode), from :data:`CLIP_PRE_S` before its onset for at most :data:`CLIP_MAX_S`; the tail below
  :data:`CLIP_FLOOR_DB` of the clip's peak is cut and the end faded.  Clips are Ogg/Opus at a bit rate
  chosen so that the page fits :data:`MAX_PAGE_BYTES` (:func:`clip_kbps`), in base64.  The two Ogg header
  pages are the same for every clip, so they are stored once (:func:`split_ogg_opus`).
- **Full decode** (shift-click) and the **original** (``--audio``): mono Ogg/Opus at :data:`AUDIO_RATE`.
- **Spectrograms** of both, JPEG images on a log-frequency axis, drawn under the timeline on its time axis.
- **y axis**: :func:`sparsecodec.tools.plot.embed_1d`, the projection of ``spev plot`` (t-SNE, or the first
  principal component outside ``MIN_TSNE..MAX_TSNE`` events); the page names the one used.

Untrusted text (tags, file names, every header string) reaches the page only inside a JSON block whose
``<``, ``>`` and ``&`` are escaped, and the script writes it with ``textContent``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from sparsecodec import __version__
from sparsecodec.errors import LimitError, UsageError
from sparsecodec.format import events
from sparsecodec.tools.edit import Events, read_events

MAX_PAGE_BYTES = 15_000_000
"""The page is never larger than this (bytes); a file whose page would be is refused (:class:`LimitError`)."""
CLIP_RATE = 16000
"""Sample rate of the per-event clips (Hz; Opus takes 8, 12, 16, 24 or 48 kHz): the decoder renders up to
0.45 × rate = 7.2 kHz, and Opus at 12-16 kbit/s codes up to 8 kHz."""
BRIGHT_RATE = 48000
"""Sample rate of the clips of *bright* events (:func:`bright`), which a 16 kHz clip would lose."""
BRIGHT_KBPS = 16.0
"""Bit rate of the bright clips: Opus codes the full band from about 16 kbit/s (measured: a noise band at
12 kHz keeps its level within 1.5 dB; at 12 kbit/s it loses 30 dB)."""
BRIGHT_SHARE = 0.25
"""An event is bright when more than this share of its power lies above 0.45 × :data:`CLIP_RATE`."""
CLIP_MAX_S = 1.0
"""Longest clip (s): longer events are cut (with a fade) — the clip is for recognising the event."""
CLIP_PRE_S = 0.01
"""A clip starts this long before its event's onset (sound may start half a synthesis window early)."""
CLIP_FLOOR_DB = -60.0
"""A clip's tail below this level relative to its peak is cut."""
CLIP_FADE_S = 0.03
"""Fade-out at a clip's end (s)."""
CLIP_KBPS_RANGE = (10.0, 16.0)
"""Bit rates (kbit/s) the clips may get: the highest that keeps the page near :data:`PAGE_TARGET_BYTES`,
within this range.  Not lower: at 8 kbit/s Opus switches to its speech mode (SILK), which loses noise above
2 kHz (measured: a noise band at 4 kHz comes out 10 dB low at 8 kbit/s, within 1 dB at 9 to 16)."""
PAGE_TARGET_BYTES = 12_000_000
"""The size the clips' bit rate aims at (the cap, :data:`MAX_PAGE_BYTES`, leaves room for Opus's variable
rate)."""
AUDIO_RATE = 24000
"""Sample rate of the full decode and the original in the page (mono Ogg/Opus)."""
AUDIO_KBPS = 24.0
"""Bit rate of the full decode and the original (kbit/s)."""
OGG_OVERHEAD_BYTES = 40
BUDGET_MARGIN = 0.95
"""Share of the clips' byte budget the bit-rate choice plans to use (Opus's variable rate may overshoot)."""
"""Estimate of the Ogg page headers of one clip (bytes), for the bit-rate budget."""
SPEC_ROWS = 160
"""Height of a spectrogram image (rows, log-spaced from :data:`SPEC_F_LO` to :data:`SPEC_F_HI`)."""
SPEC_F_LO, SPEC_F_HI = 40.0, 11000.0
SPEC_NFFT = 1024
"""STFT size at :data:`AUDIO_RATE` (43 ms)."""
SPEC_MAX_COLUMNS = 6000
"""Widest spectrogram image (columns); the hop grows for long files (≥ 256 samples, 10.7 ms)."""
SPEC_RANGE_DB = 80.0
CLIP_BATCH = 64
"""Events per task of the clip workers."""
OGG_SERIAL = 0x73706576
"""Ogg stream serial number of every audio stream in the page (``b"spev"``): equal header pages."""

ASSETS = "view_assets"


@dataclass
class ViewResult:
    """What :func:`view_file` wrote, with the figures ``spev view`` prints (and docs/view.md records)."""

    path: Path
    events: int
    bytes: int
    clip_bytes: int
    clip_kbps: float
    projection: str
    seconds: float
    parts: dict[str, int] = field(default_factory=dict)
    """Bytes of each part of the page (base64 included)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent on each step of the build."""


# ------------------------------------------------------------------------------------------------ Ogg


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if r & 0x80000000 else (r << 1) & 0xFFFFFFFF
        table.append(r)
    return table


_CRC = _crc_table()


def ogg_crc(data: bytes) -> int:
    """The Ogg page checksum (CRC-32, polynomial 0x04C11DB7, no reflection, initial 0)."""
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC[((crc >> 24) ^ b) & 0xFF]
    return crc


def _pages(data: bytes) -> Iterator[tuple[bytearray, int]]:
    """Ogg pages of ``data`` as ``(page bytes, number of lacing values)``."""
    pos = 0
    while pos < len(data):
        if data[pos : pos + 4] != b"OggS" or pos + 27 > len(data):
            raise ValueError("not an Ogg stream")
        nseg = data[pos + 26]
        size = 27 + nseg + sum(data[pos + 27 : pos + 27 + nseg])
        yield bytearray(data[pos : pos + size]), nseg
        pos += size


def _seal(page: bytearray) -> bytes:
    page[14:18] = OGG_SERIAL.to_bytes(4, "little")
    page[22:26] = b"\0\0\0\0"
    page[22:26] = ogg_crc(bytes(page)).to_bytes(4, "little")
    return bytes(page)


def _tags_page() -> bytes:
    vendor = b"spev"
    body = b"OpusTags" + len(vendor).to_bytes(4, "little") + vendor + (0).to_bytes(4, "little")
    page = bytearray(b"OggS\0\0" + bytes(8) + bytes(4) + (1).to_bytes(4, "little") + bytes(4))
    page += bytes([1, len(body)]) + body
    return _seal(page)


def split_ogg_opus(data: bytes) -> tuple[bytes, bytes]:
    """An Ogg/Opus stream as ``(head, body)``: ``head`` its two header pages with a fixed serial and empty
    tags (so every stream of the same rate and channels has the same head), ``body`` its audio pages.
    ``head + body`` is a valid Ogg/Opus file."""
    pages = list(_pages(data))
    if len(pages) < 3 or bytes(pages[0][0][28 : 28 + 8]) != b"OpusHead":
        raise ValueError("not an Ogg/Opus stream")
    head = _seal(pages[0][0]) + _tags_page()
    tags, nseg = pages[1]
    if tags[26 + nseg] == 255:  # the tags packet continues on the next page: not what libsndfile writes
        raise ValueError("Ogg/Opus tags span pages")
    return head, b"".join(_seal(p) for p, _ in pages[2:])


def opus_level(kbps: float) -> float:
    """libsndfile's compression level for a target Opus bit rate (it maps level L to ≈ 6 + 250·(1 − L)
    kbit/s; measured, docs/view.md)."""
    return float(min(max(1.0 - (kbps - 6.0) / 250.0, 0.0), 1.0))


def encode_opus(audio: np.ndarray, rate: int, kbps: float) -> bytes:
    """``float32[samples]`` (mono) → Ogg/Opus bytes at about ``kbps``."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="OGG", subtype="OPUS", compression_level=opus_level(kbps))
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- clips


@dataclass
class _ClipJob:
    vectors: np.ndarray
    times_s: np.ndarray
    seeds: np.ndarray
    rooms: list[dict[str, Any] | None]
    rates: np.ndarray
    kbps: float


_JOB: _ClipJob | None = None
"""The clip job, set before the workers fork (they read it copy-on-write)."""


def bright(vectors: np.ndarray) -> np.ndarray:
    """Bool ``[N]``: events with more than :data:`BRIGHT_SHARE` of their power above 0.45 × :data:`CLIP_RATE`
    (what a :data:`CLIP_RATE` render leaves out): the noise band's share above it (a log-Gaussian in power,
    docs/events.md), weighted by ``noise_mix``, plus the partials when the fundamental is above it."""
    from scipy.special import ndtr

    v = np.asarray(vectors, dtype=np.float64).reshape(-1, events.N_DIMS)
    c = events.INDEX
    top = 0.45 * CLIP_RATE
    noise_share = np.sin(np.pi / 2 * v[:, c["noise_mix"]]) ** 2
    sigma = np.maximum(v[:, c["noise_width"]] / 2.0 / np.sqrt(2.0), 1e-6)  # power: gain squared
    noise_above = 1.0 - ndtr(np.log2(top / v[:, c["noise_centre"]]) / sigma)
    partials_above = events.pitch_to_hz(v[:, c["pitch"]]) > top
    lost = noise_share * noise_above + (1.0 - noise_share) * partials_above
    return np.asarray(lost > BRIGHT_SHARE, dtype=bool)


def clip_lengths_s(vectors: np.ndarray, rooms: Sequence[dict[str, Any] | None]) -> np.ndarray:
    """Upper bound of each clip's length (s): pre-roll + support (+ the room's tail when wet), ≤ the cap."""
    support = events.support_s(vectors)
    wet = vectors[:, events.INDEX["wet"]] > 0 if len(vectors) else np.zeros(0, bool)
    has_room = np.array([bool(r) for r in rooms], dtype=bool)
    return np.minimum(CLIP_PRE_S + support + np.where(wet & has_room, CLIP_MAX_S, 0.0), CLIP_MAX_S)


def render_clip(
    vector: np.ndarray, time_s: float, seed: int, side: dict[str, Any] | None, rate: int = CLIP_RATE
) -> np.ndarray:
    """One event alone, as the decoder renders it (mono, ``rate``): ``float32[samples]``, ≤ ``CLIP_MAX_S``,
    from ``CLIP_PRE_S`` before the onset (or 0), tail below ``CLIP_FLOOR_DB`` cut, end faded."""
    from sparsecodec.audio.io import soft_limit
    from sparsecodec.synth import render_np

    v = np.asarray(vector, dtype=np.float64).reshape(1, events.N_DIMS)
    start = max(time_s - CLIP_PRE_S, 0.0)
    length = float(clip_lengths_s(v, [side])[0])
    n = max(round(length * rate), 1)
    y = render_np.render(
        v, np.array([time_s]), n, rate, side=side or None, channels=1, start_s=start, seeds=np.array([seed])
    )[0]
    y = soft_limit(y[None])[0]
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 0:
        loud = np.flatnonzero(np.abs(y) > peak * 10.0 ** (CLIP_FLOOR_DB / 20.0))
        end = min(len(y), int(loud[-1]) + 1 + round(CLIP_FADE_S * rate))
        y = y[:end].copy()
    else:
        y = y[: round(0.02 * rate)].copy()
    fade = min(len(y), round(CLIP_FADE_S * rate))
    if fade:
        y[-fade:] *= np.cos(np.linspace(0.0, np.pi / 2, fade, dtype=np.float32)) ** 2
    return y.astype(np.float32)


def _clip_range(span: tuple[int, int]) -> list[bytes]:
    job = _JOB
    assert job is not None
    out = []
    for i in range(*span):
        rate = int(job.rates[i])
        y = render_clip(job.vectors[i], float(job.times_s[i]), int(job.seeds[i]), job.rooms[i], rate)
        out.append(encode_opus(y, rate, BRIGHT_KBPS if rate == BRIGHT_RATE else job.kbps))
    return out


def clip_workers(n_events: int) -> int:
    """Processes for the clips: the decoder's thread count (``OMP_NUM_THREADS`` or the idle CPUs), when this
    process can fork safely (no other threads) and there is enough work."""
    from sparsecodec.jobs import procs
    from sparsecodec.jobs.render import decode_threads

    if not procs.can_fork_workers():
        return 1
    return max(1, min(decode_threads(), n_events // (2 * CLIP_BATCH)))


def render_clips(job: _ClipJob, progress: Callable[[float], None] | None = None) -> list[bytes]:
    """Ogg/Opus bytes of every event's clip, in order (forked workers when :func:`clip_workers` > 1; the
    bytes are the same for any number of workers)."""
    global _JOB
    from sparsecodec.jobs import procs
    from sparsecodec.synth import render_np

    n = len(job.times_s)
    spans = [(a, min(a + CLIP_BATCH, n)) for a in range(0, n, CLIP_BATCH)]
    workers = clip_workers(n)
    out: list[bytes] = []
    _JOB = job
    try:
        if workers == 1:
            for k, span in enumerate(spans):
                out.extend(_clip_range(span))
                if progress is not None:
                    progress((k + 1) / len(spans))
            return out
        for rate in np.unique(job.rates):
            render_np.warm_tables(int(rate))  # built once, shared copy-on-write
        with procs.fork_pool(workers) as pool:
            for k, clips in enumerate(pool.imap(_clip_range, spans)):
                out.extend(clips)
                if progress is not None:
                    progress((k + 1) / len(spans))
        return out
    finally:
        _JOB = None


# ------------------------------------------------------------------------------------ audio + spectra


def decode_mono(src: str | Path, rate: int = AUDIO_RATE) -> np.ndarray:
    """The full decode of ``src`` by :func:`sparsecodec.api.decode_file` at ``rate``, mixed to mono."""
    import soundfile as sf

    from sparsecodec.api import decode_file

    buf = io.BytesIO()
    decode_file(src, buf, rate=rate, bits="32f", fmt="wav")
    buf.seek(0)
    data, _ = sf.read(buf, dtype="float32", always_2d=True)
    return np.asarray(data.mean(axis=1), dtype=np.float32)


def read_original(path: str | Path, seconds: float, rate: int = AUDIO_RATE) -> np.ndarray:
    """The audio of ``path`` (damage checked as ``spev encode`` does), mono at ``rate``, cut or padded to
    ``seconds`` (the ``.spev`` file's length, so both play on one time axis)."""
    from sparsecodec.audio.io import AudioReader, resample_blocks

    want = max(round(seconds * rate), 1)
    parts: list[np.ndarray] = []
    got = 0
    with AudioReader(path) as reader:
        blocks = (b.mean(axis=0, keepdims=True) for b in reader.blocks())
        for block in resample_blocks(blocks, reader.info.sample_rate, rate, 1):
            parts.append(block[0, : want - got])
            got += len(parts[-1])
            if got >= want:
                break
    y = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return np.pad(y, (0, want - len(y))).astype(np.float32)


def spectrogram_jpeg(audio: np.ndarray, rate: int = AUDIO_RATE) -> tuple[bytes, dict[str, Any]]:
    """A log-frequency, log-magnitude spectrogram of ``audio`` as JPEG bytes (magma colours) and its
    geometry ``{"width", "height", "seconds" (time at the right edge), "f_lo", "f_hi"}``."""
    from matplotlib import colormaps
    from PIL import Image

    n = len(audio)
    hop = max(256, math.ceil(n / SPEC_MAX_COLUMNS))
    cols = max(1, math.ceil(n / hop))
    pad = np.pad(audio.astype(np.float32), (SPEC_NFFT // 2, SPEC_NFFT // 2 + cols * hop))
    win = np.hanning(SPEC_NFFT).astype(np.float32)
    f_hi = min(SPEC_F_HI, 0.48 * rate)
    freqs = np.geomspace(SPEC_F_LO, f_hi, SPEC_ROWS)
    pos = freqs * SPEC_NFFT / rate
    lo = np.floor(pos).astype(np.int64)
    frac = (pos - lo).astype(np.float32)
    rows = np.empty((SPEC_ROWS, cols), dtype=np.float32)
    for a in range(0, cols, 512):
        b = min(cols, a + 512)
        idx = (np.arange(a, b) * hop)[:, None] + np.arange(SPEC_NFFT)[None, :]
        mag = np.abs(np.fft.rfft(pad[idx] * win, axis=1)).astype(np.float32)
        rows[:, a:b] = (mag[:, lo] * (1 - frac) + mag[:, lo + 1] * frac).T
    db = 20.0 * np.log10(np.maximum(rows, 1e-7))
    top = float(db.max())
    norm = np.clip((db - (top - SPEC_RANGE_DB)) / SPEC_RANGE_DB, 0.0, 1.0)[::-1]  # high frequencies on top
    rgb = (colormaps["magma"](norm)[..., :3] * 255.0 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=80)
    geometry = {"width": cols, "height": SPEC_ROWS, "seconds": cols * hop / rate, "f_lo": SPEC_F_LO,
                "f_hi": f_hi}  # fmt: skip
    return buf.getvalue(), geometry


# ---------------------------------------------------------------------------------------------- page


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def script_json(value: Any) -> str:
    """JSON safe inside an HTML ``<script>`` element: ASCII only, ``<``, ``>`` and ``&`` as ``\\u`` escapes
    (so no ``</script>`` or ``<!--`` can appear, whatever the strings hold)."""
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _asset(name: str) -> str:
    return resources.files("sparsecodec.tools").joinpath(ASSETS, name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + _b64(hashlib.sha256(text.encode("utf-8")).digest()) + "'"


def content_security_policy(script: str, style: str) -> str:
    """The page's policy: nothing from the network (``default-src 'none'``); only this page's own script
    and style (by hash); images and media from ``data:``/``blob:`` only."""
    return (
        f"default-src 'none'; script-src {_csp_hash(script)}; style-src {_csp_hash(style)}; "
        "img-src data: blob:; media-src data: blob:; base-uri 'none'; form-action 'none'"
    )


def param_tables(vectors: np.ndarray) -> tuple[list[list[float]], bytes]:
    """The events' values compactly and exactly: per dimension the sorted distinct values, and
    ``uint16[N, 32]`` (little-endian bytes) indices into them (dequantised values take ≤ 4096 levels)."""
    values: list[list[float]] = []
    index = np.zeros(vectors.shape, dtype="<u2")
    for d in range(events.N_DIMS):
        uniq, inv = np.unique(vectors[:, d], return_inverse=True)
        if len(uniq) > 65535:
            raise LimitError(f"dimension {events.NAMES[d]}: more than 65535 distinct values")
        values.append([float(x) for x in uniq])
        index[:, d] = inv.reshape(-1)
    return values, index.tobytes()


def projection_name(n: int) -> str:
    """``"t-SNE"`` or ``"PCA"``: which one :func:`sparsecodec.tools.plot.embed_1d` uses for ``n`` events."""
    from sparsecodec.tools.plot import MAX_TSNE, MIN_TSNE

    return "t-SNE" if MIN_TSNE <= n <= MAX_TSNE else "PCA"


def clip_kbps(seconds: float, bright_seconds: float, n_clips: int, budget_bytes: float) -> float:
    """The bit rate of the :data:`CLIP_RATE` clips: the highest in :data:`CLIP_KBPS_RANGE` whose base64
    fits ``budget_bytes`` with the bright clips (``bright_seconds`` at :data:`BRIGHT_KBPS`), estimated from
    the clips' longest lengths; else the lowest (the page's cap then decides)."""
    lo, hi = CLIP_KBPS_RANGE
    if seconds <= 0:
        return hi
    raw = BUDGET_MARGIN * budget_bytes * 3.0 / 4.0 - n_clips * (OGG_OVERHEAD_BYTES + 4)
    raw -= bright_seconds * BRIGHT_KBPS * 1000.0 / 8.0
    kbps = raw * 8.0 / 1000.0 / seconds
    return float(min(max(kbps, lo), hi))


def estimate_bytes(
    duration_s: float, lengths_s: np.ndarray, bright_mask: np.ndarray, original: bool
) -> float:
    """The smallest page (bytes) the events and length can make: clips at the lowest rates, the audio."""
    audio = duration_s * AUDIO_KBPS * 1000.0 / 8.0 * (2 if original else 1)
    clips = float(lengths_s[~bright_mask].sum()) * CLIP_KBPS_RANGE[0] * 1000.0 / 8.0
    clips += float(lengths_s[bright_mask].sum()) * BRIGHT_KBPS * 1000.0 / 8.0
    clips += len(lengths_s) * (OGG_OVERHEAD_BYTES + 4)
    return (audio + clips) * 4.0 / 3.0 + len(lengths_s) * 300.0  # + the events' data


def _sorted(ev: Events) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any] | None]]:
    order = np.argsort(ev.times_s, kind="stable")  # the order of `spev export`
    times = ev.times_s[order]
    rooms = [ev.side_at(float(t)) or None for t in times]
    return ev.vectors[order], times, rooms


def _info(src: str | Path, header: Any, ev: Events) -> dict[str, Any]:
    from sparsecodec.api import read_info

    info, _ = read_info(src)
    return {
        "file": Path(src).name,
        "duration_s": info.duration_s,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "events": len(ev),
        "chunks": info.chunks,
        "events_per_s": info.events_per_s,
        "bytes": info.bytes,
        "kbps": info.kbps,
        "layout_version": info.layout_version,
        "encoder_id": info.encoder_id,
        "weights_hash": info.weights_hash,
        "software": info.software,
        "tags": dict(info.tags),
    }


def build_page(
    src: str | Path,
    *,
    audio: str | Path | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> tuple[bytes, ViewResult]:
    """The HTML page of ``src`` (bytes) and its figures; ``audio``: the original, for A/B and a spectrogram.

    Raises what reading the file raises (a damaged file: :class:`~sparsecodec.errors.FormatError`),
    :class:`LimitError` when the page would exceed :data:`MAX_PAGE_BYTES`."""
    import time

    from sparsecodec.synth import kernels
    from sparsecodec.tools.plot import colours, embed_1d

    started = time.perf_counter()
    timings: dict[str, float] = {}
    last = [started]

    def step(what: str, fraction: float) -> None:
        if progress is not None:
            progress(what, fraction)

    def done(what: str) -> None:
        now = time.perf_counter()
        timings[what] = now - last[0]
        last[0] = now

    header, ev = read_events(src)
    n = len(ev)
    duration = float(header.n_samples) / float(header.sample_rate)
    vectors, times, rooms = _sorted(ev)
    lengths = clip_lengths_s(vectors, rooms) if n else np.zeros(0)
    rates = np.where(bright(vectors), BRIGHT_RATE, CLIP_RATE) if n else np.zeros(0, np.int64)
    smallest = estimate_bytes(duration, lengths, rates == BRIGHT_RATE, audio is not None)
    if smallest > MAX_PAGE_BYTES:
        part = max(10, int(duration * MAX_PAGE_BYTES / smallest * 0.8))
        raise LimitError(
            f"{src}: {n} events over {duration:.0f} s make a page of about {smallest / 1e6:.0f} MB, over its "
            f"{MAX_PAGE_BYTES / 1e6:.0f} MB cap: view a part, e.g. spev edit {src} part.spev --keep 0:{part}"
        )
    info = _info(src, header, ev)
    done("read")

    step("decoding", 0.0)
    decoded = decode_mono(src)
    original = read_original(audio, duration) if audio is not None else None
    decode_ogg = encode_opus(decoded, AUDIO_RATE, AUDIO_KBPS)
    original_ogg = encode_opus(original, AUDIO_RATE, AUDIO_KBPS) if original is not None else b""
    spectra: dict[str, Any] = {}
    for name, y in (("decode", decoded), ("input", original)):
        if y is not None:
            jpeg, geometry = spectrogram_jpeg(y)
            spectra[name] = {**geometry, "jpeg": _b64(jpeg)}
    done("decode, original, spectrograms")

    step("projecting", 0.0)
    unit = np.clip(events.to_unit(vectors), 0.0, 1.0) if n else np.zeros((0, events.N_DIMS))
    y_proj = embed_1d(unit)
    rgb = colours(unit) if n else np.zeros((0, 3))
    hexes = ["#" + "".join(f"{round(float(c) * 255):02x}" for c in row) for row in rgb]
    values, index = param_tables(vectors)
    done("projection")

    data: dict[str, Any] = {
        "format": "spev-view",
        "version": 1,
        "software": f"spev {__version__}",
        "info": info,
        "n": n,
        "times": [float(t) for t in times],
        "projection": projection_name(n),
        "y_projection": [round(float(y), 5) for y in y_proj],
        "colour": hexes,
        "pitched": [int(p) for p in events.is_pitched(vectors)] if n else [],
        "dims": [{"name": d.name, "unit": d.unit, "doc": d.doc} for d in events.DIMS],
        "values": values,
        "index": _b64(index),
        "spectra": spectra,
        "audio": {"rate": AUDIO_RATE, "kbps": AUDIO_KBPS, "original": original is not None},
    }
    data_json = script_json(data)
    fixed = len(data_json) + 4 * (len(decode_ogg) + len(original_ogg)) // 3 + 100_000
    dull = rates == CLIP_RATE
    kbps = clip_kbps(float(lengths[dull].sum()), float(lengths[~dull].sum()), n, PAGE_TARGET_BYTES - fixed)
    data["clips"] = {
        "rate": CLIP_RATE,
        "kbps": round(kbps, 2),
        "bright_rate": BRIGHT_RATE,
        "bright_kbps": BRIGHT_KBPS,
        "bright": int((~dull).sum()),
        "max_s": CLIP_MAX_S,
    }
    data_json = script_json(data)

    step("rendering clips", 0.0)
    seeds = kernels.event_seeds(times) if n else np.zeros(0, np.int64)
    job = _ClipJob(vectors, times, seeds, rooms, rates, kbps)
    clips = render_clips(job, progress=lambda f: step("rendering clips", f))
    done("clips")
    heads: dict[int, bytes] = {}
    bodies: list[str] = []
    for clip, rate in zip(clips, rates, strict=True):
        h, body = split_ogg_opus(clip)
        if heads.setdefault(int(rate), h) != h:
            raise ValueError("clips with different Ogg/Opus headers")  # one encoder, one setting: a bug
        bodies.append(_b64(body))
    head_rates = sorted(heads)
    clips_json = script_json(
        {
            "heads": [_b64(heads[r]) for r in head_rates],
            "head_of": [head_rates.index(int(r)) for r in rates],
            "clips": bodies,
        }
    )

    script, style, body_html = _asset("view.js"), _asset("view.css"), _asset("body.html")
    csp = content_security_policy(script, style)
    title = f"{Path(src).name} — spev view"
    page = "".join(
        [
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            '<meta name="referrer" content="no-referrer">\n',
            f"<title>{html.escape(title)}</title>\n",
            f"<style>{style}</style>\n</head>\n<body>\n",
            body_html,
            f'<script type="application/json" id="spev-data">{data_json}</script>\n',
            f'<script type="application/json" id="spev-clips">{clips_json}</script>\n',
            f'<script type="text/plain" id="spev-decode">{_b64(decode_ogg)}</script>\n',
            f'<script type="text/plain" id="spev-original">{_b64(original_ogg)}</script>\n',
            f"<script>{script}</script>\n</body>\n</html>\n",
        ]
    )
    out = page.encode("utf-8")
    parts = {
        "data": len(data_json),
        "clips": len(clips_json),
        "decode": 4 * len(decode_ogg) // 3,
        "original": 4 * len(original_ogg) // 3,
        "spectrograms": sum(len(s["jpeg"]) for s in spectra.values()),
    }
    if len(out) > MAX_PAGE_BYTES:
        raise LimitError(
            f"{src}: the page would be {len(out) / 1e6:.1f} MB, over the {MAX_PAGE_BYTES / 1e6:.0f} MB cap: "
            f"view a part, e.g. spev edit {src} part.spev --keep 0:120"
        )
    result = ViewResult(
        path=Path(),
        events=n,
        bytes=len(out),
        clip_bytes=len(clips_json),
        clip_kbps=kbps,
        projection=projection_name(n),
        seconds=time.perf_counter() - started,
        parts=parts,
        timings=timings,
    )
    return out, result


def view_file(
    src: str | Path,
    dst: str | Path,
    *,
    audio: str | Path | None = None,
    force: bool = False,
    progress: Callable[[str, float], None] | None = None,
) -> ViewResult:
    """Write the page of ``src`` to ``dst`` (atomically; an existing ``dst`` only with ``force``)."""
    from sparsecodec.audio.io import atomic_output, ensure_writable

    dst = Path(dst)
    if dst.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"{dst}: view writes an HTML page (use a .html name)")
    ensure_writable(dst, force)
    if Path(dst).resolve() == Path(src).resolve():
        raise UsageError(f"{src}: output would overwrite the input")
    page, result = build_page(src, audio=audio, progress=progress)
    with atomic_output(dst, overwrite=force) as f:
        f.write(page)
    result.path = dst
    return result


def open_in_browser(path: str | Path) -> bool:
    """Open ``path`` in the default browser; ``False`` when there is none to open it in (on Linux and the
    BSDs without a display, where ``webbrowser`` would start a text browser in the terminal)."""
    import sys
    import webbrowser

    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if os.name == "posix" and sys.platform != "darwin" and headless:
        return False
    try:
        return bool(webbrowser.open(Path(path).resolve().as_uri()))
    except webbrowser.Error:
        return False
