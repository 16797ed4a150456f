"""The ``spev`` command line: forms, pipes, errors and exit codes, lazy imports."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from sparsecodec import __version__
from sparsecodec import api as codec
from sparsecodec.audio import io as audio_io
from sparsecodec.cli import COMMANDS, cli
from sparsecodec.errors import InputError, UsageError
from sparsecodec.jobs.plan import plan_paths as plan_jobs

NO_TORCH = """
import sys
from sparsecodec.cli import cli
try:
    cli.main(args=sys.argv[1:], prog_name="spev")
except SystemExit as exc:
    code = exc.code
assert "torch" not in sys.modules, "torch was imported"
print("EXIT", code, file=sys.stderr)
"""


def run_no_torch(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh interpreter and fail if torch was imported."""
    env = {"NO_COLOR": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


# ------------------------------------------------------------------------------------------- basics


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--version"], catch_exceptions=False)
    assert result.exit_code == 0 and result.output == f"spev {__version__}\n"


def test_help_lists_commands_without_torch() -> None:
    proc = run_no_torch("--help")
    assert proc.returncode == 0, proc.stderr
    assert "EXIT 0" in proc.stderr
    for name in ("encode", "decode", "inspect", "test"):
        assert f"  {name} " in proc.stdout
    assert set(COMMANDS) >= {"edit", "plot", "export", "import", "batch"}


def test_command_help(runner: CliRunner) -> None:
    for name in ("encode", "decode", "inspect", "test"):
        result = runner.invoke(cli, [name, "--help"], catch_exceptions=False)
        assert result.exit_code == 0 and f"spev {name}" in result.output


def test_plan_jobs_forms(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for name in ("a.wav", "b.flac", "notes.txt"):
        (tmp_path / "in" / name).write_bytes(b"x")
    (tmp_path / "in" / "sub").mkdir()
    (tmp_path / "in" / "sub" / "c.wav").write_bytes(b"x")

    def accept(p: Path) -> bool:
        return p.suffix in (".wav", ".flac")

    two = plan_jobs(["x.wav", "y.spev"], outdir=None, recursive=False, suffix=".spev", accept=accept)
    assert [(j.src, j.dst) for j in two] == [("x.wav", "y.spev")]
    one = plan_jobs(["x.wav"], outdir=None, recursive=False, suffix=".spev", accept=accept)
    assert [(j.src, j.dst) for j in one] == [("x.wav", "x.spev")]
    pipe = plan_jobs(["-", "-"], outdir=None, recursive=False, suffix=".spev", accept=accept)
    assert [(j.src, j.dst) for j in pipe] == [("-", "-")]
    out = tmp_path / "out"
    many = plan_jobs(
        ["p/a.wav", "q/b.wav", "c.wav"], outdir=str(out), recursive=False, suffix=".spev", accept=accept
    )
    assert [j.dst for j in many] == [str(out / "a.spev"), str(out / "b.spev"), str(out / "c.spev")]
    tree = plan_jobs([str(tmp_path / "in")], outdir=str(out), recursive=True, suffix=".spev", accept=accept)
    assert sorted(j.dst for j in tree if j.dst) == sorted(
        [str(out / "in" / "a.spev"), str(out / "in" / "b.spev"), str(out / "in" / "sub" / "c.spev")]
    )
    last_is_dir = plan_jobs(
        ["a.wav", "b.wav", str(out.parent)], outdir=None, recursive=False, suffix=".spev", accept=accept
    )
    assert [j.dst for j in last_is_dir] == [str(out.parent / "a.spev"), str(out.parent / "b.spev")]
    with pytest.raises(UsageError):
        plan_jobs(["a.wav", "b.wav", "c.wav"], outdir=None, recursive=False, suffix=".spev", accept=accept)
    with pytest.raises(UsageError):
        plan_jobs(["-"], outdir=str(out), recursive=False, suffix=".spev", accept=accept)
    folder = plan_jobs(
        [str(tmp_path / "in")], outdir=str(out), recursive=False, suffix=".spev", accept=accept
    )
    assert isinstance(folder[0].error, UsageError)


# ---------------------------------------------------------------------------- errors and exit codes


def test_missing_input_is_exit_3(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        cli, ["encode", str(tmp_path / "nope.wav"), str(tmp_path / "o.spev")], catch_exceptions=False
    )
    assert result.exit_code == InputError.exit_code == 3
    assert result.stderr.strip().count("\n") == 0 and "no such file" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "o.spev").exists()


def test_usage_errors_are_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["encode", "a.wav", "b.wav", "c.wav"], catch_exceptions=False)
    assert result.exit_code == 2 and "-d OUTDIR" in result.stderr
    result = runner.invoke(cli, ["encode", "a.wav", "o.spev", "--tag", "novalue"], catch_exceptions=False)
    assert result.exit_code == 2
    result = runner.invoke(cli, ["decode", "--bits", "12", "a.spev", "o.wav"], catch_exceptions=False)
    assert result.exit_code == 2


