"""The one planner: which file becomes which output, for ``spev encode|decode`` and ``spev batch``.

Path forms of the single commands (like ``cp``; :func:`plan_paths`):

- ``spev CMD IN OUT`` — one input, one output (``-`` = stdin/stdout);
- ``spev CMD IN`` — output next to the input with the command's suffix (``-`` alone: stdin → stdout);
- ``spev CMD IN... -d OUTDIR`` (or a folder as the last of several arguments) — outputs in ``OUTDIR``;
- ``--recursive`` — folder inputs are walked and their tree mirrored under ``OUTDIR`` (or beside the inputs).

``spev batch SRC DST`` mirrors the tree under ``SRC`` into ``DST`` (:func:`plan_tree`).  Both walk folders
the same way (:func:`walk`: sorted, hidden files and folders skipped), name outputs the same way
(:func:`output_name`), refuse two inputs that would write one output (``a.wav`` and ``a.flac`` → ``a.spev``),
and apply one policy to an output that exists (:func:`exists_action`).  No heavy imports here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sparsecodec.errors import InputError, SpevError, UsageError

STDIO = "-"
"""The path that means stdin (as an input) or stdout (as an output)."""


@dataclass(frozen=True)
class Job:
    """One input → one output.  ``src``/``dst`` are paths or ``"-"``; ``error`` is set when the input cannot
    be converted (a folder without ``--recursive``, an output name another input already takes)."""

    src: str
    dst: str | None = None
    error: SpevError | None = None


def output_name(name: str, suffix: str) -> str:
    """``name`` with its suffix replaced by ``suffix`` (``a.wav`` → ``a.spev``; ``a`` → ``a.spev``)."""
    p = Path(name)
    return str(p.with_suffix(suffix)) if p.suffix else str(p) + suffix


def walk(folder: Path, accept: Callable[[Path], bool], skip: Path | None = None) -> Iterator[Path]:
    """Files under ``folder`` that ``accept`` takes, in a stable (sorted) order; hidden files and folders
    are skipped, and so is the folder ``skip`` (an output tree inside the input tree)."""
    skip = skip.resolve() if skip is not None else None
    for root, dirs, files in os.walk(folder):
        rootp = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (rootp / d).resolve() != skip)
        for name in sorted(files):
            path = rootp / name
            if not name.startswith(".") and accept(path):
                yield path


def _refuse_collisions(jobs: list[Job]) -> list[Job]:
    """Jobs whose output an earlier job already writes get an error instead (the first one keeps it)."""
    seen: dict[str, str] = {}
    out = []
    for job in jobs:
        if job.dst is None or job.dst == STDIO or job.error is not None:
            out.append(job)
            continue
        key = os.path.normpath(job.dst)
        if key in seen:
            out.append(Job(job.src, job.dst, UsageError(f"output name {job.dst} collides with {seen[key]}")))
            continue
        seen[key] = job.src
        out.append(job)
    return out


def plan_paths(
    paths: Iterable[str],
    *,
    outdir: str | None,
    recursive: bool,
    suffix: str,
    accept: Callable[[Path], bool],
) -> list[Job]:
    """Turn a single command's path arguments into jobs (see the module docstring for the forms).

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
            out_root = Path(outdir) / path.name if outdir is not None else path
            for found in walk(path, accept, skip=out_root if outdir is not None else None):
                jobs.append(Job(str(found), output_name(str(out_root / found.relative_to(path)), suffix)))
            continue
        base = Path(outdir) / path.name if outdir is not None else path
        jobs.append(Job(arg, output_name(str(base), suffix)))
    return _refuse_collisions(jobs)


def plan_tree(src: str | Path, dst: str | Path, suffix: str, accept: Callable[[Path], bool]) -> list[Job]:
    """``spev batch``: every file under ``src`` that ``accept`` takes → the mirrored path under ``dst`` with
    ``suffix``.  ``src`` may be a single file.  Raises :class:`InputError` when ``src`` does not exist."""
    src_p, dst_p = Path(src), Path(dst)
    if not src_p.exists():
        raise InputError(f"{src}: no such file or folder")
    if src_p.is_file():
        return [Job(str(src_p), output_name(str(dst_p / src_p.name), suffix))]
    jobs = [
        Job(str(f), output_name(str(dst_p / f.relative_to(src_p)), suffix))
        for f in walk(src_p, accept, dst_p)
    ]
    return _refuse_collisions(jobs)


def exists_action(dst: str | Path, force: bool) -> Literal["write", "skip"]:
    """The one policy for an output that may exist: ``"skip"`` a regular file that exists unless ``force``;
    ``"write"`` otherwise (nothing there, ``force``, or a special file such as ``/dev/stdout`` or a FIFO,
    which is written through).  Refusals (a folder, a symbolic link) are :func:`audio.io.ensure_writable`'s.
    """
    from sparsecodec.audio.io import output_kind

    return "skip" if not force and output_kind(dst) == "file" else "write"
