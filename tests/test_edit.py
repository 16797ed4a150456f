"""Event-space edits, measured on rendered audio: transpose, gain, stretch, drop; errors; history; stems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from sparsecodec.cli import cli
from sparsecodec.format import container, events
from sparsecodec.synth import render_np
from sparsecodec.tools import edit

RATE = 22050


def note(pitch: float = 57.0, **dims: float) -> np.ndarray:
    """One sustained pitched event whose fundamental dominates (steep tilt, no noise)."""
    v = events.defaults(1)[0]
    settings = {
        "pitch": pitch,
        "level": -20.0,
        "tilt": -30.0,
        "attack": 0.01,
        "duration": 1.0,
        "release": 0.05,
        "t60_low": 20.0,
        "t60_high": 20.0,
        "noise_mix": 0.0,
        "wet": 0.0,
        **dims,
    }
    for name, value in settings.items():
        v[events.INDEX[name]] = value
    return v


def write_spev(path: Path, vectors: np.ndarray, times: np.ndarray, seconds: float) -> Path:
    header = container.Header(
        layout_version=1,
        encoder_id="test-edit",
        weights_hash="abc123",
        sample_rate=RATE,
        channels=1,
        n_samples=round(seconds * RATE),
        time_rate=RATE,
        hop_samples=RATE,
        tags={"title": "edit test"},
    )
    edit.write_events(path, header, edit.Events(np.atleast_2d(vectors), times, seconds), force=False)
    return path


def render_file(path: Path) -> np.ndarray:
    """Mono render ``float64[n]`` of a .spev at its own rate and length."""
    header, ev = edit.read_events(path)
    audio = render_np.render(ev.vectors, ev.times_s, header.n_samples, header.sample_rate)
    return np.asarray(audio[0], dtype=np.float64)


def run_edit(runner: CliRunner, src: Path, dst: Path, *args: str) -> None:
    result = runner.invoke(cli, ["edit", str(src), str(dst), *args])
    assert result.exit_code == 0, result.output
    assert dst.exists()


def peak_hz(x: np.ndarray, rate: int) -> float:
    """Frequency of the strongest spectral peak (Hann window, parabolic interpolation on log magnitude)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 8 * len(x))) + 1e-12
    k = int(np.argmax(spec))
    a, b, c = np.log(spec[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / (8 * len(x))


def envelope_db(x: np.ndarray, rate: int, win_s: float = 0.01) -> np.ndarray:
    n = int(win_s * rate)
    frames = x[: len(x) // n * n].reshape(-1, n)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)


def sounding_s(x: np.ndarray, rate: int, below_db: float = 30.0) -> float:
    """Time from the first to the last 10 ms frame within ``below_db`` of the peak frame."""
    env = envelope_db(x, rate)
    loud = np.flatnonzero(env > env.max() - below_db)
    return (loud[-1] - loud[0] + 1) * 0.01


@pytest.fixture
def one_note(tmp_path: Path) -> Path:
    return write_spev(tmp_path / "note.spev", note(), np.array([0.2]), 3.0)


def test_transpose_octave_moves_pitch_12_semitones(runner: CliRunner, one_note: Path, tmp_path: Path) -> None:
    out = tmp_path / "up.spev"
    run_edit(runner, one_note, out, "--transpose", "12")
    before = peak_hz(render_file(one_note)[int(0.4 * RATE) : int(1.0 * RATE)], RATE)
    after = peak_hz(render_file(out)[int(0.4 * RATE) : int(1.0 * RATE)], RATE)
    shift = 12 * np.log2(after / before)
    assert abs(shift - 12.0) <= 0.1, (before, after)
    assert abs(events.hz_to_pitch(before) - 57.0) < 0.1


def test_gain_minus_6_db(runner: CliRunner, one_note: Path, tmp_path: Path) -> None:
    out = tmp_path / "quiet.spev"
    run_edit(runner, one_note, out, "--gain", "-6")
    a, b = render_file(one_note), render_file(out)
    change = 10 * np.log10(np.sum(b**2) / np.sum(a**2))
    assert abs(change + 6.0) <= 0.5


def test_stretch_doubles_rendered_duration(runner: CliRunner, tmp_path: Path) -> None:
    src = write_spev(tmp_path / "n.spev", note(duration=0.8), np.array([0.1]), 2.0)
    out = tmp_path / "slow.spev"
    run_edit(runner, src, out, "--stretch", "2")
    header, ev = edit.read_events(out)
    assert header.n_samples == 4 * RATE
    assert ev.times_s[0] == pytest.approx(0.2, abs=1e-4)
    ratio = sounding_s(render_file(out), RATE) / sounding_s(render_file(src), RATE)
    assert abs(ratio - 2.0) <= 0.1, ratio
    # pitch unchanged
    assert abs(ev.vectors[0, events.INDEX["pitch"]] - 57.0) < 0.05


def test_drop_time_range_leaves_silence(runner: CliRunner, tmp_path: Path) -> None:
    times = np.array([0.1, 0.6, 1.1, 1.6])
    vecs = np.stack([note(60 + 2 * i, duration=0.15, t60_low=1.0, t60_high=0.5) for i in range(4)])
    src = write_spev(tmp_path / "four.spev", vecs, times, 2.2)
    out = tmp_path / "gap.spev"
    run_edit(runner, src, out, "--drop", "0.5:1.5")
    _, ev = edit.read_events(out)
    np.testing.assert_allclose(np.sort(ev.times_s), [0.1, 1.6], atol=1e-4)
    a, b = render_file(src), render_file(out)
    gap = slice(int(0.65 * RATE), int(1.5 * RATE))
    loud = 10 * np.log10(np.mean(a[gap] ** 2))
    quiet = 10 * np.log10(np.mean(b[gap] ** 2) + 1e-20)
    assert loud > -40 and quiet < loud - 50, (loud, quiet)
    # outside the range the audio is unchanged
    np.testing.assert_allclose(b[: int(0.45 * RATE)], a[: int(0.45 * RATE)], atol=1e-5)


def test_ops_run_in_command_line_order_and_history_is_kept(runner: CliRunner, tmp_path: Path) -> None:
    times = np.array([0.1, 0.5, 0.9])
    vecs = np.stack([note(48.0), note(60.0), note(72.0)])
    src = write_spev(tmp_path / "three.spev", vecs, times, 2.0)
    # keep pitch 55:65 then transpose +12: one event at 72.  Other order: transpose first keeps nothing at 60.
    a, b = tmp_path / "a.spev", tmp_path / "b.spev"
    run_edit(runner, src, a, "--keep", "pitch=55:65", "--transpose", "12", "--gain=-3")
    run_edit(runner, src, b, "--transpose", "12", "--keep", "pitch=55:65", "--gain=-3")
    ha, ea = edit.read_events(a)
    _, eb = edit.read_events(b)
    assert len(ea) == 1 and abs(ea.vectors[0, events.INDEX["pitch"]] - 72.0) < 0.05
    assert len(eb) == 1 and abs(eb.vectors[0, events.INDEX["pitch"]] - 60.0) < 0.05
    assert ha.encoder_id == "test-edit" and ha.weights_hash == "abc123" and ha.tags["title"] == "edit test"
    entry = ha.history[-1]
    assert entry["command"] == "edit" and entry["software"].startswith("spev ")
    assert [op["op"] for op in entry["ops"]] == ["keep", "transpose", "gain"]
    assert entry["events_in"] == 3 and entry["events_out"] == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "nonsense=1"],
        ["--set", "pitch=500"],
        ["--set", "level=nan"],
        ["--keep", "pitch=70:60"],
        ["--keep", "colour=1:2"],
        ["--stretch", "0"],
        ["--randomize", "everything"],
        ["--transpose", "up"],
        [],
    ],
)
def test_invalid_edit_exits_2_and_writes_nothing(
    runner: CliRunner, one_note: Path, tmp_path: Path, args: list[str]
) -> None:
    out = tmp_path / "bad.spev"
    result = runner.invoke(cli, ["edit", str(one_note), str(out), *args])
    assert result.exit_code == 2, result.output
    assert "error" in result.output.lower()
    assert not out.exists()
    assert not list(tmp_path.glob(".bad.spev*"))


