"""Audio input and output: soundfile reading in blocks, soxr resampling, WAV to pipes, atomic outputs.

Audio arrays are ``float32[channels, samples]``, nominally in [-1, 1].  Nothing here holds a whole file in
memory: input is read in blocks, stdin is spooled to a temporary file in blocks (libsndfile cannot parse a
WAV from a non-seekable stream), and WAV output is written by our own RIFF writer whose header is complete
before the first sample (the length is known from the ``.spev`` header), so it is correct on a pipe too.

Full-scale policy (docs/cli.md): decoded audio passes :func:`soft_limit` — the identity below -1 dBFS and a
memoryless tanh knee above it that never reaches full scale — so nothing clips or wraps, and the result does
not depend on block boundaries or seeks.  No torch import here.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import struct
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

import numpy as np

from sparsecodec.errors import InputError, OutputExistsError, UsageError
from sparsecodec.jobs import procs

BLOCK_FRAMES = 1 << 16
"""Frames per block when reading or writing audio."""
COPY_BYTES = 1 << 20
"""Bytes per block when spooling a stream."""
MAX_ANALYSIS_RATE = 48000
"""Inputs above this rate are resampled to it for analysis (soxr); at or below, analysed at their own rate."""
MAX_CHANNELS = 2
"""spev codes mono or stereo; inputs with more channels are rejected (downmix them first)."""
MIN_RATE, MAX_RATE = 1000, 384000
"""Accepted sample rates (Hz), for input and for ``--rate``."""
MAX_FRAMES = 24 * 3600 * MAX_RATE
"""Upper bound on the length of one input or output, in frames."""

LIMIT_THRESHOLD = 10.0 ** (-1.0 / 20.0)
"""Soft limiter knee: samples with magnitude up to -1 dBFS pass unchanged."""

Bits = Literal["16", "24", "32f"]
BITS_CHOICES: tuple[str, ...] = ("16", "24", "32f")
FORMATS: tuple[str, ...] = ("wav", "flac")
AUDIO_SUFFIXES: frozenset[str] = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc", ".mp3", ".au", ".caf"}
    | {".w64", ".rf64"}
)
"""File suffixes a recursive ``encode`` picks up in folders."""


# --------------------------------------------------------------------------------------------- input


def spool(stream: BinaryIO, directory: str | Path | None = None) -> BinaryIO:
    """Copy a (possibly non-seekable) stream into an anonymous temporary file, rewound; memory stays flat."""
    tmp = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (returned to the caller)
    try:
        shutil.copyfileobj(stream, tmp, COPY_BYTES)
        tmp.seek(0)
    except BaseException:
        tmp.close()
        raise
    return tmp


def check_input_path(path: str | Path, name: str | None = None) -> Path:
    """``path`` as a :class:`Path` when it names a file to read; :class:`InputError` ("no such file", "is a
    directory") otherwise.  ``name`` is how messages call it (default: the path)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{name or path}: no such file")
    if p.is_dir():
        raise InputError(f"{name or path}: is a directory")
    return p


def is_seekable(fileobj: Any) -> bool:
    """True when ``fileobj`` supports ``seek``/``tell`` (pipes and sockets do not)."""
    try:
        return bool(fileobj.seekable())
    except (AttributeError, OSError, ValueError):
        return False


@dataclass
class AudioInfo:
    """What :class:`AudioReader` knows before reading any sample."""

    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


