"""Damaged inputs, signals and unusual outputs, at the command line: exit codes and files on disk.

Each case runs ``python -m sparsecodec.cli`` (the real process: its signal handling and exit statuses) or
the click runner where no process is needed.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from sparsecodec.audio import io as audio_io
from sparsecodec.cli import cli
from sparsecodec.errors import OutputExistsError
from sparsecodec.format.container import MAGIC

RATE = 22050


def spev(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run ``spev ARGS`` in a fresh process; returns it with text stdout/stderr."""
    return subprocess.run(
        [sys.executable, "-m", "sparsecodec.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
        **kw,  # type: ignore[call-overload]
    )


def tone_wav(path: Path, seconds: float, rate: int = RATE, channels: int = 1) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    sf.write(str(path), np.stack([x] * channels, 1).astype(np.float32), rate, subtype="PCM_16")
    return path


def truncated_wav(path: Path, seconds: float = 10.0, keep_s: float = 0.07) -> Path:
    """A 16-bit mono WAV whose header declares ``seconds`` but whose data stops after ``keep_s``."""
    full = tone_wav(path.with_suffix(".full.wav"), seconds).read_bytes()
    path.write_bytes(full[: 44 + 2 * round(keep_s * RATE)])
    path.with_suffix(".full.wav").unlink()
    return path


def leftovers(folder: Path) -> list[str]:
    """Hidden temporaries (``.NAME.XXXX.tmp``) left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------------------------- damaged inputs


def test_truncated_wav_is_exit_3_and_writes_nothing(tmp_path: Path) -> None:
    src = truncated_wav(tmp_path / "cut.wav")
    out = tmp_path / "cut.spev"
    r = spev("encode", "--init", "analysis", str(src), str(out))
    assert r.returncode == 3, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"spev: error: {src}: truncated input: header declares 10.00 s, file holds 0.07 s "
        "(--ignore-errors encodes what is there)"
    ]
    assert not out.exists() and not leftovers(tmp_path)

    r = spev("encode", "--init", "analysis", "--ignore-errors", str(src), str(out))
    assert r.returncode == 0, r.stderr
    assert "spev: warning:" in r.stderr and "truncated input" in r.stderr and "Traceback" not in r.stderr
    assert out.is_file()


def test_truncated_flac_is_exit_3(tmp_path: Path) -> None:
    full = tmp_path / "full.flac"
    t = np.arange(10 * RATE) / RATE
    sf.write(str(full), (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), RATE)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    r = spev("encode", "--init", "analysis", str(cut), str(tmp_path / "cut.spev"))
    assert r.returncode == 3 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cut.flac" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "cut.spev").exists() and not leftovers(tmp_path)


def test_piped_wav_with_unknown_size_is_not_truncated(tmp_path: Path) -> None:
    """sox and ffmpeg write 0xFFFFFFFF sizes when the WAV goes to a pipe: that is not damage."""
    wav = tone_wav(tmp_path / "t.wav", 1.0).read_bytes()
    assert wav[36:40] == b"data"
    piped = wav[:4] + struct.pack("<I", 0xFFFFFFFF) + wav[8:40] + struct.pack("<I", 0xFFFFFFFF) + wav[44:]
    assert audio_io.wav_declared_frames(piped) is None
    assert audio_io.wav_declared_frames(wav) == RATE
    proc = subprocess.run(
        [sys.executable, "-m", "sparsecodec.cli", "encode", "--init", "analysis", "-", "-"],
        input=piped,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(MAGIC)


def test_nan_and_huge_float_inputs(tmp_path: Path) -> None:
    x = (0.2 * np.sin(np.arange(RATE) / 10)).astype(np.float32)
    bad = x.copy()
    bad[RATE // 2] = np.nan
    sf.write(str(tmp_path / "nan.wav"), bad, RATE, subtype="FLOAT")
    r = spev("encode", "--init", "analysis", str(tmp_path / "nan.wav"), str(tmp_path / "nan.spev"))
    assert r.returncode == 3 and "NaN or infinite samples at 0.50 s" in r.stderr, r.stderr
    assert not (tmp_path / "nan.spev").exists()
    r = spev(
        "encode", "--init", "analysis", "--ignore-errors", str(tmp_path / "nan.wav"), str(tmp_path / "n.spev")
    )
    assert r.returncode == 0 and "replaced by 0" in r.stderr, r.stderr

    huge = x * np.float32(1e30)
    sf.write(str(tmp_path / "huge.wav"), huge, RATE, subtype="FLOAT")
    r = spev("encode", "-q", "--init", "analysis", str(tmp_path / "huge.wav"), str(tmp_path / "huge.spev"))
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines and all(line.startswith("spev: ") for line in lines), r.stderr  # no numpy warnings
    assert any("clipped" in line for line in lines)


def test_batch_marks_a_truncated_file_failed_and_goes_on(tmp_path: Path) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    tone_wav(src / "good.wav", 1.0)
    truncated_wav(src / "cut.wav", seconds=3.0, keep_s=0.5)
    r = spev("batch", "encode", str(src), str(dst), "--jobs", "1", "--init", "analysis")
    assert r.returncode == 6, r.stderr
    lines = [json.loads(s) for s in (dst / "spev-manifest.jsonl").read_text().splitlines()]
    status = {Path(d["input"]).name: d["status"] for d in lines}
    assert status == {"good.wav": "ok", "cut.wav": "failed"}
    failed = next(d for d in lines if d["status"] == "failed")
    assert "truncated input" in failed["error"] and failed["code"] == 3
    assert "truncated input" in r.stdout + r.stderr
    assert (dst / "good.spev").is_file() and not (dst / "cut.spev").exists()


# ------------------------------------------------------------------------------------------- signals


def _wait_for(cond: object, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not cond():  # type: ignore[operator]
        assert time.monotonic() - t0 < timeout, "timed out waiting"
        time.sleep(0.05)


def _start(*args: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sparsecodec.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", **env},
        # a test run started in the background (``cmd &``) ignores SIGINT, and children inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@pytest.mark.parametrize(
    ("sig", "code", "word"), [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]
)
def test_signal_mid_encode_leaves_nothing(tmp_path: Path, sig: int, code: int, word: str) -> None:
    src = tone_wav(tmp_path / "long.wav", 60.0)
    out = tmp_path / "long.spev"
    proc = _start("encode", "--init", "analysis", str(src), str(out))
    _wait_for(lambda: leftovers(tmp_path) or proc.poll() is not None)  # the output is being written
    assert proc.poll() is None, "encode finished before the signal"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.decode().strip().splitlines()[-1] == f"spev: {word}"
    assert not out.exists() and not leftovers(tmp_path)


def _blocked_in_worker() -> list[int]:
    return sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))


def test_a_signal_during_a_pool_fork_is_held_not_lost() -> None:
    """A SIGTERM that arrives while a fork pool starts is delivered after the start (not dropped in an at-fork
    callback), and the workers do not inherit the blocked signals."""
    import multiprocessing

    from sparsecodec.jobs import procs

    got: list[int] = []
    old = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    try:
        with procs.signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            pool = multiprocessing.get_context("fork").Pool(1, initializer=procs.worker_init)
            assert got == []
        assert got == [signal.SIGTERM]
        with pool:
            blocked = pool.apply(_blocked_in_worker)
        assert int(signal.SIGTERM) not in blocked and int(signal.SIGINT) not in blocked
    finally:
        signal.signal(signal.SIGTERM, old)


def _sigterm_dispositions(path: str) -> tuple[bool, bool, bool]:
    """In a pool worker: is SIGTERM's action the default (die) when idle, ours inside worker_temp, and the
    default again after?"""
    from sparsecodec.jobs import procs

    idle = signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    with procs.worker_temp(path):
        armed = signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)
    return idle, armed, signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_an_idle_worker_dies_of_sigterm_at_once(tmp_path: Path) -> None:
    """A pool worker waiting for a task keeps SIGTERM's default action: a Python-level handler would let a
    SIGTERM that lands just before the worker blocks on the task queue wait there for ever, and
    ``Pool.terminate`` (which holds that queue's lock, then joins) hang.  Only while it writes a temporary
    output does the worker catch SIGTERM, to remove the file first."""
    import multiprocessing

    from sparsecodec.jobs import procs

    with multiprocessing.get_context("fork").Pool(1, initializer=procs.worker_init) as pool:
        assert pool.apply(_sigterm_dispositions, (str(tmp_path / "t"),)) == (True, True, True)


def _held_in_worker() -> tuple[bool, bool]:
    from sparsecodec.jobs import procs

    with procs.stop_held():
        inside = signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    return inside, signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_a_worker_holds_sigterm_while_it_creates_a_temporary() -> None:
    """atomic_output creates its temporary and registers it inside procs.stop_held: a stop in between
    waits, so it cannot kill the worker before the file is known (and leave it behind)."""
    import multiprocessing

    from sparsecodec.jobs import procs

    with multiprocessing.get_context("fork").Pool(1, initializer=procs.worker_init) as pool:
        assert pool.apply(_held_in_worker) == (True, False)
    with procs.stop_held():  # not a worker: nothing held
        assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_an_interrupt_seen_by_a_string_exec_keeps_the_exit_status(tmp_path: Path) -> None:
    """CPython flags a KeyboardInterrupt that left an ``exec(<string>)`` (scipy runs one during import) as
    unhandled even when it is caught later, and ``python -m`` then dies by SIGINT (-2) instead of exiting
    130/143; interrupt_exit clears the flag."""
    (tmp_path / "interrupted_in_exec.py").write_text(
        "import sys\n"
        "from sparsecodec.jobs import procs\n"
        "try:\n"
        "    exec('raise KeyboardInterrupt')\n"
        "except KeyboardInterrupt as exc:\n"
        "    sys.exit(procs.interrupt_exit(exc)[0])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).parents[1])])}
    proc = subprocess.run(
        [sys.executable, "-m", "interrupted_in_exec"], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode == 130, proc.stderr


def test_a_pool_can_start_outside_the_main_thread() -> None:
    """signals_deferred leaves signals alone off the main thread (signal.signal would raise there)."""
    import multiprocessing

    from sparsecodec.jobs import procs

    out: list[object] = []

    def start() -> None:
        try:
            with procs.signals_deferred():
                pool = multiprocessing.get_context("fork").Pool(1, initializer=procs.worker_init)
            with pool:
                out.append(pool.apply(_blocked_in_worker))
        except Exception as e:  # reported below
            out.append(e)

    t = threading.Thread(target=start)
    t.start()
    t.join(60)
    assert out and isinstance(out[0], list), out


def test_sigterm_mid_decode_leaves_nothing(tmp_path: Path) -> None:
    from conftest import make_spev

    src = make_spev(tmp_path / "long.spev", seconds=3600.0, rate=RATE, per_chunk=10)
    out = tmp_path / "long.wav"
    proc = _start("decode", str(src), str(out))
    _wait_for(lambda: leftovers(tmp_path) or proc.poll() is not None)
    assert proc.poll() is None, "decode finished before the signal"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert not out.exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_sigterm_mid_batch_is_clean_and_a_rerun_finishes(tmp_path: Path, engine: str) -> None:
    """Ray installs its own SIGTERM handler and re-raises interrupts as KeyboardInterrupt: still exit 143,
    tasks cancelled, the local Ray instance shut down, no temporaries left."""
    if engine == "ray":
        pytest.importorskip("ray")
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(6):
        tone_wav(src / f"t{i}.wav", 8.0 if engine == "local" else 40.0)
    args = ("batch", "encode", str(src), str(dst), "--jobs", "2", "--init", "analysis", "--engine", engine)
    proc = _start(*args)
    manifest = dst / "spev-manifest.jsonl"
    _wait_for(lambda: (manifest.is_file() and manifest.stat().st_size > 0) or proc.poll() is not None)
    assert proc.poll() is None, "batch finished before the signal"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    if engine == "local":  # Ray's task workers are the raylet's to stop: not checked here (docs/scale.md)
        time.sleep(2.0)  # a surviving worker would finish its file in this time and write it
        before = sorted(p.name for p in dst.iterdir())
        time.sleep(3.0)
        assert sorted(p.name for p in dst.iterdir()) == before, "something still writes into DST"
    assert not leftovers(dst)
    for line in manifest.read_text().splitlines():
        json.loads(line)  # every line complete
    with open(dst / ".spev-batch.lock", "w") as f:  # the lock was released
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    done = spev(*args)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in dst.glob("*.spev")) == [f"t{i}.spev" for i in range(6)]


# ------------------------------------------------------------------------------------------- outputs


def test_export_to_dev_stdout(spev_file: Path) -> None:
    r = spev("export", str(spev_file), "-o", "/dev/stdout")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["events"]
    assert os.path.islink("/dev/stdout") or stat.S_ISCHR(os.stat("/dev/stdout").st_mode)


def test_decode_to_dev_stdout_and_a_fifo(spev_file: Path, tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "sparsecodec.cli", "decode", "-f", str(spev_file), "/dev/stdout"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout[:4] == b"RIFF" and len(r.stdout) > 4 * RATE * 2
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    r2 = spev("decode", "--force", str(spev_file), str(fifo))
    reader.join(timeout=60)
    assert r2.returncode == 0, r2.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # written through, not replaced by a file
    assert got and got[0] == r.stdout


def test_force_refuses_to_replace_a_symlink(spev_file: Path, tmp_path: Path, runner: CliRunner) -> None:
    target = tmp_path / "target.wav"
    target.write_bytes(b"keep")
    link = tmp_path / "link.wav"
    link.symlink_to(target)
    result = runner.invoke(cli, ["decode", "--force", str(spev_file), str(link)])
    assert result.exit_code == 5 and "symbolic link" in result.stderr
    assert link.is_symlink() and target.read_bytes() == b"keep"


def test_no_replace_is_decided_at_the_end(tmp_path: Path) -> None:
    """Two writers without --force: the one that finishes second fails and the first one's file stays."""
    out = tmp_path / "o.bin"
    with pytest.raises(OutputExistsError), audio_io.atomic_output(out, overwrite=False) as f:
        f.write(b"second")
        out.write_bytes(b"first")  # another writer finished meanwhile
    assert out.read_bytes() == b"first" and not leftovers(tmp_path)
    with audio_io.atomic_output(out, overwrite=True) as f:
        f.write(b"forced")
    assert out.read_bytes() == b"forced"


def test_two_encodes_to_one_output_never_both_succeed(tmp_path: Path) -> None:
    src = tone_wav(tmp_path / "a.wav", 3.0)
    out = tmp_path / "a.spev"
    cmd = [sys.executable, "-m", "sparsecodec.cli", "encode", "--init", "analysis", str(src), str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    codes = sorted(p.wait(timeout=300) for p in procs)
    assert codes[0] == 0 and codes[1] == 5, codes  # the loser says "exists", at the start or at the end
    assert out.is_file() and not leftovers(tmp_path)


# ------------------------------------------------------------------------------- what a file may ask for


def test_control_characters_in_tags_are_escaped(tmp_path: Path, runner: CliRunner) -> None:
    from conftest import make_spev

    f = make_spev(tmp_path / "t.spev", tags={"title": "evil\x1b[2J\x1b]0;owned\x07", "ok": "plain"})
    result = runner.invoke(cli, ["inspect", str(f)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "evil\\x1b[2J\\x1b]0;owned\\x07" in result.stdout and "plain" in result.stdout


@pytest.mark.parametrize(
    ("field", "value", "words"), [("channels", 3, "3 channels"), ("sample_rate", 500, "500 Hz")]
)
def test_a_valid_file_the_decoder_cannot_render_is_unsupported(
    tmp_path: Path, runner: CliRunner, field: str, value: int, words: str
) -> None:
    from conftest import make_spev

    f = make_spev(tmp_path / "u.spev", **{field: value})
    assert runner.invoke(cli, ["test", str(f)]).exit_code == 0  # the file itself is sound
    result = runner.invoke(cli, ["decode", str(f), str(tmp_path / "u.wav")])
    assert result.exit_code == 4, result.stderr
    assert "unsupported" in result.stderr and words in result.stderr and "--rate 500" not in result.stderr
    assert not (tmp_path / "u.wav").exists()


# ------------------------------------------------------------------------- workers die with their parent


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("what", ["decode", "batch"])
def test_workers_die_with_a_killed_parent(tmp_path: Path, what: str) -> None:
    """SIGKILL leaves no clean-up to the parent: the kernel stops its workers (PR_SET_PDEATHSIG)."""
    from conftest import make_spev

    if what == "decode":  # > 40 s from a single-threaded process: rendered by forked workers
        src = make_spev(tmp_path / "long.spev", seconds=1200.0, rate=RATE, per_chunk=20)
        # two workers even on a loaded machine (the decoder follows the load average otherwise)
        proc = _start("decode", str(src), str(tmp_path / "long.wav"), OMP_NUM_THREADS="2")
        min_children = 2
    else:
        (tmp_path / "in").mkdir()
        for i in range(4):
            tone_wav(tmp_path / "in" / f"t{i}.wav", 20.0)
        proc = _start("batch", "encode", str(tmp_path / "in"), str(tmp_path / "out"), "--jobs", "2")
        min_children = 2
    _wait_for(lambda: len(_children(proc.pid)) >= min_children or proc.poll() is not None)
    assert proc.poll() is None, "finished before the kill"
    time.sleep(1.0)
    workers = _children(proc.pid)
    proc.kill()
    proc.wait(timeout=30)
    _wait_for(lambda: not any(_alive(p) for p in workers), timeout=2.0)  # at once, not after their task


def test_a_forked_worker_never_removes_its_parents_temporary(tmp_path: Path) -> None:
    """The parallel decoder forks while the parent's output temporary is open; a worker stopped by SIGTERM
    (as ``Pool.terminate`` does) must leave that file alone."""
    import multiprocessing

    from sparsecodec.jobs import procs

    out = tmp_path / "o.bin"
    with audio_io.atomic_output(out) as f:
        f.write(b"parent")
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(1, initializer=procs.worker_init) as pool:
            assert pool.apply(os.getpid) != os.getpid()
            pool.terminate()  # SIGTERM to the worker
    assert out.read_bytes() == b"parent"
