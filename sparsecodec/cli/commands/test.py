"""``spev test``: verify every checksum and structure of ``.spev`` files (like ``flac -t``)."""

from __future__ import annotations

import click

from sparsecodec.cli import verbosity_options
from sparsecodec.cli.commands import STDIO, Job, console_for, run_jobs
from sparsecodec.cli.console import binary_stdin


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="FILE...")
@verbosity_options
@click.pass_context
def test(ctx: click.Context, paths: tuple[str, ...]) -> None:
    """Verify .spev files: header, every chunk's CRC, the index.

    \b
    spev test song.spev
    spev test *.spev

    Prints "FILE: ok (N chunks)" per good file on stdout; one error line per bad file on stderr.
    Exit status: 0 all good, 4 a single bad file, 6 when some of several failed.
    """
    from sparsecodec.api import verify_file

    console = console_for(ctx)

    def work(job: Job) -> None:
        src = binary_stdin() if job.src == STDIO else job.src
        n = verify_file(src)
        console.result(f"{'<stdin>' if job.src == STDIO else job.src}: ok ({n} chunks)")

    run_jobs(console, [Job(p) for p in paths], work, force=False, check_output=False)
