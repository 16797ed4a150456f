"""``spev batch encode|decode SRC DST``: convert a whole folder tree in parallel (local processes or Ray).

The work is done by :mod:`sparsecodec.jobs.batch`; this module only parses options and prints.  Exit status
0 when every file was converted or skipped, 6 (:class:`~sparsecodec.errors.BatchError`) when some failed —
each failure with its own code in the manifest and the summary table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from sparsecodec.cli import verbosity_options
from sparsecodec.cli.commands import console_for
from sparsecodec.cli.commands.encode import encode_kwargs, encoder_options
from sparsecodec.errors import UsageError

_HELP_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    """SRC DST and the options every batch command takes."""
    for deco in reversed(
        [
            click.argument("src", type=click.Path()),  # a missing SRC is an InputError (3), not a usage error
            click.argument("dst", type=click.Path(file_okay=False, dir_okay=True)),
            click.option(
                "-j",
                "--jobs",
                type=click.IntRange(min=1),
                default=None,
                help="Parallel workers (default: CPU cores; with Ray: the cluster's CPUs).",
            ),
            click.option(
                "--engine",
                type=click.Choice(["local", "ray"]),
                default="local",
                show_default=True,
                help="Local process pool, or Ray tasks (pip install 'spev[ray]').",
            ),
            click.option(
                "--address",
                default=None,
                metavar="ADDR",
                help="Ray cluster to join (e.g. 'auto' or 'ray://head:10001'); default: a local Ray.",
            ),
            click.option(
                "-f", "--force", is_flag=True, help="Redo files whose output exists (default: skip)."
            ),
        ]
    ):
        f = deco(f)
    return verbosity_options(f)


def _run(
    ctx: click.Context, mode: str, src: str, dst: str, common: dict[str, Any], options: dict[str, Any]
) -> None:
    from sparsecodec.jobs import batch as batch_mod

    console = console_for(ctx)
    if common["address"] and common["engine"] != "ray":
        raise UsageError("--address needs --engine ray")
    fmt = options.pop("fmt", "wav")

    total = [0, 0]  # files planned, files done

    with console.progress(f"spev batch {mode}") as progress:

        def on_plan(n: int) -> None:
            total[0] = n

        def on_result(r: batch_mod.FileResult) -> None:
            total[1] += 1
            if r.status == "failed" and total[0] > 1:  # a single input's error is the run's error
                console.error(batch_mod.failure_line(r))
            else:
                console.detail(f"{r.status}: {r.input} -> {r.output}")
            if progress is not None and total[0]:
                progress(total[1] / total[0])

        summary = batch_mod.run_batch(
            src,
            dst,
            "encode" if mode == "encode" else "decode",
            jobs=common["jobs"],
            engine=common["engine"],
            address=common["address"],
            force=common["force"],
            fmt=fmt,
            options=options,
            on_result=on_result,
            on_plan=on_plan,
        )
    if not console.quiet:
        batch_mod.print_summary(summary)
    batch_mod.raise_for_failures(summary)


@click.group(name="batch", context_settings=_HELP_SETTINGS)
def batch() -> None:
    """Encode or decode a whole folder tree in parallel, mirroring it under DST.

    \b
    spev batch encode music/ spev-music/ --kbps 3
    spev batch decode spev-music/ wav-out/ --format flac --jobs 4
    spev batch encode /mnt/shared/in /mnt/shared/out --engine ray --address auto

    Resumable: existing outputs are skipped (--force redoes them); outputs appear only when complete.
    Every file's outcome is appended to DST/spev-manifest.jsonl.  Exit status 6 when some files failed.
    """


@batch.command("encode", context_settings=_HELP_SETTINGS)
@_common
@encoder_options
@click.pass_context
def encode(
    ctx: click.Context,
    src: str,
    dst: str,
    jobs: int | None,
    engine: str,
    address: str | None,
    force: bool,
    kbps: float | None,
    events_per_second: float | None,
    refine: int,
    init: str | None,
    tags: tuple[str, ...],
    format_version: str | None,
) -> None:
    """Encode every audio file under SRC (any format soundfile reads) to DST/**/NAME.spev."""
    options = encode_kwargs(kbps, events_per_second, refine, init, tags, format_version)
    common = {"jobs": jobs, "engine": engine, "address": address, "force": force}
    _run(ctx, "encode", src, dst, common, options)


@batch.command("decode", context_settings=_HELP_SETTINGS)
@_common
@click.option("--format", "fmt", type=click.Choice(["wav", "flac"]), default="wav", show_default=True)
@click.option(
    "--rate", type=click.IntRange(min=1), default=None, help="Output sample rate (default: original)."
)
@click.option("--bits", type=click.Choice(["16", "24", "32f"]), default="16", show_default=True)
@click.pass_context
def decode(
    ctx: click.Context,
    src: str,
    dst: str,
    jobs: int | None,
    engine: str,
    address: str | None,
    force: bool,
    fmt: str,
    rate: int | None,
    bits: str,
) -> None:
    """Decode every .spev file under SRC to DST/**/NAME.wav (or .flac)."""
    options: dict[str, Any] = {"fmt": fmt, "bits": bits}
    if rate is not None:
        options["rate"] = rate
    common = {"jobs": jobs, "engine": engine, "address": address, "force": force}
    _run(ctx, "decode", src, dst, common, options)


command = batch
"""The click group, under the name the CLI registry may use."""


def main(argv: list[str] | None = None) -> None:
    """Run ``spev batch`` alone (``python -m sparsecodec.cli.commands.batch``): errors: a line + exit code."""
    import sys

    from sparsecodec.errors import SpevError
    from sparsecodec.jobs.procs import EXIT_SIGINT, interrupt_exit, terminate_like_interrupt

    terminate_like_interrupt()
    try:
        rc = batch.main(args=argv, prog_name="spev batch", standalone_mode=False)
    except SpevError as exc:
        click.echo(f"spev: error: {' '.join(str(exc).split())}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("spev: interrupted", err=True)
        sys.exit(EXIT_SIGINT)
    except KeyboardInterrupt as exc:
        code, message = interrupt_exit(exc)
        click.echo(message, err=True)
        sys.exit(code)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
