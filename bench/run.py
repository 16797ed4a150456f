"""The spev benchmark: ``python -m bench.run [--quick] [--out DIR]``.

Builds (or reuses) the dev set, encodes and decodes every clip with every codec row (spev default, --refine,
--kbps 2/4/8; Opus 6/12 kbps; MP3 8 kbps; the 22.05 kHz band-limit ceiling; Codec2 3200/1200/700C on the
speech categories), scores each decode (ViSQOL speech mode and PESQ-WB on speech and voice; and, on the
notes clips, the notes of spev's events and of the basic-pitch transcriber row) and writes ``results.json``
(every clip × codec, errors included), ``results.md`` (per-category means, the #16 resolve bars) and
``rate_quality.png`` into ``--out`` (default ``bench-out/``).  See ``docs/benchmark.md`` for how to read it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from bench import metrics
from bench.codecs import SPEECH_CATEGORIES, Codec, CodecError, default_codecs
from bench.devset import DEFAULT_DIR, SEED, Clip, build, load_manifest
from sparsecodec.errors import SpevError

CATEGORIES = ("music", "speech", "voice", "notes", "notes-fp", "long")
NOTE_CATEGORIES = ("notes", "notes-fp")
QUICK_CLIPS = (
    "music-00", "music-01", "speech-00", "speech-01", "voice-00", "notes-00", "notes-01", "notes-fp-00",
)  # fmt: skip
"""The ``--quick`` subset (no long track)."""
MAX_NOTES_JSON_BYTES = 4 << 20

COLUMNS: tuple[tuple[str, str, str], ...] = (
    # key, header, format
    ("kbps", "kbps", "{:.2f}"),
    ("visqol", "ViSQOL ↑", "{:.2f}"),
    ("mrstft22", "mrstft@22k ↓", "{:.3f}"),
    ("mrstft44", "mrstft@44k ↓", "{:.3f}"),
    ("pesq", "PESQ-WB ↑", "{:.2f}"),
    ("events_per_s", "events/s", "{:.1f}"),
    ("enc_xrt", "enc ×RT ↑", "{:.1f}"),
    ("dec_xrt", "dec ×RT ↑", "{:.1f}"),
    ("enc_rss_mb", "enc MB", "{:.0f}"),
    ("dec_rss_mb", "dec MB", "{:.0f}"),
    ("lag_ms", "lag ms (median)", "{:.1f}"),
)
NOTE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("onset_f1", "onset F1 ↑", "{:.2f}"),
    ("pitch_acc", "pitch acc ↑", "{:.2f}"),
    ("note_precision", "note P ↑", "{:.2f}"),
    ("note_recall", "note R ↑", "{:.2f}"),
    ("note_f1", "note F1 ↑", "{:.2f}"),
    ("offset_f1", "offset F1 ↑", "{:.2f}"),
    ("n_est", "est notes", "{:.0f}"),
    ("n_ref", "true notes", "{:.0f}"),
)
"""The transcription table of the notes categories (metrics.note_scores); the counts are summed over clips,
the rest are means over clips."""
SUMMED = ("n_est", "n_ref")
BARS: tuple[tuple[str, float], ...] = (("pitch_acc", 0.95), ("note_f1", 0.85), ("offset_f1", 0.5))
"""Issue #16's resolve bars, on both notes and notes-fp: these, and note F1 above basic-pitch's."""
BAR_REFERENCE = "basic-pitch"


def _read_audio(path: Path) -> tuple[np.ndarray, int]:
    """``(float32[C, T], sample_rate)``."""
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.T), int(sr)


def _load_notes(path: Path) -> list[dict[str, float]]:
    if path.stat().st_size > MAX_NOTES_JSON_BYTES:
        raise metrics.MetricError(f"{path} is implausibly large")
    notes = json.loads(path.read_text())["notes"]
    return [{k: float(n[k]) for k in ("onset", "pitch", "offset")} for n in notes]


