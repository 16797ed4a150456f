"""The benchmark's metrics and harness, on small synthetic signals (no Debian music needed)."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench import metrics
from bench.codecs import Codec, CodecError, CodecResult, Mp3Codec, OpusCodec
from bench.devset import (
    INSTRUMENTS,
    PHRASE_S,
    SEED,
    Clip,
    _not_silent,
    _write_midi,
    make_notes,
    make_phrase,
    save_manifest,
    substitute_program,
    timidity_programs,
)
from bench.run import run_benchmark, select_clips, to_markdown
from sparsecodec.errors import SpevError

SR = 44100


def rich_signal(seconds: float, sr: int = SR, seed: int = 0, channels: int = 2) -> np.ndarray:
    """Decaying harmonic notes with bright partials up to ~16 kHz plus a noise floor: float32[C, T]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = np.zeros(n)
    for k, onset in enumerate(np.arange(0.0, seconds - 0.3, 0.5)):
        f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        s = int(onset * sr)
        tt = t[: n - s]
        env = np.exp(-tt * (2.0 + k % 3))
        note = sum(np.sin(2 * np.pi * f0 * h * tt + h) / h**0.7 for h in range(1, 40) if f0 * h < 16000)
        x[s:] += env * note
    x += 0.02 * rng.standard_normal(n)
    x *= 0.5 / np.max(np.abs(x))
    out = np.stack([x, np.roll(x, 37)])[:channels]
    return out.astype(np.float32)