class AudioReader:
    """Read an audio file (path or seekable binary file) in blocks of ``float32[channels, k]``.

    Raises :class:`~sparsecodec.errors.InputError` for a missing, unreadable, empty, too long or
    more-than-stereo input, and while reading for damage: a WAV or FLAC holding fewer samples than its header
    declares, a decode error libsndfile reports mid-stream, NaN or infinite samples.  With ``ignore_errors``
    the reader keeps what is sound instead (it stops at the damage, NaN/Inf become 0) and notes each repair in
    :attr:`warnings`.  Samples beyond [-1, 1] are clipped, with a warning.  Use as a context manager.
    """

    def __init__(
        self, src: str | Path | BinaryIO, name: str | None = None, *, ignore_errors: bool = False
    ) -> None:
        import soundfile as sf

        self.ignore_errors = ignore_errors
        self.warnings: list[str] = []
        """What was repaired or cut short (``ignore_errors`` only), one line each."""
        self.frames_read = 0

        self.name = name or (str(src) if isinstance(src, (str, Path)) else getattr(src, "name", "<stream>"))
        if isinstance(src, (str, Path)):
            src = str(check_input_path(src, self.name))
        try:
            self._f = sf.SoundFile(src)
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            raise InputError(f"{self.name}: cannot read audio ({_sf_message(exc)})") from None
        try:
            self.info = self._make_info()
            self.declared_frames = self._declared_frames(src)
        except BaseException:
            self._f.close()
            raise

    def _make_info(self) -> AudioInfo:
        f = self._f
        rate, channels, frames = int(f.samplerate), int(f.channels), int(f.frames)
        if not MIN_RATE <= rate <= MAX_RATE:
            raise InputError(f"{self.name}: sample rate {rate} Hz outside {MIN_RATE}..{MAX_RATE}")
        if channels > MAX_CHANNELS:
            raise InputError(
                f"{self.name}: {channels} channels; spev codes mono or stereo — downmix first "
                f"(e.g. sox IN OUT remix -m 1,3,5 2,4,6 or ffmpeg -ac 2)"
            )
        if frames <= 0:
            raise InputError(f"{self.name}: no audio (0 frames)")
        if frames > MAX_FRAMES:
            raise InputError(f"{self.name}: too long ({frames} frames)")
        try:
            tags = {str(k): str(v) for k, v in f.copy_metadata().items() if str(v).strip()}
        except (RuntimeError, AttributeError):
            tags = {}
        return AudioInfo(rate, channels, frames, str(f.format), str(f.subtype), tags)

    def _declared_frames(self, src: str | BinaryIO) -> int | None:
        """Frames the header promises, where the format states it reliably (WAV, FLAC); else ``None``.

        libsndfile shortens a cut-off WAV's length to what the file holds, so the RIFF ``data`` size is read
        here; a FLAC's STREAMINFO count is what libsndfile reports.  OGG declares no length.
        """
        fmt = self.info.format
        if fmt == "FLAC":
            return self.info.frames
        if fmt != "WAV":
            return None
        if isinstance(src, str):
            with open(src, "rb") as f:
                head = f.read(WAV_HEAD_BYTES)
        else:
            pos = src.tell()
            head = src.read(WAV_HEAD_BYTES)
            src.seek(pos)
        return wav_declared_frames(head)

    def _damaged(self, what: str) -> None:
        """Stop on damage: raise, or (``ignore_errors``) note it and let the caller keep what was read."""
        if not self.ignore_errors:
            raise InputError(f"{self.name}: {what} (--ignore-errors encodes what is there)")
        self.warnings.append(f"{self.name}: {what}; kept what is there")

    def _sanitised(self, data: np.ndarray) -> np.ndarray:
        """``data`` with NaN/Inf refused (or zeroed) and out-of-range floats clipped to [-1, 1]."""
        finite = np.isfinite(data)
        if not finite.all():
            bad = int(np.argmin(finite.all(axis=0)))
            at = (self.frames_read + bad) / self.info.sample_rate
            if not self.ignore_errors:
                raise InputError(
                    f"{self.name}: NaN or infinite samples at {at:.2f} s (--ignore-errors zeroes them)"
                )
            if not any("NaN" in w for w in self.warnings):
                self.warnings.append(f"{self.name}: NaN or infinite samples from {at:.2f} s replaced by 0")
            data = np.where(finite, data, np.float32(0.0))
        if np.abs(data).max(initial=0.0) > 1.0:
            if not any("clipped" in w for w in self.warnings):
                at = self.frames_read / self.info.sample_rate
                self.warnings.append(
                    f"{self.name}: samples beyond full scale from {at:.2f} s clipped to [-1, 1]"
                )
            data = np.clip(data, -1.0, 1.0)
        return data

    def blocks(self, block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """Yield ``float32[channels, k]`` blocks from the start to the end of the file.

        Raises :class:`InputError` at damage (see the class); :attr:`frames_read` counts what was yielded.
        """
        import soundfile as sf

        self._f.seek(0)
        self.frames_read = 0
        rate = self.info.sample_rate
        while True:
            try:
                data = self._f.read(block_frames, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                self._damaged(f"damaged input at {self.frames_read / rate:.2f} s ({_sf_message(exc)})")
                return
            if data.shape[0] == 0:
                break
            block = self._sanitised(np.ascontiguousarray(data.T))
            self.frames_read += block.shape[1]
            yield block
        if self.declared_frames is not None and self.frames_read < self.declared_frames:
            self._damaged(
                f"truncated input: header declares {self.declared_frames / rate:.2f} s, "
                f"file holds {self.frames_read / rate:.2f} s"
            )

    def close(self) -> None:
        """Close the underlying file."""
        self._f.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


WAV_HEAD_BYTES = 1 << 16
"""Bytes of a WAV's start searched for its ``data`` chunk."""
WAV_UNKNOWN_SIZES = frozenset({0, 0xFFFFFFFF})
"""``data`` sizes that mean "unknown" (a WAV written to a pipe by sox or ffmpeg): never called truncated."""


def wav_declared_frames(head: bytes) -> int | None:
    """Frames a RIFF/WAVE header's ``data`` chunk declares, from the file's first bytes; ``None`` when the
    size is unknown (pipe-written), the header is not plain RIFF/WAVE, or no ``data`` chunk is in ``head``."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, block_align = 12, 0
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if cid == b"fmt " and pos + 22 <= len(head):
            block_align = struct.unpack_from("<H", head, pos + 20)[0]
        elif cid == b"data":
            if size in WAV_UNKNOWN_SIZES or block_align <= 0:
                return None
            return int(size // block_align)
        pos += 8 + size + (size & 1)
    return None


def _sf_message(exc: BaseException) -> str:
    text = str(getattr(exc, "error_string", "") or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def analysis_rate(rate: int) -> int:
    """The rate the encoder analyses an input of ``rate`` Hz at: its own up to 48 kHz, else 48 kHz."""
    return rate if rate <= MAX_ANALYSIS_RATE else MAX_ANALYSIS_RATE


def resample_blocks(
    blocks: Iterable[np.ndarray], in_rate: int, out_rate: int, channels: int
) -> Iterator[np.ndarray]:
    """Stream-resample ``float32[C, k]`` blocks with soxr (HQ); yields blocks at ``out_rate``."""
    if in_rate == out_rate:
        yield from blocks
        return
    import soxr

    stream = soxr.ResampleStream(in_rate, out_rate, channels, dtype="float32", quality="HQ")
    for block in blocks:
        out = stream.resample_chunk(np.ascontiguousarray(block.T), last=False)
        if out.shape[0]:
            yield np.ascontiguousarray(out.T)
    out = stream.resample_chunk(np.zeros((0, channels), dtype=np.float32), last=True)
    if out.shape[0]:
        yield np.ascontiguousarray(out.T)


def resampled_length(frames: int, in_rate: int, out_rate: int) -> int:
    """Length in frames at ``out_rate`` of ``frames`` at ``in_rate`` (rounded to nearest)."""
    return round(frames * out_rate / in_rate)


# -------------------------------------------------------------------------------------------- output


def soft_limit(x: np.ndarray) -> np.ndarray:
    """The full-scale policy: identity up to -1 dBFS, then a tanh knee that approaches but never reaches 1.

    Memoryless and look-ahead-free, so block-wise decoding and seeks give the same samples.
    ``float32[C, k]`` in, ``float32[C, k]`` out with every ``|y| < 1`` (NaN becomes 0).
    """
    t = LIMIT_THRESHOLD
    x = np.nan_to_num(np.asarray(x, dtype=np.float32), nan=0.0, posinf=1e6, neginf=-1e6)
    mag = np.abs(x)
    over = mag > t
    if not over.any():
        return x
    knee = t + (1.0 - t) * np.tanh((mag - t) / (1.0 - t))
    out = np.where(over, np.sign(x) * knee, x).astype(np.float32)
    return np.clip(out, -0.99999994, 0.99999994)  # float32 rounding of tanh(large) is 1.0


def pcm_bytes(block: np.ndarray, bits: str) -> bytes:
    """``float32[C, k]`` (already limited) → interleaved little-endian PCM bytes for ``bits``."""
    inter = np.ascontiguousarray(np.asarray(block, dtype=np.float32).T)  # [k, C]
    if bits == "32f":
        return inter.astype("<f4").tobytes()
    if bits == "16":
        return np.clip(np.rint(inter * 32768.0), -32768, 32767).astype("<i2").tobytes()
    if bits == "24":
        ints = np.clip(np.rint(inter.astype(np.float64) * 8388608.0), -8388608, 8388607).astype("<i4")
        return ints.reshape(-1, 1).view(np.uint8)[:, :3].tobytes()
    raise UsageError(f"unknown bit depth {bits!r} (choose 16, 24 or 32f)")


def wav_header(sample_rate: int, channels: int, frames: int, bits: str) -> bytes:
    """A complete RIFF/WAVE header for ``frames`` frames (PCM 16/24 or IEEE float 32)."""
    width = {"16": 2, "24": 3, "32f": 4}[bits]
    is_float = bits == "32f"
    block_align = width * channels
    data_bytes = frames * block_align
    if data_bytes + 58 > 0xFFFFFFFF:
        raise UsageError("output too long for WAV (4 GiB limit); write FLAC instead")
    fmt_tag = 3 if is_float else 1
    fmt = struct.pack(
        "<HHIIHH", fmt_tag, channels, sample_rate, sample_rate * block_align, block_align, width * 8
    )
    chunks = b""
    if is_float:
        fmt += struct.pack("<H", 0)  # cbSize
        chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
        chunks += b"fact" + struct.pack("<II", 4, frames)
    else:
        chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    pad = data_bytes & 1
    riff_size = 4 + len(chunks) + 8 + data_bytes + pad
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + chunks + b"data" + struct.pack("<I", data_bytes)


class AudioWriter(Protocol):
    """Sink for ``float32[C, k]`` blocks."""

    def write(self, block: np.ndarray) -> None: ...

    def close(self) -> None: ...


class WavWriter:
    """WAV writer for any binary stream (pipes included): the header is final before the first sample.

    Exactly ``frames`` frames are written: extra samples are dropped, missing ones padded with silence
    at :meth:`close`.  Blocks are soft-limited (:func:`soft_limit`).
    """

    def __init__(self, fileobj: BinaryIO, sample_rate: int, channels: int, frames: int, bits: str) -> None:
        self._f, self.channels, self.frames, self.bits = fileobj, channels, frames, bits
        self._written = 0
        fileobj.write(wav_header(sample_rate, channels, frames, bits))

    def write(self, block: np.ndarray) -> None:
        """Append ``float32[C, k]``."""
        room = self.frames - self._written
        block = block[:, : max(room, 0)]
        if block.shape[1]:
            self._f.write(pcm_bytes(soft_limit(block), self.bits))
            self._written += block.shape[1]

    def write_pcm(self, data: bytes, frames: int) -> None:
        """Append ``frames`` frames already limited and packed by :func:`pcm_bytes` at this writer's bits."""
        room = max(self.frames - self._written, 0)
        if frames > room:
            data, frames = data[: room * len(data) // max(frames, 1)], room
        self._f.write(data)
        self._written += frames

    def close(self) -> None:
        """Pad to the announced length and flush (the file object stays open)."""
        while self._written < self.frames:
            n = min(self.frames - self._written, BLOCK_FRAMES)
            self.write(np.zeros((self.channels, n), dtype=np.float32))
        if (self.frames * self.channels * {"16": 2, "24": 3, "32f": 4}[self.bits]) & 1:
            self._f.write(b"\0")
        self._f.flush()


class SoundfileWriter:
    """FLAC (or WAV) through soundfile on a seekable binary file; blocks are soft-limited."""

    def __init__(
        self, fileobj: BinaryIO, fmt: str, sample_rate: int, channels: int, frames: int, bits: str
    ) -> None:
        import soundfile as sf

        if fmt == "flac" and bits == "32f":
            raise UsageError("FLAC stores integers: use --bits 16 or 24 (or WAV for 32f)")
        if fmt == "flac" and frames == 0:
            raise UsageError("the audio is empty and FLAC cannot store empty audio: use WAV")
        subtype = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}[bits]
        self.channels, self.frames = channels, frames
        self._written = 0
        self._f = sf.SoundFile(
            fileobj, "w", samplerate=sample_rate, channels=channels, subtype=subtype, format=fmt.upper()
        )

    def write(self, block: np.ndarray) -> None:
        """Append ``float32[C, k]``."""
        block = block[:, : max(self.frames - self._written, 0)]
        if block.shape[1]:
            self._f.write(np.ascontiguousarray(soft_limit(block).T))
            self._written += block.shape[1]

    def close(self) -> None:
        """Pad to the announced length and finish the file."""
        while self._written < self.frames:
            n = min(self.frames - self._written, BLOCK_FRAMES)
            self.write(np.zeros((self.channels, n), dtype=np.float32))
        self._f.close()


class _SpoolThenCopy:
    """Write through an inner writer into a temporary file, then copy it to a non-seekable stream."""

    def __init__(self, dst: BinaryIO, make: Any) -> None:
        self._dst = dst
        self._tmp = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self._inner: AudioWriter = make(self._tmp)

    def write(self, block: np.ndarray) -> None:
        self._inner.write(block)

    def close(self) -> None:
        try:
            self._inner.close()
            self._tmp.seek(0)
            shutil.copyfileobj(self._tmp, self._dst, COPY_BYTES)
            self._dst.flush()
        finally:
            self._tmp.close()


def open_writer(
    fileobj: BinaryIO, fmt: str, sample_rate: int, channels: int, frames: int, bits: str
) -> AudioWriter:
    """A writer of ``fmt`` (``wav``/``flac``) at ``bits`` onto ``fileobj`` (seekable or not)."""
    if bits not in BITS_CHOICES:
        raise UsageError(f"unknown bit depth {bits!r} (choose 16, 24 or 32f)")
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise UsageError(f"output rate {sample_rate} Hz outside {MIN_RATE}..{MAX_RATE}")
    if fmt == "wav":
        return WavWriter(fileobj, sample_rate, channels, frames, bits)
    if fmt == "flac":
        if is_seekable(fileobj):
            return SoundfileWriter(fileobj, fmt, sample_rate, channels, frames, bits)
        return _SpoolThenCopy(
            fileobj, lambda tmp: SoundfileWriter(tmp, fmt, sample_rate, channels, frames, bits)
        )
    raise UsageError(f"unknown output format {fmt!r} (choose wav or flac)")


def format_for(path: str | Path | None, fmt: str | None = None) -> str:
    """Output format: ``fmt`` if given, else from the suffix (``.flac`` → flac), else wav."""
    if fmt:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise UsageError(f"unknown output format {fmt!r} (choose wav or flac)")
        return fmt
    if path is not None and Path(str(path)).suffix.lower() == ".flac":
        return "flac"
    return "wav"


# ------------------------------------------------------------------------------------ atomic outputs


OutputKind = Literal["new", "file", "special", "link", "dir"]


def output_kind(path: str | Path) -> OutputKind:
    """What writing ``path`` would meet: nothing yet, a regular file, a special file to write through (a
    device, FIFO or socket, or a link to one, such as ``/dev/stdout``), another symbolic link, or a folder."""
    p = Path(path)
    if p.is_symlink():
        try:
            target = os.stat(p)
        except OSError:
            return "link"  # dangling
        return "special" if not (stat.S_ISREG(target.st_mode) or stat.S_ISDIR(target.st_mode)) else "link"
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        return "new"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "special"


def ensure_writable(path: str | Path, force: bool) -> None:
    """Raise :class:`OutputExistsError` when writing ``path`` is refused: a folder; an existing file without
    ``force``; a symbolic link (spev never replaces a link by a file).  Special files (``/dev/stdout``, a
    FIFO) are written through, with or without ``force``.  :func:`atomic_output` checks again at the end."""
    kind = output_kind(path)
    if kind == "dir":
        raise OutputExistsError(f"{path}: is a directory")
    if kind == "link":
        raise OutputExistsError(f"{path}: is a symbolic link (write to its target instead)")
    if kind == "file" and not force:
        raise OutputExistsError(f"{path}: exists (use --force to overwrite)")


@contextlib.contextmanager
def atomic_output(path: str | Path, *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Write ``path`` via a temporary file in the same folder, moved into place only on success.

    On any exception (``KeyboardInterrupt`` and SIGTERM included, see :mod:`sparsecodec.jobs.procs`) the
    temporary file is removed and nothing is left behind. ``overwrite=False`` decides "exists" at the final
    step, with no-replace semantics (a hard link, then the temporary is unlinked), so two writers never
    clobber each other: the second gets :class:`~sparsecodec.errors.OutputExistsError`. A special file
    (``/dev/stdout``, a FIFO, a device) is written directly, never replaced; a symbolic link is refused
    (:func:`ensure_writable`).
    """
    path = Path(path)
    kind = output_kind(path)
    if kind == "special":
        with open(path, "wb") as direct:
            yield direct
        return
    ensure_writable(path, force=overwrite)
    folder = path.parent if str(path.parent) else Path(".")
    with contextlib.ExitStack() as stack:
        with procs.stop_held():  # in a worker: a stop waits until the temporary is registered
            try:
                fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
            except OSError as exc:
                raise OutputExistsError(f"{path}: cannot write ({exc.strerror or exc})") from None
            stack.callback(_unlink_quietly, tmp_name)
            stack.enter_context(procs.worker_temp(tmp_name))  # removed if a worker is stopped
        # mkstemp creates 0600; give the output the mode a plain open() would (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            _move_into_place(tmp_name, path, overwrite)


def _unlink_quietly(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)


def _move_into_place(tmp_name: str, path: Path, overwrite: bool) -> None:
    """``tmp_name`` becomes ``path``: replacing it (``overwrite``) or only if nothing is there by then."""
    if overwrite:
        if output_kind(path) == "link":  # appeared since the start: never replace a link by a file
            raise OutputExistsError(f"{path}: is a symbolic link (write to its target instead)")
        os.replace(tmp_name, path)
        return
    try:
        os.link(tmp_name, path)  # fails if path exists, atomically: the no-replace rename
    except FileExistsError:
        raise OutputExistsError(f"{path}: exists (use --force to overwrite)") from None
    except OSError as exc:  # a filesystem without hard links: the check and the rename are then two steps
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if output_kind(path) != "new":
            raise OutputExistsError(f"{path}: exists (use --force to overwrite)") from None
        os.replace(tmp_name, path)
