"""Export (JSON, CSV, MIDI) and import: lossless round trips at quantised precision, validation, stdout."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sparsecodec.cli import cli
from sparsecodec.format import container, events
from sparsecodec.tools import edit

RATE = 22050


def codes_and_times(path: Path) -> tuple[container.Header, np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        reader = container.Reader(f)
        chunks = list(reader)
        return (
            reader.header,
            np.concatenate([c.codes for c in chunks]),
            np.concatenate([c.times for c in chunks]),
        )


@pytest.fixture
def prior_file(tmp_path: Path) -> Path:
    """30 random prior events (some unpitched) with a room, over 6 s at 22050 Hz."""
    rng = np.random.default_rng(11)
    v = events.sample_prior(rng, 30)
    v[:3, events.INDEX["noise_mix"]] = 0.95  # at least three unpitched events
    t = np.sort(rng.uniform(0, 6, 30))
    t[5] = t[4]  # two events at the same time keep their order
    header = container.Header(
        layout_version=events.LAYOUT_VERSION,
        encoder_id="test-export",
        weights_hash="feed",
        sample_rate=RATE,
        channels=2,
        n_samples=6 * RATE,
        time_rate=RATE,
        hop_samples=RATE,
        tags={"artist": "nobody"},
    )
    path = tmp_path / "prior.spev"
    edit.write_events(path, header, edit.Events(v, t, 6.0, [(0.0, {"room": [0.4, 0.2]})]), force=False)
    return path


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_import_is_lossless(runner: CliRunner, prior_file: Path, tmp_path: Path, fmt: str) -> None:
    exported = tmp_path / f"events.{fmt}"
    back = tmp_path / "back.spev"
    result = runner.invoke(cli, ["export", str(prior_file), "--format", fmt, "-o", str(exported)])
    assert result.exit_code == 0, result.output
    args = ["import", str(exported), str(back)] + (["--rate", str(RATE)] if fmt == "csv" else [])
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    h0, c0, t0 = codes_and_times(prior_file)
    h1, c1, t1 = codes_and_times(back)
    np.testing.assert_array_equal(c1, c0)
    np.testing.assert_array_equal(t1, t0)
    assert h1.history[-1]["command"] == "import"
    if fmt == "json":  # the header travels with JSON
        assert (h1.encoder_id, h1.channels, h1.n_samples, h1.tags) == (
            h0.encoder_id,
            h0.channels,
            h0.n_samples,
            h0.tags,
        )


def test_json_fields(runner: CliRunner, prior_file: Path) -> None:
    result = runner.invoke(cli, ["export", str(prior_file)])  # JSON on stdout
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["header"]["encoder_id"] == "test-export" and doc["header"]["sample_rate"] == RATE
    evs = doc["events"]
    assert len(evs) == 30
    assert [e["time"] for e in evs] == sorted(e["time"] for e in evs)
    for e in evs:
        assert set(e["params"]) == set(events.NAMES)
        assert e["level_db"] == e["params"]["level"]
        if e["params"]["noise_mix"] < events.PITCHED_NOISE_MIX:
            assert e["pitch"] == e["params"]["pitch"]
            assert e["f0_hz"] == pytest.approx(440 * 2 ** ((e["pitch"] - 69) / 12))
        else:
            assert e["pitch"] is None and e["f0_hz"] is None
    assert sum(e["pitch"] is None for e in evs) >= 3


def test_import_authoring_shape_with_defaults(runner: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "song.json"
    src.write_text(
        json.dumps(
            {
                "header": {"sample_rate": 16000},
                "events": [
                    {"time": 0.0, "pitch": 60, "duration": 0.5},
                    {"time": 0.5, "f0_hz": 440.0, "level_db": -12},
                    {"time": 1.0, "noise_mix": 1.0, "params": {"noise_centre": 5000}},
                ],
            }
        )
    )
    out = tmp_path / "song.spev"
    result = runner.invoke(cli, ["import", str(src), str(out)])
    assert result.exit_code == 0, result.output
    header, ev = edit.read_events(out)
    assert header.sample_rate == 16000 and header.encoder_id == "import"
    p, lvl = events.INDEX["pitch"], events.INDEX["level"]
    assert ev.vectors[0, p] == pytest.approx(60, abs=0.02)
    assert ev.vectors[1, p] == pytest.approx(69, abs=0.02) and ev.vectors[1, lvl] == pytest.approx(
        -12, abs=0.2
    )
    assert ev.vectors[2, events.INDEX["noise_centre"]] == pytest.approx(5000, rel=0.06)
    assert header.n_samples >= 1.0 * 16000  # long enough for the last event


@pytest.mark.parametrize(
    "record",
    [
        {"time": 0.1, "colour": 3},
        {"time": 0.1, "params": {"pitch": 200}},
        {"time": 0.1, "level_db": 20},
        {"time": -1},
        {"pitch": 60},
        {"time": 0.1, "pitch": 60, "params": {"pitch": 61}},
        {"time": 0.1, "tilt": "steep"},
    ],
)
def test_import_rejects_bad_events(runner: CliRunner, tmp_path: Path, record: dict) -> None:
    src = tmp_path / "bad.json"
    src.write_text(json.dumps({"events": [{"time": 0.0}, record]}))
    out = tmp_path / "bad.spev"
    result = runner.invoke(cli, ["import", str(src), str(out)])
    assert result.exit_code == 2, result.output
    assert "event 1" in result.output
    assert not out.exists()


def test_import_rejects_non_finite(runner: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "nan.json"
    src.write_text('{"events": [{"time": 0.0, "pitch": NaN}]}')
    result = runner.invoke(cli, ["import", str(src), str(tmp_path / "x.spev")])
    assert result.exit_code == 2 and "non-finite" in result.output
    csv_src = tmp_path / "inf.csv"
    csv_src.write_text("time,params.level\n0.0,inf\n")
    result = runner.invoke(cli, ["import", str(csv_src), str(tmp_path / "y.spev")])
    assert result.exit_code == 2
    assert not (tmp_path / "x.spev").exists() and not (tmp_path / "y.spev").exists()


def test_midi_export(runner: CliRunner, prior_file: Path, tmp_path: Path) -> None:
    import mido

    out = tmp_path / "song.mid"
    result = runner.invoke(cli, ["export", str(prior_file), "-o", str(out)])
    assert result.exit_code == 0, result.output
    _, ev = edit.read_events(prior_file)
    pitched = events.is_pitched(ev.vectors)
    mid = mido.MidiFile(str(out))
    ons = [m for m in mid.tracks[0] if m.type == "note_on" and m.velocity > 0]
    offs = [m for m in mid.tracks[0] if m.type == "note_off"]
    assert len(ons) == len(offs) == int(pitched.sum())
    order = np.argsort(ev.times_s[pitched], kind="stable")
    expected = np.rint(ev.vectors[pitched][order, events.INDEX["pitch"]]).astype(int)
    assert sorted(m.note for m in ons) == sorted(expected.tolist())
    assert all(1 <= m.velocity <= 127 for m in ons)
    # binary MIDI goes to stdout when it is not a terminal
    result = runner.invoke(cli, ["export", str(prior_file), "--format", "midi"])
    assert result.exit_code == 0
    assert mido.MidiFile(file=io.BytesIO(result.stdout_bytes)).tracks[0]
