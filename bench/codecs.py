"""The codecs the benchmark compares, each run end to end through its command-line tools.

Every codec turns a WAV file into a coded file and back into a WAV (any rate, any channel count: the harness
resamples with soxr and aligns).  Wall times include process start-up; they are measured with the commands
limited to 2 threads (``OMP_NUM_THREADS=2`` etc., and ``taskset`` on 2 CPUs where there are more) and peak
memory is the command's own max RSS (GNU ``/usr/bin/time -f %M``).

Decoder delay: ``opusdec`` removes Opus' pre-skip itself, so Opus is scored as decoded; ``lame --decode``
output carries the encoder delay / padding, which the harness removes by cross-correlation
(:func:`bench.metrics.align`; MP3 and Codec2 — whose decode is 15-35 ms late — are the rows with
``shift_to_align``).  spev must come out sample-aligned
and is scored as decoded (no shift: a timing bias must cost it); for every row the cross-correlation lag is
still measured and reported as ``lag_ms`` (negative: the decode is early).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from sparsecodec.errors import SpevError

THREADS = 2
SPEECH_CATEGORIES = ("speech", "voice")
"""Dev-set categories of speech (scored in ViSQOL speech mode and PESQ-WB; the only ones Codec2 runs on)."""
NON_SPEECH = ("music", "notes", "notes-fp", "long")
MAX_EXPORT_BYTES = 256 << 20
"""Bound on a ``spev export --format json`` output read back."""


class CodecError(SpevError):
    """A codec command failed or timed out (recorded per clip; the run goes on)."""


@dataclass
class CodecResult:
    """What one encode + decode of one clip produced.  Times in s, memory in MB (None: not measured)."""

    decoded: Path
    n_bytes: int | None
    encode_s: float | None = None
    decode_s: float | None = None
    encode_rss_mb: float | None = None
    decode_rss_mb: float | None = None
    coded: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def limited_env() -> dict[str, str]:
    """The environment with thread pools capped at :data:`THREADS`."""
    env = dict(os.environ)
    for var in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "NUMBA_NUM_THREADS",
    ):
        env[var] = str(THREADS)
    return env


def _taskset_prefix() -> list[str]:
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return []
    taskset = shutil.which("taskset")
    if taskset is None or len(cpus) <= THREADS:
        return []
    return [taskset, "-c", ",".join(str(c) for c in cpus[:THREADS])]


def run_timed(cmd: list[str], timeout_s: float, stdout: Path | None = None) -> tuple[float, float | None]:
    """Run ``cmd`` on 2 threads; return ``(wall_s, peak_rss_mb)``.  Raises :class:`CodecError` on a non-zero
    exit (with the tail of stderr) or after ``timeout_s`` (the process group is killed).

    Peak memory comes from GNU ``/usr/bin/time -f %M`` (None when it is missing): ``os.wait4`` on our own
    child would report this Python process's RSS, which a forked child inherits as its high-water mark.
    """
    gnu_time = shutil.which("time", path="/usr/bin")
    with tempfile.TemporaryDirectory() as tmp, open(stdout or os.devnull, "wb") as out:
        err_path, rss_path = Path(tmp) / "stderr", Path(tmp) / "rss"
        wrap = [gnu_time, "-q", "-f", "%M", "-o", str(rss_path)] if gnu_time else []
        with open(err_path, "wb") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [*_taskset_prefix(), *wrap, *cmd],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=limited_env(),
                start_new_session=True,
            )
            timed_out = threading.Event()

            def _kill() -> None:
                timed_out.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

            timer = threading.Timer(timeout_s, _kill)
            timer.start()
            try:
                code = proc.wait()
            except BaseException:  # Ctrl-C / SIGTERM of the harness: take the command's group down too
                _kill()
                raise
            finally:
                timer.cancel()
            wall = time.perf_counter() - t0
        label = " ".join([Path(cmd[0]).name, *cmd[1:2]]) if cmd[0] != sys.executable else " ".join(cmd[1:4])
        if timed_out.is_set():
            raise CodecError(f"{label}: timed out after {timeout_s:.0f} s")
        if code != 0:
            tail = err_path.read_bytes()[-600:].decode("utf-8", "replace").strip()
            raise CodecError(f"{label}: exit {code}: {tail}")
        rss_mb = None
        with contextlib.suppress(OSError, ValueError, IndexError):
            rss_mb = int(rss_path.read_text().split()[-1]) / 1024.0  # KiB -> MiB
    return wall, rss_mb


class Codec(ABC):
    """One row family of the table: ``name`` labels the row, ``family`` groups rows in the plot."""

    name: str = "codec"
    family: str = "other"
    nominal_kbps: float | None = None
    shift_to_align: bool = False
    """Remove a decoder delay by cross-correlation before scoring (only for codecs known to add one)."""
    skip_categories: tuple[str, ...] = ()
    """Dev-set categories this row does not run on (no row is written for them)."""
    scores_audio: bool = True
    """False for a transcriber row: it decodes nothing, only its notes are scored."""
    transcribes: bool = False
    """The row yields notes (``CodecResult.extra["export"]`` or ``["notes"]``), scored on note clips."""

    @abstractmethod
    def run(self, src: Path, workdir: Path, timeout_s: float) -> CodecResult:
        """Encode and decode ``src`` (WAV) inside ``workdir``."""

    def available(self) -> str | None:
        """``None`` when the codec can run here, else why not."""
        return None

    def prepare(self, srcs: list[Path], timeout_s: float) -> None:  # noqa: B027 (optional, not abstract)
        """Optional batch work before the clips run one by one (e.g. one transcriber process for all)."""


def _need(*tools: str) -> str | None:
    missing = [t for t in tools if shutil.which(t) is None]
    return f"missing {', '.join(missing)} (run bench/setup.sh)" if missing else None


class OpusCodec(Codec):
    """``opusenc --bitrate K`` then ``opusdec`` (48 kHz output, pre-skip removed by opusdec)."""

    family = "opus"

    def __init__(self, kbps: float) -> None:
        self.nominal_kbps = kbps
        self.name = f"opus-{kbps:g}"

    def available(self) -> str | None:
        return _need("opusenc", "opusdec")

    def run(self, src: Path, workdir: Path, timeout_s: float) -> CodecResult:
        coded, dec = workdir / "coded.opus", workdir / "decoded.wav"
        cmd = ["opusenc", "--quiet", "--bitrate", f"{self.nominal_kbps:g}", str(src), str(coded)]
        enc_s, enc_mb = run_timed(cmd, timeout_s)
        dec_s, dec_mb = run_timed(["opusdec", "--quiet", str(coded), str(dec)], timeout_s)
        return CodecResult(dec, coded.stat().st_size, enc_s, dec_s, enc_mb, dec_mb, coded)


class Mp3Codec(Codec):
    """``lame -b K`` (CBR) then ``lame --decode``; the decoded delay is removed by alignment."""

    family = "mp3"
    shift_to_align = True

    def __init__(self, kbps: float) -> None:
        self.nominal_kbps = kbps
        self.name = f"mp3-{kbps:g}"

    def available(self) -> str | None:
        return _need("lame")

    def run(self, src: Path, workdir: Path, timeout_s: float) -> CodecResult:
        coded, dec = workdir / "coded.mp3", workdir / "decoded.wav"
        enc_s, enc_mb = run_timed(
            ["lame", "--quiet", "-b", f"{self.nominal_kbps:g}", str(src), str(coded)], timeout_s
        )
        dec_s, dec_mb = run_timed(["lame", "--quiet", "--decode", str(coded), str(dec)], timeout_s)
        return CodecResult(dec, coded.stat().st_size, enc_s, dec_s, enc_mb, dec_mb, coded)


CODEC2_RATE = 8000
"""Codec2 codes 8 kHz mono s16 (raw, headerless)."""
CODEC2_MODES = {"3200": 3.2, "1200": 1.2, "700C": 0.7}
"""The Codec2 rows: mode -> nominal kbps (700C: 28 bits per 40 ms frame, stored in 4 bytes: 0.8 kbps true)."""


def codec2_commands(mode: str, raw: Path, coded: Path, decoded: Path) -> tuple[list[str], list[str]]:
    """``(c2enc ..., c2dec ...)`` for one mode: 8 kHz s16 raw in, headerless bit file, 8 kHz s16 raw out."""
    if mode not in CODEC2_MODES:
        raise ValueError(f"unknown Codec2 mode {mode!r} (known: {', '.join(CODEC2_MODES)})")
    return ["c2enc", mode, str(raw), str(coded)], ["c2dec", mode, str(coded), str(decoded)]


def to_s16(x: np.ndarray) -> bytes:
    """float mono in [-1, 1] -> little-endian s16 bytes (clipped, rounded)."""
    return (np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def from_s16(data: bytes) -> np.ndarray:
    """Little-endian s16 bytes -> float32 in [-1, 1)."""
    return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0


class Codec2Codec(Codec):
    """Debian ``codec2``: the input's mono downmix resampled (soxr) to 8 kHz s16 raw, ``c2enc MODE``,
    ``c2dec MODE``; the 8 kHz decode goes back to the clip's rate in the harness.  Speech categories only.
    The true rate is the headerless bit file's size.  Its decode lags 15-35 ms (mode-dependent), removed by
    alignment before scoring like MP3's."""

    family = "codec2"
    shift_to_align = True
    skip_categories = NON_SPEECH

    def __init__(self, mode: str) -> None:
        if mode not in CODEC2_MODES:
            raise ValueError(f"unknown Codec2 mode {mode!r}")
        self.mode, self.nominal_kbps = mode, CODEC2_MODES[mode]
        self.name = f"codec2-{mode.lower()}"

    def available(self) -> str | None:
        return _need("c2enc", "c2dec")

    def run(self, src: Path, workdir: Path, timeout_s: float) -> CodecResult:
        from bench.metrics import resample, to_mono

        audio, sr = sf.read(str(src), dtype="float32", always_2d=True)
        raw, coded, out = workdir / "input-8k.raw", workdir / "coded.c2bits", workdir / "decoded-8k.raw"
        raw.write_bytes(to_s16(resample(to_mono(audio.T), int(sr), CODEC2_RATE)))
        enc, dec = codec2_commands(self.mode, raw, coded, out)
        enc_s, enc_mb = run_timed(enc, timeout_s)
        dec_s, dec_mb = run_timed(dec, timeout_s)
        decoded = workdir / "decoded.wav"
        sf.write(str(decoded), from_s16(out.read_bytes()), CODEC2_RATE, subtype="FLOAT")
        return CodecResult(decoded, coded.stat().st_size, enc_s, dec_s, enc_mb, dec_mb, coded)


