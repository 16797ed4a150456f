"""spev batch: folder mirroring, manifest, skip/resume after SIGKILL, exit codes — local pool and Ray.

The end-to-end tests convert a tree of 50 short files (48 good, 2 corrupt) with the real codec: a run is
killed midway (SIGKILL to its whole process group), the rerun must complete it with every output passing the
container's verify and no partial or temporary file left, the corrupt inputs must be in the manifest with
their error and the exit status must be BatchError's; a third run must do nothing new.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from sparsecodec.errors import BatchError, InputError, OutputExistsError, UsageError
from sparsecodec.jobs import batch

N_GOOD = 48
BAD = ("bad_garbage.wav", "d1/bad_header.wav")
KILL_AFTER = 4  # outputs that must exist before the first run is killed


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def src_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 decaying tones of 0.3-0.5 s (WAV and FLAC, 16/22.05 kHz, three folders) + 2 corrupt files."""
    root = tmp_path_factory.mktemp("batch_src")
    rng = np.random.default_rng(20240607)
    for i in range(N_GOOD):
        folder = root if i % 3 == 0 else root / f"d{i % 3}"
        folder.mkdir(exist_ok=True)
        sr = 22050 if i % 2 else 16000
        n = int(sr * rng.uniform(0.3, 0.5))
        t = np.arange(n) / sr
        f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        x = 0.4 * np.sin(2 * np.pi * f0 * t) * np.exp(-4 * t) + 0.003 * rng.standard_normal(n)
        ext = "flac" if i % 8 == 5 else "wav"
        sf.write(folder / f"tone{i:02d}.{ext}", x.astype(np.float32), sr)
    (root / BAD[0]).write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    (root / BAD[1]).write_bytes((root / "tone00.wav").read_bytes()[:30])  # a WAV header cut short
    (root / "notes.txt").write_text("not audio\n")  # not picked up
    return root


def _good_outputs(dst: Path) -> list[Path]:
    return sorted(p for p in dst.rglob("*.spev") if not p.name.startswith("."))


def _temps(dst: Path) -> list[Path]:
    return [p for p in dst.rglob(".*") if batch._is_temp(p.name)]


def _verify_all(dst: Path) -> int:
    """Every visible output verifies; returns how many there are."""
    from sparsecodec.format import container

    outs = _good_outputs(dst)
    for p in outs:
        with open(p, "rb") as f:
            container.Reader(f).verify()  # raises a FormatError on any damage
    visible = {p for p in dst.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert visible - set(outs) <= {dst / batch.MANIFEST_NAME}, "unexpected files in DST"
    return len(outs)


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "sparsecodec.cli.commands.batch", *map(str, args)]