class IdentityCodec(Codec):
    """Decoded = input (a 'perfect' codec)."""

    family = "test"

    def __init__(self, name: str = "identity") -> None:
        self.name = name

    def run(self, src: Path, workdir: Path, timeout_s: float) -> CodecResult:
        dec = workdir / "decoded.wav"
        shutil.copy(src, dec)
        return CodecResult(dec, src.stat().st_size // 100)


class DegradeCodec(IdentityCodec):
    """Low-passed at 2 kHz (soxr down/up) plus white noise at -30 dB: a clearly worse decode."""

    def run(self, src: Path, workdir: Path, timeout_s: float) -> CodecResult:
        audio, sr = sf.read(str(src), dtype="float32", always_2d=True)
        low = metrics.resample(metrics.resample(audio.T, sr, 4000), 4000, sr)
        noisy = low + 0.03 * np.random.default_rng(1).standard_normal(low.shape).astype(np.float32)
        dec = workdir / "decoded.wav"
        sf.write(str(dec), np.clip(noisy.T, -1, 1), sr)
        return CodecResult(dec, src.stat().st_size // 100)


class BrokenCodec(IdentityCodec):
    def run(self, src: Path, workdir: Path, timeout_s: float) -> CodecResult:
        raise CodecError("exit 4: deliberately broken")


# ---------------------------------------------------------------- metrics


def test_mrstft_identity_zero_and_monotone_in_noise() -> None:
    x = rich_signal(2.0, channels=1)
    rng = np.random.default_rng(3)
    little = x + 0.001 * rng.standard_normal(x.shape).astype(np.float32)
    lots = x + 0.05 * rng.standard_normal(x.shape).astype(np.float32)
    assert metrics.mrstft(x, x, SR) == 0.0
    d_little, d_lots = metrics.mrstft(x, little, SR), metrics.mrstft(x, lots, SR)
    assert 0.0 < d_little < d_lots
    assert metrics.mrstft(x, lots, SR, rate=44100) > metrics.mrstft(x, little, SR, rate=44100)
    with pytest.raises(metrics.MetricError):
        metrics.mrstft(x, x[:, :-5], SR)


def test_align_recovers_a_delay_and_fits_length() -> None:
    x = rich_signal(2.0)
    late = np.pad(x, ((0, 0), (1234, 0)))[:, : x.shape[1] + 500]
    aligned, lag = metrics.align(x, late, SR)
    assert lag == 1234
    assert aligned.shape == x.shape
    np.testing.assert_allclose(aligned[:, :-1234], x[:, :-1234], atol=1e-6)
    kept, lag2 = metrics.align(x, late, SR, shift=False)  # measure only
    assert lag2 == 1234 and kept.shape == x.shape
    assert not np.allclose(kept, x, atol=1e-3)
    mono, _ = metrics.align(x, late[:1], SR)  # mono decode of a stereo reference
    assert mono.shape == x.shape


def _need_visqol() -> None:
    pytest.importorskip("visqol")
    pytest.importorskip("numba")  # without its JIT visqol-python is ~8x slower: too slow for the suite


def test_visqol_identical_is_best() -> None:
    _need_visqol()
    x = rich_signal(3.0, channels=1)
    noisy = x + 0.03 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    best = metrics.visqol(x, x, SR, "audio")
    assert best > 4.5
    assert metrics.visqol(x, noisy, SR, "audio") < best - 0.5
    assert metrics.visqol(x, np.zeros_like(x), SR, "audio") == 1.0


def test_note_f1_and_event_filter() -> None:
    ref = [{"onset": 0.5, "pitch": 60.0, "offset": 1.0}, {"onset": 1.0, "pitch": 64.0, "offset": 1.5}]
    on, pitch = np.array([0.51, 1.02]), np.array([60.2, 63.9])
    assert metrics.note_f1(ref, on, pitch)["f1"] == pytest.approx(1.0)
    assert metrics.note_f1(ref, on + 0.1, pitch)["f1"] == 0.0  # onsets 100 ms late
    assert metrics.note_f1(ref, on, pitch + 1.0)["f1"] == 0.0  # a semitone off
    assert metrics.note_f1(ref, np.zeros(0), np.zeros(0))["f1"] == 0.0
    export = {
        "events": [
            {"time": 0.5, "pitch": 60.0, "level_db": -10.0},
            {"time": 0.7, "pitch": None, "level_db": -5.0},  # unpitched
            {"time": 0.9, "pitch": 72.0, "level_db": -60.0},  # > 40 dB below the loudest
            {"time": 1.0, "pitch": 64.0, "level_db": -30.0},
        ]
    }
    on2, pitch2 = metrics.events_to_notes(export)
    assert on2.tolist() == [0.5, 1.0] and pitch2.tolist() == [60.0, 64.0]


REF_NOTES = [
    {"onset": 0.5, "pitch": 60.0, "offset": 1.0},  # a C major chord
    {"onset": 0.5, "pitch": 64.0, "offset": 1.0},
    {"onset": 0.5, "pitch": 67.0, "offset": 1.0},
    {"onset": 1.2, "pitch": 72.0, "offset": 1.6},
    {"onset": 2.0, "pitch": 55.0, "offset": 3.0},
    {"onset": 2.5, "pitch": 62.0, "offset": 2.8},
]


def _est(**change: dict[str, float]) -> list[dict[str, float]]:
    """REF_NOTES as estimated: a few ms late, a few cents sharp; ``change`` by index, e.g. ``n3={...}``."""
    out = [
        {"onset": n["onset"] + 0.01, "pitch": n["pitch"] + 0.2, "offset": n["offset"] + 0.02}
        for n in REF_NOTES
    ]
    for key, upd in change.items():
        out[int(key[1:])].update(upd)
    return out


def test_note_scores_perfect_and_chords() -> None:
    s = metrics.note_scores(REF_NOTES, _est())
    for key in ("onset_f1", "pitch_acc", "note_precision", "note_recall", "note_f1", "offset_f1"):
        assert s[key] == pytest.approx(1.0), key
    assert s["n_ref"] == 6 and s["n_est"] == 6 and s["n_onset_matched"] == 6
    # a chord's notes estimated a few ms apart and in another order are still one onset, all pitches right
    est = _est(n0={"onset": 0.515, "pitch": 67.0}, n2={"onset": 0.52, "pitch": 60.0})
    s2 = metrics.note_scores(REF_NOTES, est)
    assert s2["onset_f1"] == pytest.approx(1.0) and s2["pitch_acc"] == pytest.approx(1.0)
    assert s2["note_f1"] == pytest.approx(1.0)


def test_note_scores_octave_error_missing_notes_and_offsets() -> None:
    octave = metrics.note_scores(REF_NOTES, _est(n3={"pitch": 84.0}))
    assert octave["onset_f1"] == pytest.approx(1.0)  # the onset is right...
    assert octave["pitch_acc"] == pytest.approx(5 / 6)  # ...its pitch is not
    assert octave["note_recall"] == pytest.approx(5 / 6) and octave["note_precision"] == pytest.approx(5 / 6)
    dropped = metrics.note_scores(REF_NOTES, _est()[:3])  # the chord only
    assert dropped["note_precision"] == pytest.approx(1.0) and dropped["note_recall"] == pytest.approx(0.5)
    assert dropped["onset_recall"] == pytest.approx(0.25) and dropped["pitch_acc"] == pytest.approx(1.0)
    assert dropped["n_est"] == 3
    late = metrics.note_scores(REF_NOTES, _est(n4={"onset": 2.1}))  # 100 ms late: no match at all
    assert late["note_recall"] == pytest.approx(5 / 6) and late["n_onset_matched"] == 5
    # offsets: within max(20 % of the length, 50 ms) counts; the 1 s note ended 0.4 s late does not
    long = metrics.note_scores(REF_NOTES, _est(n4={"offset": 3.4}))
    assert long["note_f1"] == pytest.approx(1.0) and long["offset_recall"] == pytest.approx(5 / 6)
    near = metrics.note_scores(REF_NOTES, _est(n4={"offset": 3.15}))  # 0.15 s < 20 % of 1 s
    assert near["offset_f1"] == pytest.approx(1.0)
    none = metrics.note_scores(REF_NOTES, [])
    assert none["note_f1"] == 0.0 and none["pitch_acc"] is None and none["n_ref"] == 6


def test_export_to_notes_offsets() -> None:
    export = {
        "events": [
            {
                "time": 0.5,
                "pitch": 60.0,
                "level_db": -10.0,
                "end": 1.25,
                "params": {"duration": 9, "attack": 1},
            },
            {"time": 1.0, "pitch": 64.0, "level_db": -12.0, "params": {"duration": 0.4, "attack": 0.01}},
            {"time": 1.1, "pitch": None, "level_db": -3.0, "params": {"duration": 0.4, "attack": 0.01}},
            {"time": 1.2, "pitch": 67.0, "level_db": -60.0, "params": {"duration": 0.4, "attack": 0.01}},
        ]
    }
    notes = metrics.export_to_notes(export)
    assert notes == [
        {"onset": 0.5, "pitch": 60.0, "offset": 1.25},  # the export's end, when it has one
        {"onset": 1.0, "pitch": 64.0, "offset": pytest.approx(1.41)},  # else time + duration + attack
    ]
    assert metrics.export_to_notes({"events": []}) == []
    with pytest.raises(metrics.MetricError):
        metrics.export_to_notes({"events": 3})


def test_true_kbps() -> None:
    assert metrics.true_kbps(1000, 8.0) == pytest.approx(1.0)


def test_devset_helpers_are_seeded() -> None:
    a, b = make_phrase(INSTRUMENTS[0], 7), make_phrase(INSTRUMENTS[0], 7)
    assert a == b and a != make_phrase(INSTRUMENTS[0], 8)
    assert a != make_phrase(INSTRUMENTS[5], 7)
    assert _not_silent(rich_signal(2.0), SR)
    assert not _not_silent(np.zeros((2, SR), np.float32), SR)
    clips = [Clip(f"{c}-00", c, "x.wav", SR, 1, 1.0, "t") for c in ("music", "speech", "notes", "long")]
    assert [c.id for c in select_clips(clips, quick=True, only=None)] == ["music-00", "speech-00", "notes-00"]
    assert [c.id for c in select_clips(clips, quick=False, only="long,speech-00")] == ["speech-00", "long-00"]


def _dev_phrases() -> list[tuple[object, list[dict[str, float]], list[tuple[float, int]]]]:
    """The dev set's eight phrases: (instrument, notes, bends)."""
    out = []
    for i, inst in enumerate(INSTRUMENTS):
        ph = make_phrase(inst, SEED + 100 + i)
        out.append((inst, ph.notes, ph.bends))
    return out


def _groups(notes: list[dict[str, float]]) -> list[list[dict[str, float]]]:
    """Notes grouped by onset (chords), in time order."""
    by: dict[float, list[dict[str, float]]] = {}
    for n in notes:
        by.setdefault(n["onset"], []).append(n)
    return [by[t] for t in sorted(by)]


def test_phrases_test_transcription_not_snapping() -> None:
    """Off-grid times, chromatic pitches, octave leaps, re-strikes, chords, velocities: in every phrase."""
    all_notes = [n for _, notes, _ in _dev_phrases() for n in notes]
    assert {"onset", "pitch", "offset", "velocity"} == set(all_notes[0])
    for inst, notes, _ in _dev_phrases():
        assert 12 <= len(notes) <= 60
        assert all(0 < n["onset"] < n["offset"] <= PHRASE_S for n in notes)
        assert all(round(n["onset"], 3) == n["onset"] and round(n["offset"], 3) == n["offset"] for n in notes)
        assert all(inst.low <= n["pitch"] <= inst.high and n["pitch"] == int(n["pitch"]) for n in notes)
        onsets = sorted({n["onset"] for n in notes})
        iois = np.diff(onsets)
        assert iois.min() >= 0.12 - 1e-9 and iois.max() <= 0.8 + 1e-9
        on_grid = np.abs(np.array(onsets) / 0.25 - np.round(np.array(onsets) / 0.25)) * 0.25 < 0.005
        assert on_grid.mean() < 0.2  # a 0.25 s grid (or any coarse one) would not help
        assert len(set(np.round(iois, 3))) >= len(iois) - 2
        pcs = {int(n["pitch"]) % 12 for n in notes}
        # chromatic: the pitch classes fit no major scale (so no diatonic mode either)
        assert not any(pcs <= {(r + k) % 12 for k in (0, 2, 4, 5, 7, 9, 11)} for r in range(12))
        tops = [max(n["pitch"] for n in g) for g in _groups(notes)]
        jumps = np.abs(np.diff(tops))
        assert (jumps == 0).any(), inst  # re-struck
        # no two notes of one pitch overlap (a note-off must not cut the re-struck note)
        for p in {n["pitch"] for n in notes}:
            same = sorted((n["onset"], n["offset"]) for n in notes if n["pitch"] == p)
            assert all(a[1] <= b[0] - 0.02 + 1e-9 for a, b in itertools.pairwise(same))
    tops_all = [
        np.abs(np.diff([max(n["pitch"] for n in g) for g in _groups(notes)]))
        for _, notes, _ in _dev_phrases()
    ]
    jumps = np.concatenate(tops_all)
    assert 0.07 < (jumps == 0).mean() < 0.25  # ~15 % re-struck
    assert (jumps == 12).sum() >= 5  # octave leaps
    vel = np.array([n["velocity"] for n in all_notes])
    assert vel.min() >= 35 and vel.max() <= 120 and vel.min() <= 45 and vel.max() >= 110 and vel.std() > 15


def test_phrases_chords_legato_vibrato_and_decay() -> None:
    sizes: list[int] = []
    for inst, notes, bends in _dev_phrases():
        groups = _groups(notes)
        if not inst.chords:
            assert all(len(g) == 1 for g in groups)
        else:
            sizes += [len(g) for g in groups]
        if inst.decay_s is not None:  # decaying: no longer than it sounds
            assert all(n["offset"] - n["onset"] <= inst.max_len(n["pitch"]) + 1e-6 for n in notes)
            assert not bends
        if inst.legato:
            # legato: the next note-on at, or 10-30 ms before, the previous note-off
            tied = [
                (a, b)
                for a, b in itertools.pairwise(groups)
                if a[0]["pitch"] != b[0]["pitch"] and 0.0 <= a[0]["offset"] - b[0]["onset"] <= 0.030 + 1e-9
            ]
            overlapped = [1 for a, b in tied if a[0]["offset"] > b[0]["onset"] + 0.009]
            assert len(tied) >= 3 and overlapped, inst
            assert bends, inst
            vals = np.array([v for _, v in bends])
            assert 8192 * 20 / 200 * 0.9 < np.abs(vals).max() <= 8192 * 40 / 200 + 1
            assert bends[-1][1] == 0  # the wheel is back at rest after the last vibrato
            starts = [t for t, _ in bends]
            onsets = np.array([g[0]["onset"] for g in groups])
            first = starts[0] - onsets[onsets <= starts[0]].max()
            assert 0.19 < first < 0.21  # vibrato sets in ~0.2 s into a long note
    sizes_a = np.array(sizes)
    assert 0.15 < (sizes_a > 1).mean() < 0.45  # chords on ~30 % of the polyphonic onsets
    assert (sizes_a >= 3).sum() >= 3 and (sizes_a == 4).any()


def test_phrase_midi_carries_notes_and_bends(tmp_path: Path) -> None:
    mido = pytest.importorskip("mido")
    inst = next(i for i in INSTRUMENTS if i.legato)
    ph = make_phrase(inst, 11)
    _write_midi(ph, inst.program, tmp_path / "p.mid")
    mid = mido.MidiFile(str(tmp_path / "p.mid"))
    assert mid.ticks_per_beat == 1000
    now, ons, bends = 0, [], []
    for msg in mid.tracks[0]:
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            ons.append((now / 1000, msg.note, msg.velocity))
        elif msg.type == "pitchwheel":
            bends.append((now / 1000, msg.pitch))
        elif msg.type == "program_change":
            assert msg.program == inst.program
    want = sorted((n["onset"], int(n["pitch"]), int(n["velocity"])) for n in ph.notes)
    assert sorted(ons) == want  # exact to the millisecond
    assert bends[1:] == ph.bends  # after the initial reset
    assert sum(1 for m in mid.tracks[0] if m.type == "note_off") == len(ph.notes)


def test_make_notes_refuses_dev_seeds_elsewhere_and_reserved_fonts(tmp_path: Path) -> None:
    fluid = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
    with pytest.raises(SpevError, match="dev set's"):  # the dev phrases never go to another soundfont
        make_notes(tmp_path, 8, seed=SEED - 7, soundfont=fluid)
    with pytest.raises(SpevError, match="reserved"):
        make_notes(tmp_path, 1, seed=1, soundfont="/x/musescore-general-soundfont.sf2")
    with pytest.raises(SpevError, match="renderer"):
        make_notes(tmp_path, 1, seed=1, renderer="sox")


def test_timidity_config_and_substitutes(tmp_path: Path) -> None:
    cfg = tmp_path / "a.cfg"
    (tmp_path / "b.cfg").write_text("bank 0\n 12 x/marimba.pat\n")
    cfg.write_text(
        "dir /x\ndrumset 0\n 35 kick.pat\nbank 0\n 0 piano.pat amp=120\n 13 xylo.pat # c\nsource b.cfg\n"
    )
    assert timidity_programs(cfg) == {0, 12, 13}
    assert substitute_program(0, {0, 13}) == 0
    assert substitute_program(12, {0, 13}) == 13  # marimba -> xylophone
    assert (
        substitute_program(11, {0, 8, 14}) == 8
    )  # no xylophone: the nearest of its family, the lower on a tie
    with pytest.raises(SpevError):
        substitute_program(40, {0, 13})


# ---------------------------------------------------------------- harness


def _tiny_devset(root: Path) -> list[Clip]:
    clips = []
    for i in range(2):
        cid = f"music-{i:02d}"
        sf.write(str(root / f"{cid}.wav"), rich_signal(3.0, seed=i).T, SR, subtype="PCM_16")
        clips.append(Clip(cid, "music", f"{cid}.wav", SR, 2, 3.0, "synthetic"))
    save_manifest(root, clips, seed=0)
    return clips


@pytest.mark.skipif(
    shutil.which("opusenc") is None or shutil.which("opusdec") is None, reason="opus-tools not installed"
)
def test_harness_ranks_codecs(tmp_path: Path) -> None:
    _need_visqol()
    clips = _tiny_devset(tmp_path)
    codecs: list[Codec] = [
        OpusCodec(6),
        OpusCodec(12),
        IdentityCodec(),
        DegradeCodec("degraded"),
        BrokenCodec("broken"),
    ]
    if shutil.which("lame"):
        codecs.append(Mp3Codec(8))
    out = tmp_path / "out"
    doc = run_benchmark(clips, tmp_path, codecs, out, plot=False, log=lambda s: None)

    rows = {(r["clip"], r["codec"]): r for r in doc["rows"]}
    for c in clips:
        o6, o12 = rows[c.id, "opus-6"], rows[c.id, "opus-12"]
        assert o6["ok"] and o12["ok"], (o6.get("error"), o12.get("error"))
        assert o12["visqol"] > o6["visqol"] + 0.3
        assert o12["mrstft22"] < o6["mrstft22"]
        assert 4.0 < o6["kbps"] < o12["kbps"] < 30.0  # true bitrate from the file size (Ogg overhead incl.)
        assert abs(o12["lag_ms"]) < 1.0  # opusdec removes the pre-skip
        assert o6["enc_xrt"] > 0 and o6["dec_xrt"] > 0
        if shutil.which("time", path="/usr/bin"):  # the command's own peak RSS, not this Python's
            assert 0 < o6["enc_rss_mb"] < 100 and 0 < o6["dec_rss_mb"] < 100
        clean, bad = rows[c.id, "identity"], rows[c.id, "degraded"]
        assert clean["mrstft22"] == pytest.approx(0.0, abs=1e-3)
        assert bad["visqol"] < clean["visqol"] - 0.5
        assert bad["mrstft22"] > clean["mrstft22"] + 0.1
        broken = rows[c.id, "broken"]
        assert not broken["ok"] and "deliberately broken" in broken["error"]
        if (c.id, "mp3-8") in rows:
            mp3 = rows[c.id, "mp3-8"]
            assert (
                mp3["ok"] and mp3["shifted"] and mp3["lag_ms"] > 1.0
            )  # lame's delay, removed before scoring

    saved = json.loads((out / "results.json").read_text())
    assert len(saved["rows"]) == len(clips) * len(codecs)
    summary = {s["codec"]: s for s in saved["summary"]}
    assert summary["broken"]["n_failed"] == 2 and summary["opus-12"]["n_ok"] == 2
    assert summary["opus-12"]["visqol"] > summary["opus-6"]["visqol"]
    md = (out / "results.md").read_text()
    assert "| opus-12 | 2/2 |" in md and "deliberately broken" in md
    assert md == to_markdown(saved["summary"], saved["meta"])


class NotesOnly(Codec):
    """A transcriber-like row: returns ``notes`` (all, or every other one), scores no audio."""

    scores_audio = False
    transcribes = True

    def __init__(self, name: str, family: str, every: int = 1, late_s: float = 0.0) -> None:
        self.name, self.family, self.every, self.late_s = name, family, every, late_s

    def run(self, src: Path, workdir: Path, timeout_s: float) -> CodecResult:
        truth = json.loads(src.with_suffix(".notes.json").read_text())["notes"][:: self.every]
        notes = [{**n, "offset": n["offset"] + self.late_s} for n in truth]
        return CodecResult(src, None, extra={"notes": notes})


def test_harness_scores_transcribers_and_resolve_bars(tmp_path: Path) -> None:
    clips = []
    for cat in ("notes", "notes-fp"):
        cid = f"{cat}-00"
        sf.write(str(tmp_path / f"{cid}.wav"), rich_signal(2.0, channels=1).T, SR)
        (tmp_path / f"{cid}.notes.json").write_text(json.dumps({"notes": REF_NOTES}))
        clips.append(Clip(cid, cat, f"{cid}.wav", SR, 1, 2.0, "synthetic", f"{cid}.notes.json"))
    codecs: list[Codec] = [
        NotesOnly("perfect", "spev"),
        NotesOnly("sloppy", "spev", late_s=0.5),  # right notes, offsets 0.5 s late
        NotesOnly("basic-pitch", "transcriber", every=2),
    ]
    out = tmp_path / "out"
    doc = run_benchmark(clips, tmp_path, codecs, out, plot=False, log=lambda s: None)
    rows = {(r["clip"], r["codec"]): r for r in doc["rows"]}
    perfect, half = rows["notes-00", "perfect"], rows["notes-fp-00", "basic-pitch"]
    assert perfect["ok"] and perfect["note_f1"] == 1.0 and perfect["pitch_acc"] == 1.0
    assert "visqol" not in perfect and "kbps" not in perfect
    assert half["note_recall"] == pytest.approx(0.5) and half["n_est"] == 3 and half["n_ref"] == 6
    assert rows["notes-00", "sloppy"]["offset_f1"] < 0.5 < rows["notes-00", "sloppy"]["note_f1"]
    summary = {(s["category"], s["codec"]): s for s in doc["summary"]}
    assert summary["notes", "basic-pitch"]["n_ref"] == 6 and not summary["notes", "basic-pitch"]["audio"]
    bars = doc["bars"]
    assert bars["resolved_by"] == ["perfect"]  # "sloppy" fails the offset bar
    assert {(r["codec"], r["category"]) for r in bars["rows"]} == {
        (c, cat) for c in ("perfect", "sloppy") for cat in ("notes", "notes-fp")
    }
    md = (out / "results.md").read_text()
    assert (
        "Transcription (notes-fp" in md and "| basic-pitch | 1/1 | 0.67 | 1.00 |" in md
    )  # onset F1, pitch acc
    assert "**#16 resolved: yes, by perfect.**" in md
    assert "kbps" not in md  # no row scored audio: no audio table