def spev_command() -> list[str]:
    """The ``spev`` CLI: the installed script, else ``python -m sparsecodec.cli``."""
    exe = shutil.which("spev")
    return [exe] if exe else [sys.executable, "-m", "sparsecodec.cli"]


class SpevCodec(Codec):
    """``spev encode [--kbps K] [--refine N]``, ``spev decode``; ``spev export --format json`` untimed."""

    family = "spev"
    transcribes = True

    def __init__(
        self,
        name: str,
        kbps: float | None = None,
        refine: int = 0,
        extra_args: tuple[str, ...] = (),
        skip_categories: tuple[str, ...] = (),
    ) -> None:
        self.name, self.nominal_kbps, self.refine, self.extra_args = name, kbps, refine, extra_args
        self.skip_categories = skip_categories

    def run(self, src: Path, workdir: Path, timeout_s: float) -> CodecResult:
        spev = spev_command()
        coded, dec, exp = workdir / "coded.spev", workdir / "decoded.wav", workdir / "events.json"
        # --force: the bench's own scratch folder, which a rerun (or an interrupted run) into --out leaves
        args = [*spev, "encode", str(src), str(coded), "--force", *self.extra_args]
        if self.nominal_kbps is not None:
            args += ["--kbps", f"{self.nominal_kbps:g}"]
        if self.refine:
            args += ["--refine", str(self.refine)]
        enc_s, enc_mb = run_timed(args, timeout_s)
        dec_s, dec_mb = run_timed([*spev, "decode", str(coded), str(dec), "--force"], timeout_s)
        res = CodecResult(dec, coded.stat().st_size, enc_s, dec_s, enc_mb, dec_mb, coded)
        try:
            run_timed([*spev, "export", str(coded), "--format", "json"], timeout_s, stdout=exp)
            if exp.stat().st_size > MAX_EXPORT_BYTES:
                raise CodecError(f"export JSON larger than {MAX_EXPORT_BYTES} bytes")
            res.extra["export"] = json.loads(exp.read_text())
        except (CodecError, ValueError, OSError) as e:
            res.extra["export_error"] = str(e)
        return res


