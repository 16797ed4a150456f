"""One module per ``spev`` command, plus the helpers they share: path planning and the many-files loop.

Path forms (like ``cp``):

- ``spev CMD IN OUT`` — one input, one output (``-`` = stdin/stdout);
- ``spev CMD IN`` — output next to the input with the command's suffix (``-`` alone: stdin → stdout);
- ``spev CMD IN... -d OUTDIR`` (or a folder as the last of several arguments) — outputs in ``OUTDIR``;
- ``--recursive`` — folder inputs are walked and their tree mirrored under ``OUTDIR`` (or beside the inputs).

Exit status of a run (docs/cli.md): one input → that input's own code; several inputs → 0 when none failed,
else 6 (:class:`~sparsecodec.errors.BatchError`) after every input was tried, each failure reported on its own
line with its own kind.  An existing output is skipped with a message unless ``--force``: an error (5) for a
single input, a counted skip (not a failure) among several.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import click

from sparsecodec.cli.console import Console
from sparsecodec.errors import BatchError, SpevError, UsageError

STDIO = "-"


def console_for(ctx: click.Context) -> Console:
    """The console configured by the ``--quiet``/``--verbose`` flags given anywhere on the command line."""
    meta = ctx.find_root().meta
    return Console(quiet=bool(meta.get("spev.quiet")), verbose=bool(meta.get("spev.verbose")))


@dataclass
class Job:
    """One input → one output.  ``src``/``dst`` are paths or ``"-"``; ``error`` is set for unusable inputs."""

    src: str
    dst: str | None = None
    error: SpevError | None = None


def _replace_suffix(name: str, suffix: str) -> str:
    p = Path(name)
    return str(p.with_suffix(suffix)) if p.suffix else str(p) + suffix


def _walk(folder: Path, accept: Callable[[Path], bool]) -> list[Path]:
    """Files under ``folder`` that ``accept`` takes, sorted, hidden files and folders skipped."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if not name.startswith(".") and accept(path):
                found.append(path)
    return found


def plan_jobs(
    paths: Iterable[str],
    *,
    outdir: str | None,
    recursive: bool,
    suffix: str,
    accept: Callable[[Path], bool],
) -> list[Job]:
    """Turn the command's path arguments into jobs (see the module docstring for the forms).

    ``suffix`` is the output suffix (``.spev``, ``.wav``...); ``accept`` picks files inside folders.
    Raises :class:`UsageError` for an ambiguous or impossible combination.
    """
    args = list(paths)
    if not args:
        raise UsageError("no input given")
    if outdir is None and len(args) >= 2 and args[-1] != STDIO and Path(args[-1]).is_dir():
        outdir, args = args[-1], args[:-1]
    if outdir is None and len(args) == 2 and not recursive:
        src, dst = args
        if src != STDIO and Path(src).is_dir():
            return [Job(src, dst, UsageError(f"{src}: is a directory (use --recursive)"))]
        return [Job(src, dst)]
    if outdir is None and len(args) > 2:
        raise UsageError("several inputs need -d OUTDIR (or an existing folder as the last argument)")
    if outdir is not None and STDIO in args:
        raise UsageError("'-' (stdin) cannot be combined with -d OUTDIR")

    jobs: list[Job] = []
    for arg in args:
        if arg == STDIO:
            jobs.append(Job(STDIO, STDIO))
            continue
        path = Path(arg)
        if path.is_dir():
            if not recursive:
                jobs.append(Job(arg, None, UsageError(f"{arg}: is a directory (use --recursive)")))
                continue
            for found in _walk(path, accept):
                rel = found.relative_to(path)
                base = Path(outdir) / path.name / rel if outdir is not None else found
                jobs.append(Job(str(found), _replace_suffix(str(base), suffix)))
            continue
        base = Path(outdir) / path.name if outdir is not None else path
        jobs.append(Job(arg, _replace_suffix(str(base), suffix)))
    return jobs


def _with_name(exc: SpevError, name: str) -> SpevError:
    """``exc`` with ``name:`` in front of its message (unless it already names the file)."""
    text = str(exc)
    if name in text:
        return exc
    try:
        new = type(exc)(f"{name}: {text}")
    except TypeError:
        return exc
    new.exit_code = exc.exit_code
    return new


def run_jobs(
    console: Console,
    jobs: list[Job],
    work: Callable[[Job], None],
    *,
    force: bool,
    check_output: bool = True,
) -> None:
    """Run ``work`` on every job, applying the overwrite and exit-status policy of the module docstring."""
    from sparsecodec.audio.io import ensure_writable, output_kind

    many = len(jobs) > 1
    failed = skipped = 0
    for job in jobs:
        name = "<stdin>" if job.src == STDIO else job.src
        try:
            if job.error is not None:
                raise job.error
            if check_output and job.dst is not None and job.dst != STDIO:
                dst = Path(job.dst)
                kind = output_kind(dst)
                if job.src != STDIO and kind == "file" and dst.resolve() == Path(job.src).resolve():
                    raise UsageError(f"{job.src}: output would overwrite the input")
                if kind == "file" and not force and many:
                    console.info(f"skipping {job.src}: {dst} exists (use --force to overwrite)")
                    skipped += 1
                    continue
                ensure_writable(dst, force)  # atomic_output decides again at the end, with no-replace
                dst.parent.mkdir(parents=True, exist_ok=True)
            work(job)
        except SpevError as exc:
            if not many:
                raise _with_name(exc, name) from None
            failed += 1
            console.error(str(_with_name(exc, name)))
        except (KeyboardInterrupt, click.exceptions.Exit, click.ClickException):
            raise
        except Exception as exc:
            if not many:
                raise
            failed += 1
            if console.verbose:
                traceback.print_exc(file=sys.stderr)
            console.error(f"{name}: internal error: {type(exc).__name__}: {exc}")
    if many and (failed or skipped):
        done = len(jobs) - failed - skipped
        console.info(f"{done} done, {skipped} skipped, {failed} failed (of {len(jobs)})")
    if failed:
        raise BatchError(f"{failed} of {len(jobs)} inputs failed")
