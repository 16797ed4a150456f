"""One module per ``spev`` command, plus the many-files loop they share.

Path forms (like ``cp``) are planned by :mod:`sparsecodec.jobs.plan` (the planner ``spev batch`` uses too).

Exit status of a run (docs/cli.md): one input → that input's own code; several inputs → 0 when none failed,
else 6 (:class:`~sparsecodec.errors.BatchError`) after every input was tried, each failure reported on its own
line with its own kind.  An existing output is skipped with a message unless ``--force``: an error (5) for a
single input, a counted skip (not a failure) among several.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import click

from sparsecodec.cli.console import Console
from sparsecodec.errors import BatchError, SpevError, UsageError
from sparsecodec.jobs.plan import STDIO, Job, exists_action, plan_paths

__all__ = ["STDIO", "Job", "console_for", "plan_paths", "run_jobs"]


def console_for(ctx: click.Context) -> Console:
    """The console configured by the ``--quiet``/``--verbose`` flags given anywhere on the command line."""
    meta = ctx.find_root().meta
    return Console(quiet=bool(meta.get("spev.quiet")), verbose=bool(meta.get("spev.verbose")))


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
                if exists_action(dst, force) == "skip" and many:
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