def _run_killed(cmd: list[str], dst: Path, tmp: Path) -> int:
    """Start ``cmd`` in its own session, SIGKILL the whole group once KILL_AFTER outputs exist."""
    log = open(tmp / "killed.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if dst.exists() and len(_good_outputs(dst)) >= KILL_AFTER:
                break
            time.sleep(0.02)
        assert proc.poll() is None, (tmp / "killed.log").read_text(errors="replace")[-2000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()
    return len(_good_outputs(dst))


def _check_manifest(dst: Path, src: Path) -> list[dict]:
    rows = batch.read_manifest(dst / batch.MANIFEST_NAME)
    assert rows, "empty manifest"
    keys = {"input", "output", "duration", "kbps", "status", "error", "seconds"}
    for r in rows:
        assert keys <= set(r), r
        assert r["status"] in ("ok", "skipped", "failed")
    bad = {str(src / b) for b in BAD}
    failed = [r for r in rows if r["status"] == "failed"]
    assert {r["input"] for r in failed} == bad
    for r in failed:
        assert r["error"] and r["code"] == InputError.exit_code, r
    done = {r["input"] for r in rows if r["status"] in ("ok", "skipped")}
    assert len(done) == N_GOOD
    for r in rows:
        if r["status"] == "ok":
            assert r["duration"] == pytest.approx(sf.info(r["input"]).duration, abs=0.01)
            assert r["kbps"] > 0 and r["seconds"] > 0
    return rows


def _plant_stale_temps(dst: Path) -> list[Path]:
    """What a killed run may leave: our temporary and the codec's."""
    (dst / "d1").mkdir(parents=True, exist_ok=True)
    stale = [dst / "d1" / f".tone01.spev.4242{batch.TEMP_MARK}.spev", dst / ".tone03.spev.a1b2c3d4.tmp"]
    for p in stale:
        p.write_bytes(b"SPEV partial")
    return stale


def _rerun_changes_nothing(src: Path, dst: Path, **kw: object) -> None:
    mtimes = {p: p.stat().st_mtime_ns for p in _good_outputs(dst)}
    s = batch.run_batch(src, dst, "encode", **kw)  # type: ignore[arg-type]
    assert (s.count("ok"), s.count("skipped"), s.count("failed")) == (0, N_GOOD, len(BAD))
    assert {p: p.stat().st_mtime_ns for p in _good_outputs(dst)} == mtimes
    with pytest.raises(BatchError):
        batch.raise_for_failures(s)


# ----------------------------------------------------------------------------------- end to end: local


def test_local_pool_kill_resume_rerun(src_tree: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    n_killed = _run_killed(_cli("encode", src_tree, dst, "--jobs", "2"), dst, tmp_path)
    assert KILL_AFTER <= n_killed < N_GOOD
    assert _verify_all(dst) == n_killed  # killed midway: no partial output under a real name
    stale = _plant_stale_temps(dst)

    done = subprocess.run(
        _cli("encode", src_tree, dst, "--jobs", "2"), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == BatchError.exit_code, done.stderr
    assert "failed" in done.stderr and "bad_garbage.wav" in done.stderr
    assert _verify_all(dst) == N_GOOD
    assert not any(p.exists() for p in stale) and not _temps(dst)
    assert (dst / "d2").is_dir() and (dst / "tone00.spev").is_file()  # the tree is mirrored
    rows = _check_manifest(dst, src_tree)
    assert sum(r["status"] == "skipped" for r in rows) >= n_killed  # the rerun skipped what was finished

    _rerun_changes_nothing(src_tree, dst, jobs=2)

    # decode one sub-tree back to FLAC (numpy renderer; lengths as the originals')
    wav = tmp_path / "flac"
    s = batch.run_batch(dst / "d2", wav, "decode", jobs=2, fmt="flac")
    assert s.count("ok") == 16 and s.exit_code == 0
    for r in s.results:
        original = src_tree / "d2" / Path(r.output).name
        info = sf.info(r.output)
        assert info.format == "FLAC" and r.duration == pytest.approx(info.duration)
        assert info.duration == pytest.approx(
            sf.info(next(original.parent.glob(original.stem + ".*"))).duration
        )


# ------------------------------------------------------------------------------------- end to end: Ray


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


def test_ray_kill_resume_rerun(src_tree: Path, tmp_path: Path, ray_address: str) -> None:
    dst = tmp_path / "out"
    cmd = _cli("encode", src_tree, dst, "--engine", "ray", "--address", ray_address)
    n_killed = _run_killed(cmd, dst, tmp_path)
    assert KILL_AFTER <= n_killed < N_GOOD
    time.sleep(1.0)  # Ray stops the dead driver's tasks; a task finishing meanwhile still writes atomically
    assert _verify_all(dst) >= n_killed
    _plant_stale_temps(dst)

    s = batch.run_batch(src_tree, dst, "encode", engine="ray")  # joins this process's Ray instance
    assert s.engine == "ray" and s.jobs == 2
    assert s.exit_code == BatchError.exit_code
    assert s.count("failed") == len(BAD) and s.count("ok") + s.count("skipped") == N_GOOD
    assert _verify_all(dst) == N_GOOD and not _temps(dst)
    _check_manifest(dst, src_tree)

    _rerun_changes_nothing(src_tree, dst, engine="ray")


# ------------------------------------------------------------------------------------------- unit tests


def _touch(p: Path) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")


def test_plan_mirrors_tree(tmp_path: Path) -> None:
    src, dst = tmp_path / "in", tmp_path / "in" / "out"
    for name in ("a.wav", "b.FLAC", "sub/c.ogg", "sub/deeper/d.aiff", "notes.txt", ".hidden.wav", "x.spev"):
        _touch(src / name)
    _touch(dst / "old.wav")  # DST inside SRC is never walked
    jobs, failures = batch.plan(src, dst, "encode")
    assert not failures
    assert [
        (Path(j.src).relative_to(src).as_posix(), Path(j.dst).relative_to(dst).as_posix()) for j in jobs
    ] == [
        ("a.wav", "a.spev"),
        ("b.FLAC", "b.spev"),
        ("sub/c.ogg", "sub/c.spev"),
        ("sub/deeper/d.aiff", "sub/deeper/d.spev"),
    ]
    _touch(src / "a.flac")  # a.wav and a.flac both want a.spev: the second one fails, the first runs
    jobs, failures = batch.plan(src, dst, "encode")
    assert len(jobs) == 4 and [Path(f.input).name for f in failures] == ["a.wav"]
    assert failures[0].code == UsageError.exit_code and "collides" in (failures[0].error or "")

    jobs, _ = batch.plan(src, tmp_path / "wav", "decode", fmt="flac")
    assert [Path(j.dst).name for j in jobs] == ["x.flac"]
    with pytest.raises(UsageError):
        batch.plan(src, dst, "decode", fmt="mp3")
    with pytest.raises(InputError):
        batch.plan(tmp_path / "missing", dst, "encode")


def test_manifest_repairs_partial_line(tmp_path: Path) -> None:
    path = tmp_path / batch.MANIFEST_NAME
    path.write_text('{"input": "a", "status": "ok"}\n{"input": "b", "sta')  # killed mid-write
    with batch.Manifest(path) as m:
        m.write(batch.FileResult("c.wav", "c.spev", "failed", "bad", 3))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["input"] for r in rows] == ["a", "c.wav"]
    assert rows[1]["code"] == 3 and rows[1]["error"] == "bad"


def test_clean_stale_temps_only_touches_temporaries(tmp_path: Path) -> None:
    keep = [tmp_path / "a.spev", tmp_path / ".hidden.wav", tmp_path / "s" / "notes.txt.tmp"]
    gone = [tmp_path / ".a.spev.x1y2z3w4.tmp", tmp_path / "s" / f".b.wav.99{batch.TEMP_MARK}.wav"]
    for p in keep + gone:
        _touch(p)
    assert batch.clean_stale_temps(tmp_path) == 2
    assert all(p.exists() for p in keep) and not any(p.exists() for p in gone)


def test_convert_one_reports_errors_and_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....")
    r = batch.convert_one("decode", str(bad), str(tmp_path / "o" / "bad.wav"), {"fmt": "wav"})
    assert r.status == "failed" and r.code != 0 and r.error
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p != bad]


def crashy_codec(src: str, dst: str, **_: object) -> dict[str, float]:
    """A stand-in codec for the worker-death test: copies, or kills its process for 'crash*' inputs."""
    if Path(src).name.startswith("crash"):
        os._exit(9)
    Path(dst).write_bytes(Path(src).read_bytes())
    return {"duration": 0.5}


def test_dead_worker_fails_only_its_own_file(tmp_path: Path) -> None:
    src = tmp_path / "in"
    for name in ("a0.wav", "a1.wav", "a2.wav", "crash.wav", "a3.wav", "a4.wav", "a5.wav"):
        _touch(src / name)
    s = batch.run_batch(src, tmp_path / "out", "encode", jobs=2, impl=f"{__name__}:crashy_codec")
    assert sorted(Path(r.input).name for r in s.results if r.status == "ok") == [
        f"a{i}.wav" for i in range(6)
    ]
    assert [(Path(r.input).name, r.code) for r in s.failed] == [("crash.wav", 1)]
    assert "died" in (s.failed[0].error or "")
    assert not _temps(tmp_path / "out")


def test_skip_and_force(tmp_path: Path) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    for name in ("a.wav", "s/b.wav"):
        _touch(src / name)
    impl = f"{__name__}:crashy_codec"
    counts = []
    for force in (False, False, True):
        s = batch.run_batch(src, dst, "encode", jobs=1, force=force, impl=impl)
        counts.append((s.count("ok"), s.count("skipped")))
    assert counts == [(2, 0), (0, 2), (2, 0)]
    rows = batch.read_manifest(dst / batch.MANIFEST_NAME)
    assert [r["status"] for r in rows] == ["ok", "ok", "skipped", "skipped", "ok", "ok"]


def test_dst_lock_refuses_a_second_run(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    with batch._dst_lock(tmp_path), pytest.raises(OutputExistsError):
        batch.run_batch(src, tmp_path, "encode")


def test_ray_missing_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(UsageError, match=r"pip install 'spev\[ray\]'"):
        batch.run_batch(tmp_path, tmp_path / "out", "encode", engine="ray")
    from sparsecodec.cli.commands.batch import command

    res = CliRunner().invoke(command, ["encode", str(tmp_path), str(tmp_path / "o"), "--engine", "ray"])
    assert isinstance(res.exception, UsageError)


def test_cli_options(tmp_path: Path) -> None:
    from sparsecodec.cli.commands.batch import command

    runner = CliRunner()
    res = runner.invoke(command, ["encode", str(tmp_path), str(tmp_path / "o"), "--address", "x"])
    assert isinstance(res.exception, UsageError) and "--engine ray" in str(res.exception)
    res = runner.invoke(command, ["decode", str(tmp_path), str(tmp_path / "o"), "--jobs", "0"])
    assert res.exit_code == 2
    empty = runner.invoke(command, ["decode", str(tmp_path), str(tmp_path / "o"), "-j", "1"])
    assert empty.exit_code == 0, empty.output  # nothing to do is not an error
    assert (tmp_path / "o" / batch.MANIFEST_NAME).exists()
    res = runner.invoke(command, ["encode", str(tmp_path / "missing"), str(tmp_path / "o")])
    assert isinstance(res.exception, InputError)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    res = runner.invoke(command, ["encode", "-q", str(bad), str(tmp_path / "o1"), "-j", "1"])
    # a single input: that input's own error (3, unreadable audio), not BatchError
    assert isinstance(res.exception, Exception) and getattr(res.exception, "exit_code", None) == 3
    assert str(bad) in str(res.exception)


def test_no_torch_or_ray_at_start_up() -> None:
    code = (
        "import sys; from click.testing import CliRunner; "
        "from sparsecodec.cli.commands.batch import command; "
        "r = CliRunner().invoke(command, ['encode', '--help']); assert r.exit_code == 0, r.output; "
        "import sparsecodec.jobs.batch; bad = {'torch', 'ray'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
