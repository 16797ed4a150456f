"""Batch conversion of whole folder trees: ``spev batch encode|decode SRC DST``.

The tree under ``SRC`` is mirrored under ``DST`` (audio → ``.spev`` when encoding, ``.spev`` →
``.wav``/``.flac`` when decoding).  Files run in parallel, on local worker processes
(:class:`concurrent.futures.ProcessPoolExecutor`, spawn-safe) or as Ray tasks on a cluster.  A run is
*resumable*: every output is written to a hidden temporary file and renamed into place only when complete, so
an output that exists is finished and is skipped on the next run (``force`` redoes it); temporaries a killed
run left behind are removed at the start of the next one.

Each file's outcome is appended, one JSON object per line, to ``DST/spev-manifest.jsonl`` (written only by the
driver process, one ``write`` per line).  Fields: ``input``, ``output``, ``status`` (``ok``/``skipped``/
``failed``), ``error`` (one line or ``null``), ``code`` (the per-file exit code, 0 when not failed),
``duration`` (audio seconds or ``null``), ``kbps`` (of the ``.spev`` file or ``null``), ``seconds`` (wall time
spent on the file), ``time`` (UTC, ISO 8601).

No torch import here: worker processes import the codec on first use; their math-library threads are capped
through ``OMP_NUM_THREADS`` (set before torch loads) and ``torch.set_num_threads`` once it has.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from sparsecodec.errors import BatchError, OutputExistsError, SpevError, UsageError
from sparsecodec.jobs import procs
from sparsecodec.jobs.plan import Job, exists_action, plan_tree

Mode = Literal["encode", "decode"]
Engine = Literal["local", "ray"]

MANIFEST_NAME = "spev-manifest.jsonl"
"""The manifest's file name inside ``DST``."""
LOCK_NAME = ".spev-batch.lock"
"""Lock file inside ``DST``: one batch run writes to a destination at a time."""
TEMP_MARK = ".spevtmp"
"""Every temporary output's name contains this mark (and starts with a dot); stale ones are removed."""
MAX_MANIFEST_BYTES = 1 << 30
"""A manifest larger than this is not repaired or read back (it is still appended to)."""

DECODE_FORMATS = ("wav", "flac")
"""Output formats of ``spev batch decode``."""


def audio_extensions() -> frozenset[str]:
    """Lower-case extensions (no dot) ``spev batch encode`` picks up: those of ``spev encode -r``."""
    from sparsecodec.audio.io import AUDIO_SUFFIXES

    return frozenset(suffix.lstrip(".").lower() for suffix in AUDIO_SUFFIXES)


@dataclass
class FileResult:
    """The outcome of one file; one manifest line."""

    input: str
    output: str
    status: Literal["ok", "skipped", "failed"]
    error: str | None = None
    code: int = 0
    duration: float | None = None
    kbps: float | None = None
    seconds: float = 0.0
    time: str = ""

    def to_json(self) -> str:
        """One manifest line (ends with a newline)."""
        return json.dumps(asdict(self), ensure_ascii=False, allow_nan=False) + "\n"


@dataclass
class BatchSummary:
    """What a run did.  ``wall_s`` is the run's wall time, ``jobs`` the parallelism used."""

    mode: Mode
    engine: Engine
    jobs: int
    results: list[FileResult] = field(default_factory=list)
    wall_s: float = 0.0
    manifest: str | None = None

    def count(self, status: str) -> int:
        """How many files ended with ``status``."""
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[FileResult]:
        """The failed files, in manifest order."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def audio_s(self) -> float:
        """Seconds of audio converted in this run (files with status ``ok``)."""
        return sum(r.duration or 0.0 for r in self.results if r.status == "ok")

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, else :class:`BatchError`'s code."""
        return BatchError.exit_code if self.failed else 0


# --------------------------------------------------------------------------------------------- planning


# The codec's own temporaries (audio_io.atomic_output): ".NAME.XXXXXXXX.tmp" next to the output NAME.
_CODEC_TEMP = re.compile(r"^\..+\.(?:spev|wav|flac)\.[A-Za-z0-9_]{4,16}\.tmp$")


def _is_temp(name: str) -> bool:
    return name.startswith(".") and (TEMP_MARK in name or _CODEC_TEMP.match(name) is not None)


def temp_path(dst: str | Path, tag: str = "") -> Path:
    """The hidden temporary a worker writes before renaming onto ``dst`` (keeps ``dst``'s extension)."""
    p = Path(dst)
    return p.with_name(f".{p.name}.{os.getpid()}{tag}{TEMP_MARK}{p.suffix}")