def test_existing_output_is_refused_unless_force(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[object, object]] = []

    def fake_encode(src: object, dst: object, **kw: object) -> codec.EncodeResult:
        calls.append((src, dst))
        Path(str(dst)).write_bytes(b"new")
        return codec.EncodeResult(1.0, 8000, 1, 3, 1, 3, 0.024)

    monkeypatch.setattr(codec, "encode_file", fake_encode)
    src, dst = tmp_path / "a.wav", tmp_path / "a.spev"
    src.write_bytes(b"x")
    dst.write_bytes(b"old")
    result = runner.invoke(cli, ["encode", str(src), str(dst)], catch_exceptions=False)
    assert result.exit_code == 5 and "exists" in result.stderr and "--force" in result.stderr
    assert dst.read_bytes() == b"old" and not calls
    result = runner.invoke(cli, ["encode", "--force", str(src), str(dst)], catch_exceptions=False)
    assert result.exit_code == 0 and dst.read_bytes() == b"new"
    # Several inputs: an existing output is a counted skip, not a failure.
    other = tmp_path / "b.wav"
    other.write_bytes(b"x")
    calls.clear()
    result = runner.invoke(cli, ["encode", str(src), str(other), "-d", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0 and "skipping" in result.stderr and len(calls) == 1


def test_internal_error_and_interrupt(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "a.wav"
    src.write_bytes(b"x")

    def boom(*a: object, **k: object) -> None:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(codec, "encode_file", boom)
    result = runner.invoke(cli, ["encode", str(src), str(tmp_path / "o.spev")], catch_exceptions=False)
    assert result.exit_code == 1 and result.stderr.startswith("spev: internal error: ZeroDivisionError: bug")
    assert "Traceback" not in result.stderr
    result = runner.invoke(cli, ["encode", "-v", str(src), str(tmp_path / "o.spev")], catch_exceptions=False)
    assert result.exit_code == 1 and "Traceback" in result.stderr

    def interrupted(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(codec, "encode_file", interrupted)
    result = runner.invoke(cli, ["encode", str(src), str(tmp_path / "o.spev")], catch_exceptions=False)
    assert result.exit_code == 130 and "interrupted" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]


# ----------------------------------------------------------------------------------- inspect / test


def test_inspect_text_json_events(runner: CliRunner, spev_file: Path) -> None:
    result = runner.invoke(cli, ["inspect", str(spev_file)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "4.000 s" in out and "22050 Hz" in out and "20 (5.0/s) in 4 chunks" in out
    assert "kbps" in out and "test-fixture" in out and "[bold]not markup[/bold]" in out
    result = runner.invoke(cli, ["inspect", "--json", "--events", str(spev_file)], catch_exceptions=False)
    doc = json.loads(result.stdout)
    assert doc["events"] == 20 and doc["channels"] == 1 and doc["sample_rate"] == 22050
    assert doc["bytes"] == spev_file.stat().st_size
    assert abs(doc["kbps"] - doc["bytes"] * 8 / 4.0 / 1000) < 1e-9
    assert len(doc["event_list"]) == 20 and set(doc["event_list"][0]) >= {"time_s", "level", "pitch", "pan"}
    times = [e["time_s"] for e in doc["event_list"]]
    assert times == sorted(times) and times[0] >= 0 and times[-1] < 4.0
    result = runner.invoke(cli, ["inspect", "--events", str(spev_file)], catch_exceptions=False)
    assert "time_s\tlevel\tpitch" in result.stdout and result.stdout.count("\n") > 20
    result = runner.invoke(cli, ["inspect", "--json", str(spev_file), str(spev_file)], catch_exceptions=False)
    assert [d["events"] for d in json.loads(result.stdout)] == [20, 20]


def test_inspect_from_stdin(runner: CliRunner, spev_file: Path) -> None:
    result = runner.invoke(
        cli, ["inspect", "--json", "-"], input=spev_file.read_bytes(), catch_exceptions=False
    )
    assert result.exit_code == 0 and json.loads(result.stdout)["bytes"] == spev_file.stat().st_size


def _damaged(spev_file: Path, tmp_path: Path) -> dict[str, Path]:
    data = bytearray(spev_file.read_bytes())
    out: dict[str, Path] = {}

    def put(name: str, content: bytes) -> None:
        out[name] = tmp_path / f"{name}.spev"
        out[name].write_bytes(content)

    put("truncated", bytes(data[: len(data) * 2 // 3]))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    put("bitflip", bytes(flipped))
    put("magic", b"RIFF" + bytes(data[4:]))
    newer = bytearray(data)
    newer[4] = 99
    put("newer", bytes(newer))
    oversized = bytearray(data)
    oversized[5:9] = (0xFFFFFFF0).to_bytes(4, "little")
    put("oversized", bytes(oversized))
    return out


def test_damaged_files_each_have_their_own_error(runner: CliRunner, spev_file: Path, tmp_path: Path) -> None:
    expect = {
        "truncated": "ends",
        "bitflip": "CRC",
        "magic": "bad magic",
        "newer": "newer",
        "oversized": "max",
    }
    messages = set()
    for name, path in _damaged(spev_file, tmp_path).items():
        for command in ("test", "decode"):
            args = [command, str(path)] + ([str(tmp_path / f"{name}.wav")] if command == "decode" else [])
            result = runner.invoke(cli, args, catch_exceptions=False)
            assert result.exit_code == 4, (name, command, result.stderr)
            line = result.stderr.strip()
            assert "\n" not in line and line.startswith("spev: error: ") and str(path) in line, line
            assert expect[name].lower() in line.lower(), (name, line)
            assert not (tmp_path / f"{name}.wav").exists()
        messages.add(line.split(": ", 3)[-1])
    assert len(messages) == len(expect)


def test_test_command_and_batch_exit_code(runner: CliRunner, spev_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["test", str(spev_file)], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout == f"{spev_file}: ok (4 chunks)\n"
    bad = _damaged(spev_file, tmp_path)["bitflip"]
    result = runner.invoke(cli, ["test", str(spev_file), str(bad), str(spev_file)], catch_exceptions=False)
    assert result.exit_code == 6 and result.stdout.count(": ok") == 2
    assert f"spev: error: {bad}" in result.stderr and "1 of 3 inputs failed" in result.stderr


def test_inspect_and_test_do_not_import_torch(spev_file: Path) -> None:
    for args in (["inspect", "--json", str(spev_file)], ["test", str(spev_file)]):
        proc = run_no_torch(*args)
        assert proc.returncode == 0, proc.stderr
        assert "EXIT 0" in proc.stderr


# ------------------------------------------------------------------------------- real conversions


def spev_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "sparsecodec.cli", *args]


def _env() -> dict[str, str]:
    return {"NO_COLOR": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[1])}


def test_decode_pipe_equals_file_decode(spev_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "file.wav"
    proc = subprocess.run(
        spev_cmd("decode", str(spev_file), str(out)), env=_env(), capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    with open(spev_file, "rb") as f:
        piped = subprocess.run(
            spev_cmd("decode", "-", "-"), stdin=f, env=_env(), capture_output=True, timeout=60
        )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == out.read_bytes()
    assert int.from_bytes(piped.stdout[4:8], "little") == len(piped.stdout) - 8
    y, rate = sf.read(io.BytesIO(piped.stdout))
    assert rate == 22050 and len(y) == 4 * 22050 and np.abs(y).max() > 1e-3


@pytest.mark.slow
def test_encode_decode_pipeline(tmp_path: Path, tone: Callable[..., np.ndarray]) -> None:
    """cat a.wav | spev encode - - | spev decode - - > b.wav, and the piped .spev equals a file encode."""
    rate = 8000
    wav = tmp_path / "a.wav"
    sf.write(str(wav), tone(rate, 1.0).T, rate)
    assert (
        subprocess.run(
            spev_cmd("encode", str(wav), str(tmp_path / "a.spev")), env=_env(), timeout=120
        ).returncode
        == 0
    )
    with open(wav, "rb") as f:
        enc = subprocess.Popen(spev_cmd("encode", "-", "-"), stdin=f, stdout=subprocess.PIPE, env=_env())
        dec = subprocess.run(
            spev_cmd("decode", "-", "-"), stdin=enc.stdout, capture_output=True, env=_env(), timeout=120
        )
        assert enc.stdout is not None
        enc.stdout.close()
        assert enc.wait(timeout=120) == 0
    assert dec.returncode == 0, dec.stderr
    y, sr = sf.read(io.BytesIO(dec.stdout), always_2d=True)
    assert sr == rate and y.shape == (rate, 1)
    with open(wav, "rb") as f:
        piped_spev = subprocess.run(
            spev_cmd("encode", "-", "-"), stdin=f, capture_output=True, env=_env(), timeout=120
        )
    assert piped_spev.stdout == (tmp_path / "a.spev").read_bytes()  # deterministic, pipe or file


def test_start_end_and_format_options(runner: CliRunner, spev_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "clip.flac"
    result = runner.invoke(
        cli,
        ["decode", str(spev_file), str(out), "--start", "1", "--end", "2.5", "--bits", "24"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    info = sf.info(str(out))
    assert info.format == "FLAC" and info.subtype == "PCM_24" and info.frames == round(1.5 * 22050)
    result = runner.invoke(cli, ["decode", str(spev_file), str(tmp_path / "x.mp4")], catch_exceptions=False)
    assert result.exit_code == 2 and "unknown output type" in result.stderr
    result = runner.invoke(
        cli, ["decode", str(spev_file), str(tmp_path / "r.wav"), "--rate", "8000"], catch_exceptions=False
    )
    assert result.exit_code == 0 and sf.info(str(tmp_path / "r.wav")).frames == 4 * 8000
    result = runner.invoke(
        cli, ["decode", str(spev_file), str(tmp_path / "e.wav"), "--start", "5"], catch_exceptions=False
    )
    assert result.exit_code == 2 and "time range" in result.stderr


def test_batch_with_a_corrupt_input(runner: CliRunner, spev_file: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    good_a = src / "a.spev"
    good_a.write_bytes(spev_file.read_bytes())
    (src / "sub" / "c.spev").write_bytes(spev_file.read_bytes())
    (src / "b.spev").write_bytes(b"SPEV" + bytes(100))  # corrupt
    out = tmp_path / "out"
    result = runner.invoke(cli, ["decode", "-r", str(src), "-d", str(out)], catch_exceptions=False)
    assert result.exit_code == 6, result.stderr
    assert (out / "src" / "a.wav").exists() and (out / "src" / "sub" / "c.wav").exists()
    assert not (out / "src" / "b.wav").exists()
    assert sorted(p.name for p in (out / "src").iterdir()) == ["a.wav", "sub"]  # no temporaries
    errors = [line for line in result.stderr.splitlines() if line.startswith("spev: error:")]
    assert any(str(src / "b.spev") in line for line in errors)
    assert "2 done, 0 skipped, 1 failed (of 3)" in result.stderr
    # encode: an unreadable input among good ones
    wav = tmp_path / "w.wav"
    sf.write(str(wav), np.zeros(800, np.float32), 8000)
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    encoded: list[str] = []

    def fake_encode(src: object, dst: object, **kw: object) -> codec.EncodeResult:
        with audio_io.AudioReader(str(src)):
            pass
        encoded.append(str(src))
        Path(str(dst)).write_bytes(b"ok")
        return codec.EncodeResult(0.1, 8000, 1, 0, 1, 2, 0.16)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(codec, "encode_file", fake_encode)
        result = runner.invoke(
            cli,
            ["encode", str(tmp_path / "bad.wav"), str(wav), "-d", str(tmp_path / "enc")],
            catch_exceptions=False,
        )
    assert result.exit_code == 6 and encoded == [str(wav)]
    assert (tmp_path / "enc" / "w.spev").exists() and not (tmp_path / "enc" / "bad.spev").exists()
    assert "cannot read audio" in result.stderr


def test_one_planner_refuses_two_inputs_for_one_output(tmp_path: Path, runner: CliRunner) -> None:
    """`spev encode` plans like `spev batch` (sparsecodec.jobs.plan): a.wav and a.flac would both write
    a.spev, so the second is refused (its own error line, exit 6) and the first is encoded."""
    from sparsecodec.jobs.plan import plan_paths, plan_tree

    x = (0.3 * np.sin(2 * np.pi * 330 * np.arange(8000) / 8000)).astype(np.float32)
    (tmp_path / "in").mkdir()
    sf.write(str(tmp_path / "in" / "a.wav"), x, 8000)
    sf.write(str(tmp_path / "in" / "a.flac"), x, 8000)
    accept = lambda p: p.suffix in (".wav", ".flac")  # noqa: E731
    for jobs in (
        plan_paths(
            [str(tmp_path / "in")], outdir=str(tmp_path / "o"), recursive=True, suffix=".spev", accept=accept
        ),
        plan_tree(tmp_path / "in", tmp_path / "o", ".spev", accept),
    ):
        assert [j.error is None for j in jobs] == [True, False]
        assert "collides" in str(jobs[1].error)
    result = runner.invoke(
        cli, ["encode", "--init", "analysis", "-r", str(tmp_path / "in"), "-d", str(tmp_path / "o")]
    )
    assert result.exit_code == 6, result.stderr
    assert "collides" in result.stderr
    assert [p.name for p in (tmp_path / "o" / "in").iterdir()] == ["a.spev"]


def test_encode_format_option(runner: CliRunner, tmp_path: Path) -> None:
    """``--format 1`` writes a file an old (format-1) reader reads; ``--format 2`` is the default's."""
    t = np.arange(44100) / 44100
    wav = tmp_path / "a.wav"
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100)
    for fmt in ("1", "2"):
        out = tmp_path / f"a{fmt}.spev"
        r = runner.invoke(cli, ["encode", str(wav), str(out), "--format", fmt, "--init", "analysis"])
        assert r.exit_code == 0, r.output
        assert codec.read_info(out)[0].format_version == int(fmt)
    r = runner.invoke(cli, ["encode", str(wav), str(tmp_path / "d.spev"), "--init", "analysis"])
    assert r.exit_code == 0 and codec.read_info(tmp_path / "d.spev")[0].format_version == 2
    r = runner.invoke(cli, ["encode", str(wav), str(tmp_path / "b.spev"), "--format", "3"])
    assert r.exit_code == 2
