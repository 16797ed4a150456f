"""``spev edit``: apply event-space operations to a ``.spev`` file, in the order given."""

from __future__ import annotations

from typing import Any

import click

from sparsecodec.cli import verbosity_options
from sparsecodec.cli.commands import console_for
from sparsecodec.tools.edit import OP_NAMES

OP_OPTIONS: tuple[str, ...] = OP_NAMES
"""Options that are edit operations (parameter name = operation name, as in :mod:`sparsecodec.tools.edit`)."""


class OrderedOpsCommand(click.Command):
    """A command that records the order in which options appeared (``ctx.meta["spev.edit.order"]``).

    click groups the values of a repeated option together; edits must run in command-line order.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            parser = self.make_parser(ctx)
            _, _, order = parser.parse_args(args=list(args))
            ctx.meta["spev.edit.order"] = [p.name for p in order]
        except click.UsageError:
            pass  # reported by the real parse below
        return super().parse_args(ctx, args)


def ordered_ops(ctx: click.Context, params: dict[str, Any]) -> list[tuple[str, str]]:
    """``[(op, arg)]`` in command-line order from the multiple-valued op options."""
    queues = {name: list(params.get(name) or ()) for name in OP_OPTIONS}
    ops: list[tuple[str, str]] = []
    for name in ctx.meta.get("spev.edit.order", []):
        if queues.get(name):
            ops.append((name, str(queues[name].pop(0))))
    for name in OP_OPTIONS:  # anything the order record missed (should not happen)
        ops.extend((name, str(v)) for v in queues[name])
    return ops


@click.command(cls=OrderedOpsCommand)
@click.argument("src", metavar="IN.spev")
@click.argument("dst", metavar="OUT.spev")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output.")
@click.option(
    "--transpose", multiple=True, metavar="SEMITONES", help="Move pitch (and filters) by semitones."
)
@click.option(
    "--keep-filters",
    is_flag=True,
    help="With --transpose: leave cutoff and noise centre where they are (pitch only).",
)
@click.option(
    "--formant-shift",
    "formant_shift",
    multiple=True,
    metavar="RATIO",
    help="Move a voice's formants by RATIO (1.1: up 10 %); pitch stays.",
)
@click.option("--gain", multiple=True, metavar="DB", help="Add DB to every event's level.")
@click.option("--stretch", multiple=True, metavar="FACTOR", help="Time-stretch without pitch change.")
@click.option("--shift", multiple=True, metavar="SECONDS", help="Move every event in time.")
@click.option(
    "--keep",
    multiple=True,
    metavar="[KEY=]LO:HI",
    help="Keep only events in a range: time (s, default key), pitch (MIDI), level (dB) or any dimension.",
)
@click.option("--drop", multiple=True, metavar="[KEY=]LO:HI", help="Drop events in a range (as --keep).")
@click.option("--set", "set", multiple=True, metavar="NAME=VALUE", help="Set a dimension on every event.")
@click.option(
    "--randomize", multiple=True, metavar="vectors|times", help="Random vectors (prior) or random times."
)
@click.option("--perturb", multiple=True, metavar="SCALE", help="Add Gaussian noise of SCALE in unit space.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random operations.")
@verbosity_options
@click.pass_context
def command(
    ctx: click.Context,
    src: str,
    dst: str,
    force: bool,
    keep_filters: bool,
    seed: int,
    **params: Any,
) -> None:
    """Edit the events of IN.spev and write OUT.spev; operations run in the order given.

    \b
    spev edit song.spev up.spev --transpose 12
    spev edit talk.spev deeper.spev --transpose -3 --formant-shift 0.9
    spev edit song.spev quiet.spev --gain -6
    spev edit song.spev slow.spev --stretch 2
    spev edit song.spev cut.spev --drop 10:20 --keep pitch=48:84 --keep level=-50:
    spev edit song.spev dry.spev --set wet=0
    spev edit song.spev demo.spev --randomize vectors --seed 3
    spev edit song.spev wobble.spev --perturb 0.05 --seed 1

    See docs/events-tools.md for what each operation changes.
    """
    from sparsecodec.errors import UsageError
    from sparsecodec.tools.edit import Op, edit_file

    console = console_for(ctx)
    ops = [Op(name, arg) for name, arg in ordered_ops(ctx, params)]
    if not ops:
        raise UsageError("no edit operation given (see spev edit --help)")
    n_in, n_out = edit_file(src, dst, ops, force=force, seed=seed, move_filters=not keep_filters)
    console.info(f"{src} -> {dst}: {n_in} events in, {n_out} out ({len(ops)} operations)")


edit = command
"""The name the root group's registry looks up."""