class CeilingCodec(Codec):
    """The band-limit ceiling: resample to ``rate`` and back with soxr, no coding (no bytes, no times)."""

    family = "ceiling"

    def __init__(self, rate: int = 22050) -> None:
        self.rate = rate
        self.name = f"ceiling-{rate // 1000 if rate % 1000 == 0 else rate / 1000:g}k"

    def run(self, src: Path, workdir: Path, timeout_s: float) -> CodecResult:
        from bench.metrics import resample

        audio, sr = sf.read(str(src), dtype="float32", always_2d=True)
        low = resample(audio.T, sr, self.rate)
        back = resample(low, self.rate, sr)
        dec = workdir / "decoded.wav"
        sf.write(str(dec), np.clip(back.T, -1, 1), sr, subtype="FLOAT")
        return CodecResult(dec, None)


class BasicPitchCodec(Codec):
    """The transcriber row: basic-pitch (its own venv, default thresholds; :mod:`bench.transcribe`) on the
    notes clips.  Nothing is coded or decoded: ``decoded`` is the input and only the notes are scored."""

    name = "basic-pitch"
    family = "transcriber"
    scores_audio = False
    transcribes = True
    skip_categories = ("music", "speech", "voice", "long")

    def available(self) -> str | None:
        from bench.transcribe import BASIC_PITCH_VENV, basic_pitch_python

        return (
            None if basic_pitch_python() else f"basic-pitch is not in {BASIC_PITCH_VENV} (run bench/setup.sh)"
        )

    def prepare(self, srcs: list[Path], timeout_s: float) -> None:
        from bench.transcribe import TranscriberError, basic_pitch

        if srcs and self.available() is None:
            with contextlib.suppress(TranscriberError, OSError, ValueError, KeyError):
                basic_pitch(srcs, timeout_s)  # fills the cache; a failure shows again per clip

    def run(self, src: Path, workdir: Path, timeout_s: float) -> CodecResult:
        from bench.transcribe import TranscriberError, basic_pitch

        try:
            res = basic_pitch([src], timeout_s)[src]
        except (TranscriberError, OSError, ValueError, KeyError) as e:
            raise CodecError(f"basic-pitch: {e}") from e
        notes = [{k: float(n[k]) for k in ("onset", "pitch", "offset")} for n in res["notes"]]
        version = (
            f"basic-pitch {res.get('basic_pitch')} (onnxruntime {res.get('onnxruntime')}, {res.get('model')})"
        )
        extra = {"notes": notes, "transcriber": version, "transcribe_s": res.get("seconds")}
        return CodecResult(src, None, extra=extra)