def plan(
    src: str | Path, dst: str | Path, mode: Mode, *, fmt: str = "wav"
) -> tuple[list[Job], list[FileResult]]:
    """Mirror the tree under ``src`` into jobs under ``dst`` (:func:`sparsecodec.jobs.plan.plan_tree`).

    ``src`` may also be a single file.  Returns ``(jobs, failures)``: failures are inputs whose output name
    collides with an earlier input's (``a.wav`` and ``a.flac`` both → ``a.spev``).
    Raises :class:`InputError` when ``src`` does not exist, :class:`UsageError` for a bad mode or format.
    """
    if mode not in ("encode", "decode"):
        raise UsageError(f"unknown batch mode {mode!r}")
    if mode == "decode" and fmt not in DECODE_FORMATS:
        raise UsageError(f"unknown output format {fmt!r} (choose from {', '.join(DECODE_FORMATS)})")
    exts = audio_extensions() if mode == "encode" else frozenset({"spev"})
    suffix = ".spev" if mode == "encode" else f".{fmt}"
    planned = plan_tree(src, dst, suffix, lambda p: p.suffix.lstrip(".").lower() in exts)
    jobs = [Job(j.src, j.dst) for j in planned if j.error is None]
    failures = [
        FileResult(j.src, str(j.dst), "failed", str(j.error), j.error.exit_code)
        for j in planned
        if j.error is not None
    ]
    return jobs, failures


def clean_stale_temps(dst: str | Path) -> int:
    """Remove temporaries a killed run left under ``dst``; returns how many.  Hold the lock to call it."""
    removed = 0
    for root, _dirs, files in os.walk(dst):
        for name in files:
            if _is_temp(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(root, name))
                    removed += 1
    return removed


# --------------------------------------------------------------------------------------------- manifest


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


