"""``spev inspect``: what a ``.spev`` file holds (text or JSON on stdout)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click

from sparsecodec.cli import verbosity_options
from sparsecodec.cli.commands import STDIO, Job, console_for, run_jobs
from sparsecodec.cli.console import binary_stdin


def _named(vec: Any) -> dict[str, Any]:
    """An event's values by name: a note's 32, or a voice knot's transmitted ones (after ``"kind"``)."""
    from sparsecodec.format import events

    if events.is_voice(vec):
        return {"kind": "voice", **{n: float(vec[events.VOICE_INDEX[n]]) for n in events.VOICE_PARAMS}}
    return {n: float(v) for n, v in zip(events.NAMES, vec, strict=True)}


def _events_json(listed: list[Any]) -> list[dict[str, Any]]:
    return [{"time_s": round(float(t), 6), **_named(vec)} for t, vec in listed]


def _size(info: Any) -> str:
    """``2022 bytes, 8.75 bytes/event (chunks 6.58)``: the whole file and its chunk frames per event."""
    text = f"{info.bytes} bytes"
    if info.bytes_per_event is not None:
        text += f", {info.bytes_per_event:.2f} bytes/event"
        if info.chunk_bytes_per_event is not None:
            text += f" (chunks {info.chunk_bytes_per_event:.2f})"
    return text


def _rate(info: Any) -> str:
    """``1.64 kbps (target 4 kbps)``: the true rate, and the encoder's target when recorded."""
    text = f"{info.kbps:.2f} kbps"
    return text if info.target_kbps is None else f"{text} (target {info.target_kbps:g} kbps)"


def _text(info: Any, listed: list[Any], with_events: bool) -> str:
    rows = [
        ("duration", f"{info.duration_s:.3f} s"),
        ("sample rate", f"{info.sample_rate} Hz"),
        ("channels", str(info.channels)),
        ("events", f"{info.events} ({info.events_per_s:.1f}/s) in {info.chunks} chunks"),
        ("size", _size(info)),
        ("rate", _rate(info)),
        ("format", f"{info.format_version}, layout {info.layout_version}"),
        ("encoder", f"{info.encoder_id} (weights {info.weights_hash})"),
        ("time rate", f"{info.time_rate} Hz, hop {info.hop_samples}"),
        ("software", info.software),
    ]
    for key, value in sorted(info.tags.items()):
        rows.append((f"tag {key}", value))
    lines = [info.path] + [f"  {k:<12} {v}" for k, v in rows]
    if with_events:
        from sparsecodec.format import events

        voice = [(t, vec) for t, vec in listed if events.is_voice(vec)]
        notes = [(t, vec) for t, vec in listed if not events.is_voice(vec)]
        if notes or not voice:
            lines.append("  " + "\t".join(["time_s", *events.NAMES]))
            lines.append("  " + "\t".join(["s", *(d.unit for d in events.DIMS)]))
            for t, vec in notes:
                lines.append("  " + "\t".join([f"{t:.4f}", *(f"{v:.4g}" for v in vec)]))
        if voice:  # a second table: the voice knots by their own names (docs/events.md)
            cols = [events.VOICE_INDEX[n] for n in events.VOICE_PARAMS]
            lines.append("  voice knots:")
            lines.append("  " + "\t".join(["time_s", *events.VOICE_PARAMS]))
            lines.append("  " + "\t".join(["s", *(events.VOICE_DIMS[j].unit for j in cols)]))
            for t, vec in voice:
                lines.append("  " + "\t".join([f"{t:.4f}", *(f"{vec[j]:.4g}" for j in cols)]))
    return "\n".join(lines)


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="FILE...")
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout (an object; a list for several files).")
@click.option("--events", "with_events", is_flag=True, help="Also list every event (time and named values).")
@verbosity_options
@click.pass_context
def inspect(ctx: click.Context, paths: tuple[str, ...], as_json: bool, with_events: bool) -> None:
    """Show duration, rate, channels, events, size (bytes per event), bit rate (and its target), format,
    ids and tags of .spev files.

    \b
    spev inspect song.spev
    spev inspect song.spev --json
    spev inspect song.spev --events
    """
    from sparsecodec.api import read_info

    console = console_for(ctx)
    docs: list[dict[str, Any]] = []

    def work(job: Job) -> None:
        name = "<stdin>" if job.src == STDIO else job.src
        src = binary_stdin() if job.src == STDIO else job.src
        info, listed = read_info(src, name=name, with_events=with_events)
        if as_json:
            doc = asdict(info)
            if with_events:
                doc["event_list"] = _events_json(listed)
            docs.append(doc)
        else:
            console.result(_text(info, listed, with_events))

    try:
        run_jobs(console, [Job(p) for p in paths], work, force=False, check_output=False)
    finally:
        if as_json and docs:
            console.result(json.dumps(docs[0] if len(paths) == 1 else docs, indent=2))