def test_existing_output_needs_force(runner: CliRunner, one_note: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.spev"
    run_edit(runner, one_note, out, "--gain", "1")
    result = runner.invoke(cli, ["edit", str(one_note), str(out), "--gain", "2"])
    assert result.exit_code == 5
    assert edit.read_events(out)[0].history[-1]["ops"][0]["arg"] == "1"
    run_edit(runner, one_note, out, "--gain", "2", "--force")


def test_set_randomize_perturb_are_seeded() -> None:
    rng = np.random.default_rng(3)
    ev = edit.Events(events.sample_prior(rng, 20), np.sort(rng.uniform(0, 4, 20)), 4.0)
    ops = [edit.Op("randomize", "vectors"), edit.Op("perturb", "0.05"), edit.Op("set", "wet=0")]
    a = edit.apply_ops(ev, ops, seed=5)
    b = edit.apply_ops(ev, ops, seed=5)
    c = edit.apply_ops(ev, ops, seed=6)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert not np.allclose(a.vectors, c.vectors)
    np.testing.assert_array_equal(a.times_s, ev.times_s)
    assert (a.vectors[:, events.INDEX["wet"]] == 0).all()
    t = edit.apply_ops(ev, [edit.Op("randomize", "times")], seed=1)
    np.testing.assert_array_equal(t.vectors, ev.vectors)
    assert not np.allclose(t.times_s, ev.times_s) and (t.times_s >= 0).all() and (t.times_s < 4).all()
    small = edit.perturb(ev, 0.01, np.random.default_rng(0))
    du = np.abs(events.to_unit(small.vectors) - events.to_unit(ev.vectors))
    assert 0 < du.mean() < 0.02


def test_stems_by_kind_add_up_to_the_full_render(one_note: Path, tmp_path: Path) -> None:
    from sparsecodec.tools.stems import decode_stems

    vecs = np.stack([note(60.0), note(40.0, noise_mix=0.9, duration=0.1)])
    src = write_spev(tmp_path / "mix.spev", vecs, np.array([0.1, 0.3]), 1.5)
    paths = decode_stems(src, tmp_path / "stems", group="kind", bits="32f")
    assert sorted(p.name for p in paths) == ["noise.wav", "pitched.wav"]
    total = sum(sf.read(str(p), dtype="float64")[0] for p in paths)
    np.testing.assert_allclose(total, render_file(src), atol=1e-5)
    per_event = decode_stems(src, tmp_path / "each", group="event")
    assert [p.name for p in per_event][-1] == "stems.json" and len(per_event) == 3
