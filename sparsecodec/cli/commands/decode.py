"""``spev decode``: ``.spev`` → WAV or FLAC (or stems)."""

from __future__ import annotations

from pathlib import Path

import click

from sparsecodec.cli import verbosity_options
from sparsecodec.cli.commands import STDIO, Job, console_for, plan_paths, run_jobs
from sparsecodec.cli.commands.encode import device_option
from sparsecodec.cli.console import binary_stdin, binary_stdout


def _is_spev(path: Path) -> bool:
    return path.suffix.lower() == ".spev"


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="INPUT... [OUTPUT]")
@click.option("-d", "--outdir", metavar="OUTDIR", help="Write outputs into this folder (like cp -t).")
@click.option("-r", "--recursive", is_flag=True, help="Decode the .spev files inside folder inputs.")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs.")
@click.option("--start", type=float, default=None, metavar="S", help="Start time in seconds.")
@click.option("--end", type=float, default=None, metavar="S", help="End time in seconds.")
@click.option(
    "--rate", type=click.IntRange(1000, 384000), default=None, help="Output rate (default: original)."
)
@click.option(
    "--bits", type=click.Choice(["16", "24", "32f"]), default="16", show_default=True, help="Sample format."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["wav", "flac"]),
    default=None,
    help="Output format (default: from the output's suffix; WAV for '-').",
)
@click.option("--ignore-errors", is_flag=True, help="Render damaged chunks as silence instead of failing.")
@click.option(
    "--max-duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Accept files that declare up to this length (default 86400: 24 h; formats/spev.md §7).",
)
@click.option(
    "--stems", metavar="DIR", default=None, help="Render each event (or group) to its own file in DIR."
)
@device_option
@verbosity_options
@click.pass_context
def decode(
    ctx: click.Context,
    paths: tuple[str, ...],
    outdir: str | None,
    recursive: bool,
    force: bool,
    start: float | None,
    end: float | None,
    rate: int | None,
    bits: str,
    fmt: str | None,
    ignore_errors: bool,
    max_duration: float | None,
    stems: str | None,
    device: str,
) -> None:
    """Decode .spev to WAV or FLAC.

    \b
    spev decode song.spev out.wav
    spev decode song.spev out.flac --bits 24
    spev decode song.spev clip.wav --start 30 --end 45
    spev decode *.spev -d decoded/ --format flac
    spev decode song.spev --stems stems/
    spev decode - - < song.spev > out.wav

    Audio passes a soft limiter above -1 dBFS, so it never clips or wraps (docs/cli.md).
    """
    from sparsecodec.errors import UsageError

    console = console_for(ctx)
    if stems is not None:
        _decode_stems(console, paths, Path(stems), rate=rate, bits=bits, force=force)
        return
    suffix = f".{fmt}" if fmt else ".wav"
    jobs = plan_paths(paths, outdir=outdir, recursive=recursive, suffix=suffix, accept=_is_spev)

    def work(job: Job) -> None:
        from sparsecodec.api import decode_file

        assert job.dst is not None
        stdout = binary_stdout()
        if job.dst == STDIO and stdout.isatty():
            raise UsageError("refusing to write audio to a terminal (redirect stdout)")
        dst_fmt = _output_format(job.dst, fmt)
        src = binary_stdin() if job.src == STDIO else job.src
        dst = stdout if job.dst == STDIO else job.dst
        with console.progress(f"decoding {job.src}") as progress:
            r = decode_file(
                src,
                dst,
                start=start,
                end=end,
                rate=rate,
                bits=bits,
                fmt=dst_fmt,
                device=device,
                ignore_errors=ignore_errors,
                progress=progress,
                overwrite=force,
                max_duration_s=max_duration,
            )
        if r.lost_chunks:
            lost = ", ".join(str(i) for i in r.lost_chunks)
            console.warn(f"{job.src}: damaged chunks rendered as silence: {lost}")
        for line in r.warnings:
            console.warn(f"{job.src}: {line}")
        console.info(
            f"{job.src} -> {job.dst}: {r.duration_s:.2f} s, {r.sample_rate} Hz, {r.channels} ch, "
            f"{r.events} events"
        )

    run_jobs(console, jobs, work, force=force)


def _output_format(dst: str, fmt: str | None) -> str:
    """``--format``, else the output's suffix; WAV for stdout and special files (``/dev/stdout``, a FIFO)."""
    from sparsecodec.audio.io import output_kind
    from sparsecodec.errors import UsageError

    if fmt:
        return fmt
    if dst == STDIO:
        return "wav"
    suffix = Path(dst).suffix.lower().lstrip(".")
    if not suffix and output_kind(dst) == "special":
        return "wav"
    if suffix not in ("wav", "flac"):
        raise UsageError(f"{dst}: unknown output type (use .wav or .flac, or --format)")
    return suffix


def _decode_stems(
    console: object, paths: tuple[str, ...], outdir: Path, *, rate: int | None, bits: str, force: bool
) -> None:
    """``--stems DIR``: one folder of stems per input (``DIR`` itself for a single input)."""
    from sparsecodec.cli.console import Console
    from sparsecodec.errors import UsageError

    assert isinstance(console, Console)
    if STDIO in paths:
        raise UsageError("--stems needs a file input, not '-'")
    jobs = [Job(p, str(outdir if len(paths) == 1 else outdir / Path(p).stem)) for p in paths]

    def work(job: Job) -> None:
        from sparsecodec.tools.stems import decode_stems  # type: ignore[import-not-found,unused-ignore]

        assert job.dst is not None
        written = decode_stems(job.src, Path(job.dst), rate=rate, bits=bits, force=force)
        console.info(f"{job.src} -> {job.dst}: {len(written)} stems")

    run_jobs(console, jobs, work, force=force, check_output=False)
