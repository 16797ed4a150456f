"""Export (JSON, CSV, MIDI) and import: lossless round trips at quantised precision, validation, stdout;
note ends against rendered audio; MIDI tracks by timbre, playable notes, byte-identical output."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from sparsecodec.cli import cli
from sparsecodec.format import container, events
from sparsecodec.synth import kernels, render_np
from sparsecodec.tools import edit
from sparsecodec.tools import export as ex

RATE = 22050
_I = events.INDEX


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
        layout_version=1,
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
            vec = np.array([[e["params"][name] for name in events.NAMES]])
            assert e["end"] == e["time"] + float(ex.note_lengths_s(vec, RATE)[0])
            assert e["time"] < e["end"] <= e["time"] + e["params"]["duration"]
            assert isinstance(e["velocity"], int) and 1 <= e["velocity"] <= 127
            assert e["velocity"] == int(ex.midi_velocity(np.array(e["level_db"])))
        else:
            assert e["pitch"] is None and e["f0_hz"] is None
            assert e["end"] is None and e["velocity"] is None
    assert sum(e["pitch"] is None for e in evs) >= 3
    assert list(evs[0])[:6] == list(ex.DERIVED)


def test_csv_has_end_and_velocity(runner: CliRunner, prior_file: Path) -> None:
    result = runner.invoke(cli, ["export", str(prior_file), "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    doc = json.loads(runner.invoke(cli, ["export", str(prior_file)]).stdout)
    assert len(rows) == len(doc["events"]) == 30
    for row, e in zip(rows, doc["events"], strict=True):
        if e["pitch"] is None:
            assert row["end"] == row["velocity"] == ""
        else:
            assert float(row["end"]) == e["end"] and row["velocity"] == str(e["velocity"])


def test_import_ignores_derived_end_and_velocity(runner: CliRunner, prior_file: Path, tmp_path: Path) -> None:
    """``end`` and ``velocity`` follow from params: edited values change nothing, non-numbers are refused."""
    doc = json.loads(runner.invoke(cli, ["export", str(prior_file)]).stdout)
    for e in doc["events"]:
        e["end"] = 1234.5 if e["end"] is not None else None
        e["velocity"] = 3 if e["velocity"] is not None else None
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    back = tmp_path / "back.spev"
    result = runner.invoke(cli, ["import", str(edited), str(back)])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(codes_and_times(back)[1], codes_and_times(prior_file)[1])
    for bad in ({"time": 0.0, "end": "late"}, {"time": 0.0, "velocity": [1]}):
        src = tmp_path / "bad.json"
        src.write_text(json.dumps({"events": [bad]}))
        result = runner.invoke(cli, ["import", str(src), str(tmp_path / "bad.spev")])
        assert result.exit_code == 2 and "event 0" in result.output, result.output


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
    assert mid.type == 0 and len(mid.tracks) == 1  # the default stays one track
    assert_playable(mid)
    # binary MIDI goes to stdout when it is not a terminal
    result = runner.invoke(cli, ["export", str(prior_file), "--format", "midi"])
    assert result.exit_code == 0
    assert mido.MidiFile(file=io.BytesIO(result.stdout_bytes)).tracks[0]


# ------------------------------------------------------------------------------------------ note ends


def event(**values: float) -> np.ndarray:
    """A default event vector with some dimensions set."""
    v = events.defaults(1)[0]
    for name, value in values.items():
        v[_I[name]] = value
    return v


def rendered_fall_s(v: np.ndarray, drop_db: float = 30.0, window_s: float = 0.01) -> float:
    """Seconds after onset where the rendered event's RMS envelope (``window_s`` boxcar, 1 ms steps) first
    falls ``drop_db`` below its peak."""
    onset = 0.5
    n = int((onset + float(events.support_s(v[None])[0]) + 0.3) * RATE)
    y = render_np.render(v[None], np.array([onset]), n, RATE)[0].astype(np.float64)
    width, step = int(window_s * RATE), RATE // 1000
    power = np.convolve(y * y, np.ones(width) / width, mode="same")[::step]
    peak = int(np.argmax(power))
    below = np.flatnonzero(power[peak:] < power[peak] * 10.0 ** (-drop_db / 10.0))
    assert len(below), "the rendered event never falls that far"
    return (peak + int(below[0])) * step / RATE - onset


FALL_CASES = {
    "piano-like decay": event(pitch=57, t60_low=1.0, t60_high=0.3, duration=4.0),
    "bass, slow lows, fast highs": event(pitch=45, t60_low=3.0, t60_high=0.2, duration=6.0, tilt=-3),
    "stiff bright pluck": event(pitch=64, t60_low=0.5, t60_high=0.05, duration=2.0, tilt=0, inharmonicity=-3),
    "organ, released": event(pitch=72, t60_low=30, t60_high=20, duration=1.0, release=0.3, attack=0.05),
    "pad, slow attack, released": event(
        pitch=60, t60_low=60, t60_high=60, duration=0.5, release=0.1, attack=0.2
    ),
    "released during the attack": event(pitch=60, t60_low=60, t60_high=60, duration=0.05, attack=0.3),
    "decay cut by the release": event(pitch=67, t60_low=2.0, t60_high=0.5, duration=0.15, release=0.4),
}


@pytest.mark.parametrize("name", list(FALL_CASES))
def test_fall_time_matches_the_renderer(name: str) -> None:
    """The solved -30 dB point of the partials' power equals the rendered audio's within 20 ms."""
    v = FALL_CASES[name]
    solved = float(kernels.partials_fall_s(v[None], 30.0, RATE)[0])
    assert solved == pytest.approx(rendered_fall_s(v), abs=0.02)


def test_fall_time_matches_the_renderer_on_prior_notes() -> None:
    rng = np.random.default_rng(5)
    v = events.sample_prior(rng, 40)
    v = v[(v[:, _I["pitch"]] > 52) & events.is_pitched(v)][:6]
    v[:, [_I["noise_mix"], _I["detune"]]] = 0.0  # the noise part is not a note's; beating nulls are not ends
    solved = kernels.partials_fall_s(v, 30.0, RATE)
    measured = [rendered_fall_s(row) for row in v]
    np.testing.assert_allclose(solved, measured, atol=0.02)


def test_note_ends_are_note_offs() -> None:
    """End = the -30 dB point, or the release start (duration) when the note still sounds there."""
    held = event(t60_low=60, t60_high=60, duration=1.5)  # sustained: ends when released
    pluck = event(pitch=60, t60_low=1.0, t60_high=1.0, duration=6.0)  # all partials T60 1 s: -30 dB at 0.5 s
    lengths = ex.note_lengths_s(np.stack([held, pluck]))
    assert lengths[0] == pytest.approx(1.5)
    assert lengths[1] == pytest.approx(0.005 + 0.5, abs=1e-4)
    longer = pluck.copy()
    longer[_I["t60_low"]] = longer[_I["t60_high"]] = 2.0
    assert ex.note_lengths_s(longer[None])[0] == pytest.approx(0.005 + 1.0, abs=1e-4)


def test_note_ends_are_fast_and_blockwise() -> None:
    v = events.sample_prior(np.random.default_rng(0), 100_000)
    start = time.perf_counter()
    lengths = ex.note_lengths_s(v, 44100)
    assert time.perf_counter() - start < 20.0  # ≈ 1 s on the 2-core development machine
    assert np.all(np.isfinite(lengths)) and np.all(lengths > 0)
    assert np.all(lengths <= v[:, _I["duration"]] + 1e-12)
    assert np.all(lengths <= events.support_s(v) + 1e-12)
    some = np.r_[0, kernels.FALL_BLOCK - 1, kernels.FALL_BLOCK, 77_777]
    np.testing.assert_array_equal(ex.note_lengths_s(v[some], 44100), lengths[some])


# ----------------------------------------------------------------------------------------------- MIDI


def assert_playable(mid: Any) -> None:
    """Every note-on finds its channel+key silent; every note-off ends a sounding note; none left on."""
    for track in mid.tracks:
        sounding: set[tuple[int, int]] = set()
        for msg in track:
            if msg.type == "note_on" and msg.velocity > 0:
                assert (msg.channel, msg.note) not in sounding, f"{msg} while the key is held"
                sounding.add((msg.channel, msg.note))
            elif msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0):
                assert (msg.channel, msg.note) in sounding, f"{msg} without a note-on"
                sounding.discard((msg.channel, msg.note))
        assert not sounding


def note_list(mid: Any) -> list[tuple[int, int, int, int, int, str]]:
    """``(on_tick, off_tick, channel, note, velocity, track name)`` of every note of a MIDI file."""
    out = []
    for track in mid.tracks:
        name = next((m.name for m in track if m.type == "track_name"), "")
        now, started = 0, {}
        for msg in track:
            now += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                started[(msg.channel, msg.note)] = (now, msg.velocity)
            elif msg.type == "note_off":
                on, vel = started.pop((msg.channel, msg.note))
                out.append((on, now, msg.channel, msg.note, vel, name))
    return sorted(out)


def timbre_group(n: int, rng: np.random.Generator, **timbre: float) -> np.ndarray:
    """``n`` notes of one timbre (random pitches and levels, small timbre scatter in the unit interval)."""
    v = events.defaults(n)
    for name, value in timbre.items():
        v[:, _I[name]] = value
    unit = events.to_unit(v) + rng.normal(0.0, 0.02, v.shape)
    v = events.clip(events.from_unit(np.clip(unit, 0.0, 1.0)))
    v[:, _I["pitch"]] = rng.integers(48, 84, n)
    v[:, _I["level"]] = rng.uniform(-40, -6, n)
    v[:, _I["noise_mix"]] = np.minimum(v[:, _I["noise_mix"]], 0.3)
    v[:, [_I[d] for d in ("glide", "vibrato_depth", "jitter", "pitch_drop", "reserved")]] = 0.0
    return v


TIMBRES = {
    "piano": {"tilt": -12.0, "t60_low": 3.0, "t60_high": 0.3, "attack": 0.003, "env1": 5.0},
    "clarinet": {"tilt": -3.0, "t60_low": 60.0, "t60_high": 30.0, "attack": 0.08, "odd_even": -30.0},
    "bell": {"tilt": 0.0, "t60_low": 0.5, "t60_high": 0.05, "attack": 0.002, "inharmonicity": -3.0},
}


def write_file(path: Path, v: np.ndarray, t: np.ndarray, seconds: float = 20.0) -> Path:
    header = container.Header(
        layout_version=1,
        encoder_id="test-export",
        weights_hash="",
        sample_rate=RATE,
        channels=1,
        n_samples=int(seconds * RATE),
        time_rate=RATE,
        hop_samples=RATE,
    )
    edit.write_events(path, header, edit.Events(v, t, seconds), force=False)
    return path


@pytest.fixture
def band_file(tmp_path: Path) -> Path:
    """Three instruments (60 + 60 + 40 notes), 25 drum hits and 15 fill tiles, shuffled in time."""
    rng = np.random.default_rng(7)
    groups = [timbre_group(n, rng, **TIMBRES[k]) for n, k in zip((60, 60, 40), TIMBRES, strict=True)]
    drums = events.defaults(25)
    drums[:, _I["noise_mix"]] = rng.uniform(0.6, 1.0, 25)
    fill = events.defaults(15)
    fill[:, _I["noise_mix"]] = 1.0  # the encoder's texture fill is noise only
    v = np.concatenate([*groups, drums, fill])
    t = np.round(rng.uniform(0, 19, len(v)), 3)
    return write_file(tmp_path / "band.spev", v, t)


def band_timbres(path: Path) -> dict[tuple[int, int], str]:
    """(on tick, key) → instrument of each pitched note in ``band_file`` (first group wins on a clash)."""
    _, ev = edit.read_events(path)
    out: dict[tuple[int, int], str] = {}
    names = list(TIMBRES)
    pitched = np.flatnonzero(events.is_pitched(ev.vectors))
    x = ex.timbre_features(ev.vectors[pitched])
    centres = np.stack(
        [ex.timbre_features(timbre_group(1, np.random.default_rng(0), **TIMBRES[k]))[0] for k in names]
    )
    for i, row in zip(pitched, x, strict=True):
        key = (round(ev.times_s[i] * 960), int(np.rint(ev.vectors[i, _I["pitch"]])))
        out.setdefault(key, names[int(np.argmin(((centres - row) ** 2).sum(1)))])
    return out


def test_midi_tracks_auto_splits_by_timbre(runner: CliRunner, band_file: Path, tmp_path: Path) -> None:
    import mido

    out = tmp_path / "band.mid"
    result = runner.invoke(cli, ["export", str(band_file), str(out), "--tracks", "auto"])
    assert result.exit_code == 0, result.output
    mid = mido.MidiFile(str(out))
    assert mid.type == 1 and len(mid.tracks) == 4  # a tempo track and one per instrument
    assert next(m for m in mid.tracks[0] if m.type == "set_tempo").tempo == ex.MIDI_TEMPO_US
    notes = note_list(mid)
    assert len(notes) == 160  # every pitched event is a note; drums and fill never are
    assert {n[5] for n in notes} == {"cluster 1", "cluster 2", "cluster 3"}
    truth = band_timbres(band_file)
    for name in ("cluster 1", "cluster 2", "cluster 3"):
        mine = [n for n in notes if n[5] == name]
        assert len({n[2] for n in mine}) == 1  # one channel per track
        assert len({truth[(n[0], n[3])] for n in mine}) == 1  # one instrument per track
    channels = {n[2] for n in notes}
    assert len(channels) == 3 and 9 not in channels
    first_on = [min(n[0] for n in notes if n[5] == f"cluster {k}") for k in (1, 2, 3)]
    assert first_on == sorted(first_on)  # clusters are numbered by first appearance
    assert_playable(mid)


def test_midi_tracks_fixed_count_and_fallbacks(runner: CliRunner, band_file: Path, tmp_path: Path) -> None:
    import mido

    def tracks_of(path: Path, arg: str) -> Any:
        out = tmp_path / f"{path.stem}-{arg}.mid"
        result = runner.invoke(cli, ["export", str(path), "-o", str(out), "--tracks", arg])
        assert result.exit_code == 0, result.output
        return mido.MidiFile(str(out))

    two = tracks_of(band_file, "2")
    assert two.type == 1 and len(two.tracks) == 3 and len(note_list(two)) == 160
    assert_playable(two)
    # one timbre: auto keeps one track; fewer than AUTO_MIN_EVENTS notes: one track
    rng = np.random.default_rng(3)
    solo = write_file(
        tmp_path / "solo.spev", timbre_group(50, rng, **TIMBRES["piano"]), rng.uniform(0, 19, 50)
    )
    assert len(tracks_of(solo, "auto").tracks) == 2
    few = np.concatenate([timbre_group(3, rng, **TIMBRES[k]) for k in ("piano", "bell")])
    few_file = write_file(tmp_path / "few.spev", few, np.arange(6.0))
    assert len(tracks_of(few_file, "auto").tracks) == 2
    assert len(tracks_of(few_file, "2").tracks) == 3  # asked for: two tracks


def test_midi_is_byte_identical(runner: CliRunner, band_file: Path, tmp_path: Path) -> None:
    outputs = []
    for i, args in enumerate((["--tracks", "auto"], ["--tracks", "auto"], ["--tracks", "3"])):
        out = tmp_path / f"{i}.mid"
        assert runner.invoke(cli, ["export", str(band_file), "-o", str(out), *args]).exit_code == 0
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]  # auto finds the three instruments
    _, ev = edit.read_events(band_file)
    assert ex.to_midi(ev) == ex.to_midi(ev)


def test_midi_ends_held_notes_first(tmp_path: Path) -> None:
    """Re-striking a sounding key ends the old note there; two notes on one key and tick become one."""
    import mido

    v = events.defaults(5)
    v[:, _I["pitch"]] = [60, 60, 60, 64, 64]
    v[:, [_I["t60_low"], _I["t60_high"]]] = 60.0
    v[:, _I["duration"]] = [2.0, 2.0, 0.5, 1.0, 1.0]
    v[:, _I["level"]] = [-20, -30, -6, -40, -10]
    t = np.array([0.0, 1.0, 1.0, 3.0, 3.0])
    mid = mido.MidiFile(file=io.BytesIO(ex.to_midi(edit.Events(v, t, 5.0))))
    assert_playable(mid)
    notes = [n[:5] for n in note_list(mid)]
    vel = [int(x) for x in ex.midi_velocity(v[:, _I["level"]])]
    assert notes == [
        (0, 960, 0, 60, vel[0]),  # cut where the key is struck again
        (960, 960 + 1920, 0, 60, max(vel[1], vel[2])),  # the longer of the pair, the louder velocity
        (2880, 2880 + 960, 0, 64, max(vel[3], vel[4])),
    ]


def test_midi_never_notes_unpitched(tmp_path: Path) -> None:
    import mido

    v = events.defaults(4)
    v[:, _I["noise_mix"]] = [0.0, events.PITCHED_NOISE_MIX, 0.9, 1.0]
    ev = edit.Events(v, np.arange(4.0), 5.0)
    for kw in ({}, {"tracks": "auto"}, {"tracks": 2}, {"pitch_bend": True}):
        assert len(note_list(mido.MidiFile(file=io.BytesIO(ex.to_midi(ev, **kw))))) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--tracks", "0"],
        ["--tracks", "16"],
        ["--tracks", "many"],
        ["--tracks", "3", "--pitch-bend"],
        ["--format", "json", "--tracks", "2"],
    ],
)
def test_midi_tracks_bad_arguments(
    runner: CliRunner, prior_file: Path, tmp_path: Path, args: list[str]
) -> None:
    out = tmp_path / "x.mid"
    result = runner.invoke(cli, ["export", str(prior_file), "-o", str(out), *args])
    assert result.exit_code == 2, result.output
    assert not out.exists()


def test_output_given_twice(runner: CliRunner, prior_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        cli, ["export", str(prior_file), str(tmp_path / "a.json"), "-o", str(tmp_path / "b.json")]
    )
    assert result.exit_code == 2
    result = runner.invoke(cli, ["export", str(prior_file), str(tmp_path / "a.csv")])
    assert result.exit_code == 0 and (tmp_path / "a.csv").read_text().startswith(
        "time,pitch,f0_hz,level_db,end"
    )


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ({2: 0.27, 3: 0.31, 4: 0.29}, 2),  # close scores: the fewest tracks
        ({2: 0.20, 3: 0.50, 4: 0.48}, 3),
        ({2: 0.24, 3: 0.20, 4: 0.10}, 1),  # no real structure
    ],
)
def test_tracks_auto_rule(monkeypatch: pytest.MonkeyPatch, scores: dict[int, float], expected: int) -> None:
    def fake(x: np.ndarray, labels: np.ndarray) -> float:
        return scores.get(len(np.unique(labels)), -1.0)

    monkeypatch.setattr(ex, "_silhouette", fake)
    v = events.sample_prior(np.random.default_rng(2), 40)
    assert ex.timbre_clusters(v, "auto").max() + 1 == expected