class Manifest:
    """Appends one JSON line per file to ``path``; each line goes out in a single ``write`` (O_APPEND).

    On open, a partial last line (a run killed mid-write) is cut off so the file stays valid JSON Lines.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._repair()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _repair(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0 or size > MAX_MANIFEST_BYTES:
            return
        with open(self.path, "rb+") as f:
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            f.seek(max(0, size - (1 << 20)))
            tail = f.read()
            cut = tail.rfind(b"\n")
            f.truncate(size - len(tail) + cut + 1 if cut >= 0 else max(0, size - len(tail)))

    def write(self, result: FileResult) -> None:
        """Append ``result`` as one line."""
        data = result.to_json().encode("utf-8")
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def close(self) -> None:
        """Flush to disk and close."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """All complete lines of a manifest as dicts (a partial last line is ignored)."""
    p = Path(path)
    if p.stat().st_size > MAX_MANIFEST_BYTES:
        raise UsageError(f"{p}: manifest larger than {MAX_MANIFEST_BYTES} bytes")
    out = []
    with open(p, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n") and line.strip():
                out.append(json.loads(line))
    return out


@contextlib.contextmanager
def _dst_lock(dst: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``DST`` for the run (released by the OS if the process is killed)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        yield
        return
    fd = os.open(dst / LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputExistsError(f"{dst}: another spev batch run is writing here") from None
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------- worker

_CODEC_FUNCS = {"encode": "sparsecodec.api:encode_file", "decode": "sparsecodec.api:decode_file"}


def _init_worker(threads: int) -> None:
    """Worker initializer: die with the parent, clean up on SIGTERM (:func:`procs.worker_init`), and cap
    math-library threads (before torch/numpy start their pools)."""
    procs.worker_init()
    n = str(max(1, threads))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = n


def _set_torch_threads(threads: int) -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _resolve(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    fn = getattr(importlib.import_module(module), name)
    if not callable(fn):
        raise TypeError(f"{spec} is not callable")
    return fn


def _audio_duration(path: str) -> float | None:
    try:
        import soundfile

        info = soundfile.info(path)
        return float(info.frames) / float(info.samplerate) if info.samplerate > 0 else None
    except Exception:
        return None


def _spev_duration(path: str) -> float | None:
    try:
        container = importlib.import_module("sparsecodec.format.container")
        with open(path, "rb") as f:
            h = container.Reader(f).header
        return float(h.n_samples) / float(h.sample_rate) if h.sample_rate > 0 else None
    except Exception:
        return None


def _result_float(res: Any, *names: str) -> float | None:
    for name in names:
        v = res.get(name) if isinstance(res, dict) else getattr(res, name, None)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def _describe(mode: Mode, src: str, dst: str, res: Any) -> tuple[float | None, float | None]:
    """(duration s, kbps of the .spev) of a finished conversion."""
    duration = _result_float(res, "duration", "duration_s")
    if duration is None:
        duration = _audio_duration(src) if mode == "encode" else _audio_duration(dst)
    spev = dst if mode == "encode" else src
    kbps = _result_float(res, "kbps") if mode == "encode" else None
    if kbps is None and duration:
        with contextlib.suppress(OSError):
            kbps = os.path.getsize(spev) * 8.0 / duration / 1000.0
    return duration, kbps


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    if not isinstance(exc, SpevError):
        msg = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return msg[:500]


def convert_one(
    mode: Mode, src: str, dst: str, options: dict[str, Any], threads: int = 1, impl: str | None = None
) -> FileResult:
    """Convert one file (runs in a worker process or Ray task; never raises).

    Writes ``dst`` atomically: into a hidden temporary next to it (fsync'd), then ``os.replace``.
    ``impl`` (``"module:function"``) replaces the codec function, for tests and tools.
    """
    t0 = time.perf_counter()
    tmp = temp_path(dst)
    result = FileResult(src, dst, "failed")
    try:
        fn = _resolve(impl or _CODEC_FUNCS[mode])
        _set_torch_threads(max(1, threads))  # if torch is loaded; before that, OMP_NUM_THREADS rules
        if os.path.isdir(dst):
            raise OutputExistsError(f"{dst}: is a directory")
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        with procs.worker_temp(str(tmp)):
            res = fn(src, str(tmp), **options)
            _set_torch_threads(max(1, threads))  # the codec may have imported torch just now
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, dst)
        result.status = "ok"
        result.duration, result.kbps = _describe(mode, src, dst, res)
    except SpevError as exc:
        result.error, result.code = _one_line(exc), exc.exit_code
    except Exception as exc:
        result.error, result.code = _one_line(exc), 1
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    result.seconds = time.perf_counter() - t0
    result.time = _utc_now()
    return result


# --------------------------------------------------------------------------------------------- engines

OnResult = Callable[[FileResult], None]


def _run_local(
    todo: Sequence[Job],
    mode: Mode,
    options: dict[str, Any],
    jobs: int,
    threads: int,
    impl: str | None,
    on_result: OnResult,
) -> None:
    """Run ``todo`` on a pool of ``jobs`` spawned processes, at most ``2 * jobs`` files in flight.

    When a worker dies (killed for memory, a crash in native code) the pool breaks and every file then in
    flight becomes a suspect: suspects are retried one at a time in a fresh pool, so only a file that kills
    its worker on its own is recorded as failed.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")
    queue = list(reversed(todo))
    suspects: list[Job] = []
    first = True
    while queue or suspects:
        pool = ProcessPoolExecutor(
            max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
        )
        inflight: dict[Future[FileResult], tuple[Job, bool]] = {}  # future -> (job, run alone?)
        try:
            if first:  # a pool that cannot start at all is a run-level error, not N failed files
                first = False
                try:
                    pool.submit(os.getpid).result()
                except BrokenProcessPool:
                    raise SpevError(
                        "batch worker processes cannot start (from a script: guard it with "
                        "if __name__ == '__main__')"
                    ) from None
            broken = False
            while inflight or (not broken and (queue or suspects)):
                if not broken and suspects and not inflight:
                    job = suspects.pop()
                    inflight[pool.submit(convert_one, mode, job.src, _out(job), options, threads, impl)] = (
                        job,
                        True,
                    )
                while not broken and not suspects and queue and len(inflight) < 2 * jobs:
                    job = queue.pop()
                    fut = pool.submit(convert_one, mode, job.src, _out(job), options, threads, impl)
                    inflight[fut] = (job, False)
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in done:
                    job, alone = inflight.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        if alone:
                            error = "its worker process died (killed for memory? a crash?)"
                            on_result(FileResult(job.src, _out(job), "failed", error, 1, time=_utc_now()))
                        else:
                            suspects.append(job)
                        continue
                    on_result(result)
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM) or failing: stop the workers now, so none finishes a file after
            # the lock is released; each removes its temporary output (procs.worker_init).
            procs.stop_workers(getattr(pool, "_processes", None) or {})
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def _import_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`UsageError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError("--engine ray needs Ray: pip install 'spev[ray]'") from None
    return ray


def _run_ray(
    todo: Sequence[Job],
    mode: Mode,
    options: dict[str, Any],
    jobs: int | None,
    address: str | None,
    impl: str | None,
    on_result: OnResult,
) -> int:
    """Run ``todo`` as Ray tasks (``num_cpus=1`` each); returns the parallelism used.

    Joins the running Ray instance if this process already has one, else ``ray.init(address)`` (a cluster) or
    a local instance with ``jobs`` CPUs.  Results stream back with ``ray.wait`` as they finish.
    """
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=jobs or procs.usable_cpus(), **kw)
        started = True
        if threading.current_thread() is threading.main_thread():
            procs.terminate_like_interrupt()  # ray.init installs its own SIGTERM handler; ours cleans up
    inflight: dict[Any, Job] = {}
    try:
        parallel = jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
        # --jobs caps the tasks running at once; by default keep the cluster's CPUs busy with a queue of 2x
        cap = jobs or 2 * parallel
        task = ray.remote(num_cpus=1)(convert_one)
        queue = list(reversed(todo))
        while queue or inflight:
            while queue and len(inflight) < cap:
                job = queue.pop()
                # absolute paths: a task may run on another node, in another working directory
                src_abs, dst_abs = os.path.abspath(job.src), os.path.abspath(_out(job))
                inflight[task.remote(mode, src_abs, dst_abs, options, 1, impl)] = job
            done, _ = ray.wait(list(inflight), num_returns=1)
            for ref in done:
                job = inflight.pop(ref)
                try:
                    result = ray.get(ref)
                    result.input, result.output = job.src, job.dst  # the manifest speaks the driver's paths
                    on_result(result)
                except Exception as exc:  # the task's worker or node died (after Ray's retries)
                    on_result(FileResult(job.src, _out(job), "failed", _one_line(exc), 1, time=_utc_now()))
        return parallel
    except BaseException:
        if not started:
            # A cluster we joined: stop our tasks there.  With the local instance we started, shutdown() below
            # stops every worker; cancelling first can race a task's own completion inside Ray's task
            # manager (ray-project/ray#54798) and abort the driver with a RAY_CHECK (exit 1, not 143).
            for ref in inflight:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------------------------- driver


def default_jobs() -> int:
    """Worker processes by default: the CPUs this process may use (:func:`procs.usable_cpus`)."""
    return procs.usable_cpus()


def _out(job: Job) -> str:
    """``job``'s output path (every job :func:`plan` makes has one)."""
    assert job.dst is not None
    return job.dst


def _skipped(job: Job, mode: Mode) -> FileResult:
    dst = _out(job)
    duration = _spev_duration(dst) if mode == "encode" else _audio_duration(dst)
    spev = dst if mode == "encode" else job.src
    kbps = None
    if duration:
        with contextlib.suppress(OSError):
            kbps = os.path.getsize(spev) * 8.0 / duration / 1000.0
    return FileResult(job.src, dst, "skipped", duration=duration, kbps=kbps, time=_utc_now())


def run_batch(
    src: str | Path,
    dst: str | Path,
    mode: Mode,
    *,
    jobs: int | None = None,
    engine: Engine = "local",
    address: str | None = None,
    force: bool = False,
    fmt: str = "wav",
    options: dict[str, Any] | None = None,
    on_result: OnResult | None = None,
    on_plan: Callable[[int], None] | None = None,
    impl: str | None = None,
) -> BatchSummary:
    """Convert every file under ``src`` into the mirrored tree under ``dst``; per-file errors never raise.

    ``mode`` ``"encode"`` (audio → .spev) or ``"decode"`` (.spev → ``fmt``).  ``options`` go to
    ``codec.encode_file`` / ``codec.decode_file`` (e.g. ``{"kbps": 3}``).  Existing outputs are skipped unless
    ``force``.  ``jobs``: worker processes (default: CPUs) or, with Ray, tasks in flight (default: the
    cluster's CPUs).  ``on_plan`` gets the number of files once the tree is walked; ``on_result`` is
    called in this process for every file as it finishes.
    Returns a :class:`BatchSummary`; its ``exit_code`` is :class:`BatchError`'s when some file failed.
    Raises :class:`SpevError` for run-level problems (missing ``src``, bad options, ``dst`` locked, no Ray).
    """
    if engine not in ("local", "ray"):
        raise UsageError(f"unknown engine {engine!r} (choose local or ray)")
    if jobs is not None and jobs < 1:
        raise UsageError("--jobs must be at least 1")
    opts = dict(options or {})
    if mode == "decode":
        opts.setdefault("fmt", fmt)
    if engine == "ray":
        _import_ray()  # fail early, before walking the tree
    t0 = time.perf_counter()
    all_jobs, failures = plan(src, dst, mode, fmt=fmt)
    if on_plan is not None:
        on_plan(len(all_jobs) + len(failures))
    dst_p = Path(dst)
    try:
        dst_p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputExistsError(f"{dst}: cannot create the output folder ({exc.strerror})") from None
    n_local = jobs or default_jobs()
    summary = BatchSummary(mode, engine, n_local if engine == "local" else (jobs or 0))
    with _dst_lock(dst_p), Manifest(dst_p / MANIFEST_NAME) as manifest:
        summary.manifest = str(manifest.path)
        clean_stale_temps(dst_p)

        def record(r: FileResult) -> None:
            if not r.time:
                r.time = _utc_now()
            summary.results.append(r)
            manifest.write(r)
            if on_result is not None:
                on_result(r)

        todo: list[Job] = []
        for job in all_jobs:
            if exists_action(str(job.dst), force) == "skip":
                record(_skipped(job, mode))
            else:
                todo.append(job)
        for r in failures:
            record(r)
        try:
            if todo and engine == "local":
                n_local = min(n_local, len(todo))
                summary.jobs = n_local
                threads = max(1, default_jobs() // n_local)
                _run_local(todo, mode, opts, n_local, threads, impl, record)
            elif todo:
                summary.jobs = _run_ray(todo, mode, opts, jobs, address, impl, record)
        except BaseException:
            # Interrupted or failing: the engines have stopped their workers; a worker killed hard (a Ray task
            # cancelled with force) leaves its temporary, removed here while the lock is still held.
            clean_stale_temps(dst_p)
            raise
    summary.wall_s = time.perf_counter() - t0
    return summary


# --------------------------------------------------------------------------------------------- report


def _fmt_duration(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.2f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"


def print_summary(summary: BatchSummary, file: IO[str] | None = None, max_failures: int = 20) -> None:
    """A rich table of the run on ``file`` (default stderr): counts, audio, throughput, failed files."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=file or sys.stderr, highlight=False, soft_wrap=False)
    ok, skipped, failed = summary.count("ok"), summary.count("skipped"), summary.count("failed")
    table = Table(title=f"spev batch {summary.mode}", show_header=True, title_justify="left")
    for col in ("ok", "skipped", "failed", "audio", "wall", "files/s", "audio h/h", "engine"):
        table.add_column(col, justify="right")
    wall = max(summary.wall_s, 1e-9)
    table.add_row(
        str(ok),
        str(skipped),
        f"[red]{failed}[/red]" if failed else "0",
        _fmt_duration(summary.audio_s),
        _fmt_duration(summary.wall_s),
        f"{ok / wall:.2f}",
        f"{summary.audio_s / wall:.1f}",
        f"{summary.engine} ×{summary.jobs}",
    )
    console.print(table)
    if failed:
        errs = Table(show_header=True, title="failed", title_justify="left")
        errs.add_column("input", overflow="fold")
        errs.add_column("code", justify="right")
        errs.add_column("error", overflow="fold")
        for r in summary.failed[:max_failures]:
            errs.add_row(Text(r.input), str(r.code), Text(r.error or ""))  # names are never markup
        console.print(errs)
        if failed > max_failures:
            console.print(Text(f"… and {failed - max_failures} more; see {summary.manifest}"))
    if summary.manifest:
        console.print(Text(f"manifest: {summary.manifest}"))


def failure_line(r: FileResult) -> str:
    """``input: error`` (without naming the input twice when the error already does)."""
    error = r.error or "failed"
    return error if r.input in error else f"{r.input}: {error}"


def raise_for_failures(summary: BatchSummary) -> None:
    """Raise when some file failed: :class:`BatchError` (exit status 6), or the file's own error when the run
    had a single input (the rule of ``spev encode``)."""
    failed = summary.failed
    if len(summary.results) == 1 and failed:
        exc = SpevError(failure_line(failed[0]))
        exc.exit_code = failed[0].code
        raise exc
    if failed:
        worst = max(r.code for r in failed)
        n = len(summary.results)
        raise BatchError(f"{len(failed)} of {n} files failed (worst code {worst}); see {summary.manifest}")
