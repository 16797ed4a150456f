"""The ``spev`` command line: forms, pipes, errors and exit codes, lazy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sparsecodec import __version__, codec
from sparsecodec.cli import COMMANDS, cli
from sparsecodec.commands import plan_jobs
from sparsecodec.errors import InputError, UsageError

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