def score(
    clip: Clip, ref: np.ndarray, sr: int, deg_path: Path, row: dict[str, Any], shift: bool = False
) -> None:
    """Fill ``row`` with the audio metrics of one decode; a failing metric goes to ``row["errors"]``."""
    deg, dsr = _read_audio(deg_path)
    deg = metrics.resample(deg, dsr, sr)
    aligned, lag = metrics.align(ref, deg, sr, shift=shift)
    row["lag_ms"] = 1000.0 * lag / sr
    row["shifted"] = shift
    row["decoded_rate"] = dsr
    errors: dict[str, str] = row.setdefault("errors", {})

    def attempt(key: str, fn: Callable[[], float]) -> None:
        try:
            row[key] = fn()
        except Exception as e:  # one metric failing must not lose the others
            errors[key] = f"{type(e).__name__}: {e}"

    speech = clip.category in SPEECH_CATEGORIES
    mode = "speech" if speech else "audio"
    attempt("visqol", lambda: metrics.visqol(ref, aligned, sr, mode))
    attempt("mrstft22", lambda: metrics.mrstft(ref, aligned, sr, 22050))
    if sr >= 44100:
        attempt("mrstft44", lambda: metrics.mrstft(ref, aligned, sr, 44100))
    if speech:
        attempt("pesq", lambda: metrics.pesq_wb(ref, aligned, sr))


def score_notes(
    clip: Clip, truth: list[dict[str, float]] | None, extra: dict[str, Any], row: dict[str, Any]
) -> None:
    """Fill ``row`` with the note metrics of a row's notes (``extra["notes"]``, or the pitched events of
    ``extra["export"]``) against ``truth``, and the event rate of an export."""
    errors: dict[str, str] = row.setdefault("errors", {})
    export = extra.get("export")
    if export is not None:
        row["events_per_s"] = len(export.get("events", [])) / clip.duration_s
    if truth is None:
        return
    try:
        est = extra["notes"] if "notes" in extra else metrics.export_to_notes(export) if export else None
        if est is not None:
            row.update({k: v for k, v in metrics.note_scores(truth, est).items() if v is not None})
    except Exception as e:  # one metric failing must not lose the others
        errors["notes"] = f"{type(e).__name__}: {e}"


def evaluate(
    clip: Clip,
    ref: np.ndarray,
    sr: int,
    src: Path,
    notes: list[dict[str, float]] | None,
    codec: Codec,
    workdir: Path,
    timeout_s: float,
) -> dict[str, Any]:
    """Run one codec on one clip and score it: one result row (``ok`` False + ``error`` on failure)."""
    row: dict[str, Any] = {
        "clip": clip.id,
        "category": clip.category,
        "codec": codec.name,
        "family": codec.family,
    }
    row["nominal_kbps"] = codec.nominal_kbps
    row["audio"], row["transcribes"] = codec.scores_audio, codec.transcribes
    why = codec.available()
    if why is not None:
        row.update(ok=False, error=why)
        return row
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        res = codec.run(src, workdir, timeout_s)
        if res.n_bytes is not None:
            row["kbps"] = metrics.true_kbps(res.n_bytes, clip.duration_s)
            row["bytes"] = res.n_bytes
        for key, val in (("enc", res.encode_s), ("dec", res.decode_s)):
            if val is not None:
                row[f"{key}_s"] = val
                row[f"{key}_xrt"] = clip.duration_s / max(val, 1e-9)
        row["enc_rss_mb"], row["dec_rss_mb"] = res.encode_rss_mb, res.decode_rss_mb
        for key in ("export_error", "transcriber", "transcribe_s"):
            if key in res.extra:
                row[key] = res.extra[key]
        if codec.scores_audio:
            score(clip, ref, sr, res.decoded, row, shift=codec.shift_to_align)
        score_notes(clip, notes, res.extra, row)
        row["ok"] = True
    except (CodecError, SpevError, OSError, RuntimeError, ValueError, sf.LibsndfileError) as e:
        row.update(ok=False, error=f"{type(e).__name__}: {e}")
    except Exception as e:  # keep going whatever breaks; the traceback tail is in the JSON
        row.update(ok=False, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-2000:])
    if not row.get("errors"):
        row.pop("errors", None)
    return {k: v for k, v in row.items() if v is not None}