def default_codecs(quick: bool = False, every_category: bool = False) -> list[Codec]:
    """The rows: spev (default: --kbps 4, the analysis guided by the proposal network), spev --refine 30
    (the best mode), spev --init analysis (the same encoder without the network: same steps and budget),
    --kbps 2 and 8; Opus 6/12; MP3 8; the ceiling; Codec2 3200/1200/700C (speech and voice only); the
    basic-pitch transcriber (notes categories only).

    ``spev-4k`` is not a row of its own: the CLI's default rate is 4 kbps, so the ``spev`` row is it.
    To keep the full run under 45 min, only ``spev``, ``spev-2k``, Opus 6/12 and Codec2 run on the 20 voice
    clips: the other spev variants and MP3 skip them unless ``every_category`` (rows asked for by name:
    ``--codecs spev-refine --clips voice`` runs them)."""
    voice = () if every_category else ("voice",)
    spev: list[Codec] = [SpevCodec("spev")]
    if not quick:  # the variants skip the long track (it tests streaming + memory; keeps the run short)
        spev += [
            SpevCodec("spev-refine", refine=30, skip_categories=("long", *voice)),
            SpevCodec("spev-analysis", extra_args=("--init", "analysis"), skip_categories=("long", *voice)),
            # the rate variants skip notes-fp too (the run stays under 45 min; notes shows the rate trend)
            # spev-2k runs on the voice clips too: #18's first bar is spev at <= 2 kbps against Codec2 1200
            SpevCodec("spev-2k", kbps=2, skip_categories=("long", "notes-fp")),
            SpevCodec("spev-8k", kbps=8, skip_categories=("long", "notes-fp", *voice)),
        ]
    mp3 = Mp3Codec(8)
    mp3.skip_categories = voice
    ceiling = CeilingCodec(22050)
    ceiling.skip_categories = ("voice",)  # 16 kHz clips: a 22.05 kHz band limit is no limit
    codec2 = [Codec2Codec(m) for m in CODEC2_MODES]
    return [*spev, OpusCodec(6), OpusCodec(12), mp3, ceiling, *codec2, BasicPitchCodec()]