def summarise(rows: Sequence[dict[str, Any]], codec_order: Sequence[str]) -> list[dict[str, Any]]:
    """Per (category, codec) means of every metric over the clips where it was computed."""
    out = []
    for cat in CATEGORIES:
        for name in codec_order:
            sel = [r for r in rows if r["category"] == cat and r["codec"] == name]
            if not sel:
                continue
            ok = [r for r in sel if r.get("ok")]
            s: dict[str, Any] = {"category": cat, "codec": name, "family": sel[0]["family"]}
            s.update(n=len(sel), n_ok=len(ok), n_failed=len(sel) - len(ok))
            s.update(audio=sel[0].get("audio", True), transcribes=sel[0].get("transcribes", False))
            if sel[0].get("nominal_kbps") is not None:
                s["nominal_kbps"] = sel[0]["nominal_kbps"]
            for key, _, _ in (*COLUMNS, *NOTE_COLUMNS):
                vals = [float(r[key]) for r in ok if r.get(key) is not None and math.isfinite(float(r[key]))]
                if not vals:
                    continue
                if key in SUMMED:
                    s[key] = float(np.sum(vals))
                elif (
                    key == "lag_ms"
                ):  # the median (a poor decode can correlate anywhere in the search window)
                    s[key] = float(np.median(vals))
                else:
                    s[key] = float(np.mean(vals))
            errs = sorted({r["error"][:300] for r in sel if not r.get("ok") and "error" in r})
            if errs:
                s["errors"] = errs
            out.append(s)
    return out


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> list[str]:
    cols = [c for c in columns if any(c[0] in r for r in rows)]
    lines = [
        "| codec | clips ok | " + " | ".join(h for _, h, _ in cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for r in rows:
        cells = [fmt.format(r[k]) if k in r else "–" for k, _, fmt in cols]
        lines.append(f"| {r['codec']} | {r['n_ok']}/{r['n']} | " + " | ".join(cells) + " |")
    return lines


def resolve_bars(summary: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Issue #16's bars for each spev row on each notes category: pitch acc ≥ 0.95, note F1 ≥ 0.85, offset
    F1 ≥ 0.5 and note F1 above basic-pitch's.  ``resolved_by``: the spev rows that pass every bar on both
    notes and notes-fp."""
    by = {(s["category"], s["codec"]): s for s in summary}
    names = [s["codec"] for s in summary if s["family"] == "spev" and s["category"] in NOTE_CATEGORIES]
    rows = []
    for name in dict.fromkeys(names):
        for cat in NOTE_CATEGORIES:
            s = by.get((cat, name))
            if s is None:
                continue
            ref = by.get((cat, BAR_REFERENCE), {})
            checks: dict[str, bool | None] = {k: k in s and s[k] >= bar for k, bar in BARS}
            beats = None if "note_f1" not in ref else "note_f1" in s and s["note_f1"] > ref["note_f1"]
            checks["beats_reference"] = beats
            rows.append(
                {
                    "codec": name,
                    "category": cat,
                    **{k: s.get(k) for k, _ in BARS},
                    "reference_note_f1": ref.get("note_f1"),
                    "checks": checks,
                    "pass": all(v is True for v in checks.values()),
                }
            )
    resolved = [
        n
        for n in dict.fromkeys(names)
        if all(
            any(r["codec"] == n and r["category"] == c and r["pass"] for r in rows) for c in NOTE_CATEGORIES
        )
    ]
    return {"bars": dict(BARS), "reference": BAR_REFERENCE, "rows": rows, "resolved_by": resolved}


def _bars_markdown(bars: dict[str, Any]) -> list[str]:
    if not bars["rows"]:
        return []
    mark = {True: "✓", False: "✗", None: "?"}
    lines = [
        "## #16 resolve bars",
        "",
        "Every bar on both notes and notes-fp, for one spev row: pitch acc ≥ 0.95, note F1 ≥ 0.85, "
        f"offset F1 ≥ 0.5, note F1 above {bars['reference']}'s.",
        "",
        "| row | category | pitch acc ≥ 0.95 | note F1 ≥ 0.85 | offset F1 ≥ 0.5 "
        f"| note F1 > {bars['reference']} | all |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in bars["rows"]:
        c = r["checks"]
        cells = [f"{r[k]:.2f} {mark[c[k]]}" if r[k] is not None else f"– {mark[c[k]]}" for k, _ in BARS]
        ref = r["reference_note_f1"]
        cells.append(f"{mark[c['beats_reference']]} ({ref:.2f})" if ref is not None else "? (no reference)")
        lines.append(f"| {r['codec']} | {r['category']} | " + " | ".join(cells) + f" | {mark[r['pass']]} |")
    who = ", ".join(bars["resolved_by"])
    lines += ["", f"**#16 resolved: {'yes, by ' + who if who else 'no'}.**", ""]
    return lines


def to_markdown(summary: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    """Per-category tables of means (one row per codec); on the notes categories a transcription table too,
    and the #16 resolve bars."""
    lines = [
        f"# spev benchmark ({'quick' if meta.get('quick') else 'full'} run)",
        "",
        f"- date: {meta.get('date')}, commit `{meta.get('commit')}`, spev {meta.get('spev_version')}",
        f"- machine: {meta.get('cpu')}, nproc {meta.get('nproc')}; codecs limited to 2 threads",
        f"- dev set: seed {meta.get('devset_seed')}, {meta.get('n_clips')} clips; wall time "
        f"{meta.get('wall_s', 0.0) / 60:.1f} min",
    ]
    if meta.get("transcriber"):
        lines.append(f"- transcriber row: {meta['transcriber']}, default thresholds")
    lines.append("")
    for cat in CATEGORIES:
        rows = [s for s in summary if s["category"] == cat]
        if not rows:
            continue
        lines += [f"## {cat}", ""]
        audio = [r for r in rows if r.get("audio", True)]
        if audio:
            lines += _table(audio, COLUMNS)
        notes = [r for r in rows if r.get("transcribes") or any(k in r for k, _, _ in NOTE_COLUMNS)]
        if cat in NOTE_CATEGORIES and notes:
            lines += ["", f"Transcription ({cat}; onset ±50 ms, pitch ±50 cents):", ""]
            lines += _table(notes, NOTE_COLUMNS)
        errs = [(r["codec"], e) for r in rows for e in r.get("errors", [])]
        if errs:
            lines += ["", "Failures:"] + [f"- {c}: {e}" for c, e in errs]
        lines.append("")
    lines += _bars_markdown(resolve_bars(summary))
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    """nproc, CPU model, Python, and the tools' versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}
    for tool, flag in (("opusenc", "--version"), ("lame", "--version")):
        if shutil.which(tool):
            p = subprocess.run([tool, flag], capture_output=True, text=True, check=False)
            info[f"{tool}_version"] = (
                (p.stdout or p.stderr).splitlines()[0] if (p.stdout or p.stderr) else "?"
            )
    if shutil.which("c2enc") and shutil.which("dpkg-query"):  # c2enc has no --version
        p = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "codec2"], capture_output=True, text=True, check=False
        )
        info["codec2_version"] = p.stdout.strip() or "?"
    try:
        info["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["commit"] = "?"
    try:
        import sparsecodec

        info["spev_version"] = sparsecodec.__version__
    except ImportError:
        info["spev_version"] = "?"
    return info


def run_benchmark(
    clips: Sequence[Clip],
    devset_dir: Path,
    codecs: Sequence[Codec],
    out_dir: Path,
    *,
    quick: bool = False,
    timeout_base_s: float = 60.0,
    timeout_factor: float = 10.0,
    keep: bool = False,
    plot: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every codec on every clip; write results.json / results.md / rate_quality.png into ``out_dir``.

    A command gets ``timeout_base_s + timeout_factor × duration`` seconds.  Returns the JSON document.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    meta: dict[str, Any] = machine_info()
    meta.update(
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        quick=quick,
        devset_dir=str(devset_dir),
        devset_seed=SEED,
        n_clips=len(clips),
        codecs=[c.name for c in codecs],
        command=" ".join(sys.argv),
        visqol_speech_mapping=metrics.visqol_speech_mapping(),
    )
    rows: list[dict[str, Any]] = []
    doc: dict[str, Any] = {"meta": meta, "summary": [], "rows": rows}

    def flush() -> None:
        meta["wall_s"] = time.perf_counter() - t0
        doc["summary"] = summarise(rows, [c.name for c in codecs])
        doc["bars"] = resolve_bars(doc["summary"])
        (out_dir / "results.json").write_text(json.dumps(doc, indent=1))

    for codec in codecs:  # batch work (one transcriber process for every clip it will see)
        if codec.available() is None:
            mine = [devset_dir / c.path for c in clips if c.category not in codec.skip_categories]
            codec.prepare(mine, timeout_base_s + timeout_factor * sum(c.duration_s for c in clips))

    for clip in clips:
        src = devset_dir / clip.path
        try:
            ref, sr = _read_audio(src)
            notes = _load_notes(devset_dir / clip.notes) if clip.notes else None
        except (OSError, sf.LibsndfileError, ValueError, KeyError, metrics.MetricError) as e:
            for c in codecs:
                rows.append({"clip": clip.id, "category": clip.category, "codec": c.name, "family": c.family})
                rows[-1].update(ok=False, error=f"reference unreadable: {e}")
            continue
        timeout = timeout_base_s + timeout_factor * clip.duration_s
        for codec in codecs:
            if clip.category in codec.skip_categories:
                continue
            work = out_dir / "work" / codec.name / clip.id
            t1 = time.perf_counter()
            row = evaluate(clip, ref, sr, src, notes, codec, work, timeout)
            row["bench_s"] = time.perf_counter() - t1
            rows.append(row)
            if "transcriber" in row:
                meta["transcriber"] = row["transcriber"]
            brief = f"ViSQOL {row['visqol']:.2f}" if "visqol" in row else row.get("error", "")[:100]
            if "note_f1" in row:
                brief += f"  note F1 {row['note_f1']:.2f} offset F1 {row['offset_f1']:.2f}"
            kb = f"{row['kbps']:.2f} kbps" if "kbps" in row else "-"
            log(f"{clip.id:10s} {codec.name:12s} {kb:>11s}  {brief}  ({row['bench_s']:.1f} s)")
            if not keep:
                shutil.rmtree(work, ignore_errors=True)
            flush()
    flush()
    (out_dir / "results.md").write_text(to_markdown(doc["summary"], meta))
    if plot:
        try:
            from bench.plot import plot_rate_quality

            plot_rate_quality(doc["summary"], out_dir / "rate_quality.png")
        except Exception as e:  # the plot is a convenience; the numbers are in the JSON
            log(f"plot failed: {e}")
    if not keep:
        shutil.rmtree(out_dir / "work", ignore_errors=True)
    return doc


def select_clips(clips: Sequence[Clip], quick: bool, only: str | None) -> list[Clip]:
    """``--quick`` subset, then ``--clips`` filter (comma-separated ids or categories)."""
    sel = [c for c in clips if c.id in QUICK_CLIPS] if quick else list(clips)
    if only:
        want = {w.strip() for w in only.split(",") if w.strip()}
        sel = [c for c in sel if c.id in want or c.category in want]
    return sel


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description="Run the spev benchmark.")
    ap.add_argument("--quick", action="store_true", help="a subset: 8 clips, spev default row (≈ 5 min)")
    ap.add_argument("--out", default="bench-out", help="output folder (default: bench-out)")
    ap.add_argument("--devset", default=str(DEFAULT_DIR), help="dev-set cache (built if missing)")
    ap.add_argument("--codecs", help="comma-separated row names to run (default: all)")
    ap.add_argument("--clips", help="comma-separated clip ids or categories (default: all)")
    ap.add_argument("--timeout-factor", type=float, default=10.0, help="per command: 60 s + this × duration")
    ap.add_argument("--keep", action="store_true", help="keep the coded and decoded files under OUT/work")
    ap.add_argument("--no-setup", action="store_true", help="skip bench/setup.sh (extras already installed)")
    args = ap.parse_args(argv)
    if not args.no_setup:  # idempotent and quiet: installs the Debian and PyPI extras on a fresh machine
        setup = Path(__file__).resolve().parent / "setup.sh"
        if subprocess.run(["bash", str(setup)], check=False).returncode != 0:
            print("bench.run: bench/setup.sh failed (see above)", file=sys.stderr)
            return 3
    # SIGTERM -> SystemExit, so a running codec command's process group is killed (see codecs.run_timed)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    devset_dir = Path(args.devset)
    try:
        clips = build(devset_dir) if devset_dir == DEFAULT_DIR else load_manifest(devset_dir)
    except (SpevError, OSError, subprocess.CalledProcessError) as e:
        print(f"bench.run: cannot get the dev set: {e}", file=sys.stderr)
        return 3
    clips = select_clips(clips, args.quick, args.clips)
    codecs = default_codecs(args.quick)
    if args.codecs:
        want = [w.strip() for w in args.codecs.split(",")]
        pool = {c.name: c for c in default_codecs(False, every_category=True)}
        unknown = [w for w in want if w not in pool]
        if unknown:
            print(f"bench.run: unknown codec rows {unknown}; known: {sorted(pool)}", file=sys.stderr)
            return 2
        codecs = [pool[w] for w in want]
    doc = run_benchmark(
        clips, devset_dir, codecs, Path(args.out), quick=args.quick, timeout_factor=args.timeout_factor,
        keep=args.keep,
    )  # fmt: skip
    print(to_markdown(doc["summary"], doc["meta"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
