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
from bench.codecs import (
    CODEC2_MODES,
    Codec,
    Codec2Codec,
    CodecError,
    CodecResult,
    Mp3Codec,
    OpusCodec,
    codec2_commands,
    default_codecs,
    from_s16,
    to_s16,
)
from bench.devset import (
    INSTRUMENTS,
    PHRASE_S,
    SEED,
    VOICE_GAP_S,
    VOICE_MAX_S,
    VOICE_MIN_S,
    VOICE_PAD_S,
    VOICE_PEAK,
    VOICE_SPEAKERS,
    Clip,
    VoiceLine,
    VoiceSpeaker,
    _not_silent,
    _write_midi,
    assemble_voice_clip,
    clips_by_sex,
    load_manifest,
    make_notes,
    make_phrase,
    make_voice,
    median_f0,
    plan_voice_clips,
    rebuild_categories,
    save_manifest,
    sex_from_f0,
    substitute_program,
    timidity_programs,
    trim_silence,
    voice_speaker,
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


# ---------------------------------------------------------------- voice clips and Codec2 (#18)


def test_voice_speaker_by_name_level_and_rate() -> None:
    assert voice_speaker("start/cs/1st-m-hello.ogg", 22050) == "small-fish"
    assert voice_speaker("share/borejokes/cs/ob-v-hmm.ogg", 22050) == "big-fish"
    assert voice_speaker("fdto/cs/agenti-m.ogg", 44100) == "ng-small-fish"  # New Generation recordings
    assert voice_speaker("linux/cs/v-horydoly.ogg", 44100) == "ng-big-fish"
    assert voice_speaker("city/cs/vit-hs-lod0.ogg", 22050) == "statue"
    assert voice_speaker("city/cs/vit-hs-reklama2.ogg", 22050) is None  # a citizen, not the statue
    assert voice_speaker("viking2/cs/dr-3-spravny.ogg", 22050) == "viking-3"
    assert voice_speaker("viking1/cs/d1-3-brb0.ogg", 22050) == "viking-3"
    assert voice_speaker("viking1/cs/d1-4-brb0.ogg", 22050) is None  # another Viking
    assert voice_speaker("gods/cs/b1-voda1.ogg", 22050) is None  # no known speaker
    assert voice_speaker("start/cs/x-m-v-both.ogg", 22050) is None  # ambiguous: neither fish
    assert voice_speaker("start/nl/1st-m-hello.ogg", 22050) is None  # not Czech
    assert voice_speaker("start/cs/1st-m-hello.ogg", 48000) is None  # neither recording
    assert sum(s.n_clips for s in VOICE_SPEAKERS) == 20
    assert {s.key for s in VOICE_SPEAKERS if s.sex == "F"} == {"small-fish", "ng-small-fish"}


def _fake_lines() -> tuple[list[VoiceLine], dict[str, float]]:
    rng = np.random.default_rng(0)
    lines, dur = [], {}
    for spk in ("a", "b"):
        for i in range(40):
            ln = VoiceLine(f"lvl/cs/{spk}-{i}.ogg", spk)
            lines.append(ln)
            dur[ln.rel] = float(rng.choice([0.6, 1.5, 2.5, 4.0, 7.0, 11.5]))
    return lines, dur


def test_voice_plan_is_seeded_and_packs_clips_of_8_to_12_s() -> None:
    lines, dur = _fake_lines()
    speakers = (VoiceSpeaker("a", "A", "F", "x", 3), VoiceSpeaker("b", "B", None, "y", 2))
    plan = plan_voice_clips(lines, lambda ln: dur[ln.rel], seed=5, speakers=speakers)
    assert plan == plan_voice_clips(lines, lambda ln: dur[ln.rel], seed=5, speakers=speakers)
    assert plan != plan_voice_clips(lines, lambda ln: dur[ln.rel], seed=6, speakers=speakers)
    assert [spk.key for spk, _ in plan] == ["a", "a", "a", "b", "b"]
    used = [ln for _, group in plan for ln in group]
    assert len(used) == len(set(used))  # every line at most once
    for spk, group in plan:
        assert all(ln.speaker == spk.key for ln in group)
        length = 2 * VOICE_PAD_S + sum(dur[ln.rel] for ln in group) + VOICE_GAP_S * (len(group) - 1)
        assert VOICE_MIN_S <= length <= VOICE_MAX_S + 1e-9
    with pytest.raises(SpevError, match="too few lines"):
        plan_voice_clips(lines[:3], lambda ln: dur[ln.rel], seed=5, speakers=speakers)


def _voiced(f0: float, seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 12) if f0 * h < sr / 2).astype(np.float32)


def test_median_f0_and_sex_bookkeeping(tmp_path: Path) -> None:
    for f0 in (110.0, 135.0, 210.0, 260.0):
        assert median_f0(_voiced(f0, 1.0), 16000) == pytest.approx(f0, rel=0.03)
    assert np.isnan(median_f0(np.zeros(16000, np.float32), 16000))
    assert sex_from_f0(120.0) == "M" and sex_from_f0(220.0) == "F"
    clips = [
        Clip("voice-00", "voice", "v0.wav", 16000, 1, 9.0, "s", None, "small-fish", "F", "character", 271.0),
        Clip("voice-01", "voice", "v1.wav", 16000, 1, 9.0, "s", None, "statue", "M", "f0", 138.0),
        Clip("speech-00", "speech", "s0.wav", 22050, 1, 5.0, "espeak"),
    ]
    save_manifest(tmp_path, clips, SEED)
    back = load_manifest(tmp_path)
    assert back == clips  # speaker, sex, how, f0 survive devset.json
    by_sex = {k: [c.id for c in v] for k, v in clips_by_sex(back).items()}
    assert by_sex == {"F": ["voice-00"], "M": ["voice-01"]}


def test_trim_and_assemble_voice_clip() -> None:
    sr = 16000
    tone = 0.3 * _voiced(200.0, 0.5, sr)
    padded = np.concatenate([np.zeros(sr // 2, np.float32), tone, np.zeros(sr, np.float32)])
    trimmed = trim_silence(padded, sr)
    assert tone.size <= trimmed.size <= tone.size + round(0.06 * sr) + 2 * (sr // 100)
    x = assemble_voice_clip([tone, 0.5 * tone], sr)
    assert x.size == tone.size * 2 + round(VOICE_GAP_S * sr) + 2 * round(VOICE_PAD_S * sr)
    assert float(np.max(np.abs(x))) == pytest.approx(VOICE_PEAK, rel=1e-5)
    assert not np.any(x[: round(VOICE_PAD_S * sr)]) and not np.any(x[-round(VOICE_PAD_S * sr) :])


def test_codec2_commands_and_raw_samples(tmp_path: Path) -> None:
    enc, dec = codec2_commands("1200", tmp_path / "i.raw", tmp_path / "c.bits", tmp_path / "o.raw")
    assert enc == ["c2enc", "1200", str(tmp_path / "i.raw"), str(tmp_path / "c.bits")]
    assert dec == ["c2dec", "1200", str(tmp_path / "c.bits"), str(tmp_path / "o.raw")]
    with pytest.raises(ValueError, match="unknown Codec2 mode"):
        codec2_commands("2000", tmp_path, tmp_path, tmp_path)
    x = np.array([0.0, 0.5, -0.5, 1.5, -1.5], np.float32)
    data = to_s16(x)
    assert len(data) == 10 and np.frombuffer(data, "<i2").tolist() == [0, 16384, -16384, 32767, -32767]
    np.testing.assert_allclose(from_s16(data), np.clip(x, -1, 1), atol=1e-4)
    assert [Codec2Codec(m).name for m in CODEC2_MODES] == ["codec2-3200", "codec2-1200", "codec2-700c"]


FAKE_C2 = """#!{python}
# A stand-in for Debian codec2: 320 samples (40 ms at 8 kHz) <-> one 6-byte frame (mode 1200).
import sys
mode, src, dst = sys.argv[1:4]
assert mode == "1200", mode
data = open(src, "rb").read()
if sys.argv[0].endswith("c2enc"):
    frames = len(data) // 640
    open(dst, "wb").write(bytes(6 * frames))
else:
    open(dst, "wb").write(bytes(640 * (len(data) // 6)))
"""


def test_codec2_row_with_a_fake_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("c2enc", "c2dec"):
        exe = bindir / name
        exe.write_text(FAKE_C2.format(python=sys.executable))
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")
    src = tmp_path / "in.wav"
    sf.write(str(src), rich_signal(2.0, sr=22050).T, 22050)  # stereo 22.05 kHz in: mono 8 kHz to codec2
    codec = Codec2Codec("1200")
    assert codec.available() is None
    work = tmp_path / "work"
    work.mkdir()
    res = codec.run(src, work, 30.0)
    frames = (2 * 8000) // 320
    assert res.n_bytes == 6 * frames and (work / "input-8k.raw").stat().st_size == 2 * 2 * 8000
    assert metrics.true_kbps(res.n_bytes, 2.0) == pytest.approx(1.2)
    info = sf.info(str(res.decoded))
    assert info.samplerate == 8000 and info.channels == 1 and info.frames == 320 * frames
    assert codec.shift_to_align and codec.skip_categories == ("music", "notes", "notes-fp", "long")


def test_default_rows_on_voice() -> None:
    rows = {c.name: c for c in default_codecs()}
    assert {"codec2-3200", "codec2-1200", "codec2-700c"} <= set(rows)
    runs_voice = sorted(n for n, c in rows.items() if "voice" not in c.skip_categories)
    want = ["spev", "spev-2k", "opus-6", "opus-12", "codec2-3200", "codec2-1200", "codec2-700c"]
    assert runs_voice == sorted(want)  # spev-2k: #18's first bar is spev at <= 2 kbps on voice
    assert all("speech" not in rows[n].skip_categories for n in runs_voice)
    named = {c.name: c for c in default_codecs(every_category=True)}
    for name in ("spev-refine", "spev-analysis", "spev-2k", "spev-8k", "mp3-8"):  # asked for by name
        assert "voice" not in named[name].skip_categories
    quick = {c.name for c in default_codecs(quick=True)}
    assert "codec2-1200" in quick and "spev-refine" not in quick
    clips = [Clip(f"{c}-00", c, "x.wav", 16000, 1, 1.0, "t") for c in ("voice", "speech", "music")]
    assert [c.id for c in select_clips(clips, quick=True, only=None)] == ["voice-00", "speech-00", "music-00"]


def test_voice_clips_are_scored_as_speech(tmp_path: Path) -> None:
    _need_visqol()
    pytest.importorskip("pesq")
    sr = 16000
    rng = np.random.default_rng(2)
    x = np.concatenate([_voiced(f0, 0.4, sr) * 0.3 for f0 in rng.uniform(100, 250, 8)])
    x = np.concatenate([np.zeros(sr // 5, np.float32), x, np.zeros(sr // 5, np.float32)])
    sf.write(str(tmp_path / "voice-00.wav"), x, sr)
    clip = Clip("voice-00", "voice", "voice-00.wav", sr, 1, x.size / sr, "synthetic", speaker="a", sex="M")
    doc = run_benchmark([clip], tmp_path, [IdentityCodec()], tmp_path / "out", plot=False, log=lambda s: None)
    row = doc["rows"][0]
    assert row["ok"] and row["pesq"] > 4.0 and row["visqol"] > 4.0  # speech mode (lattice ~4.5 at best)
    assert "## voice" in (tmp_path / "out" / "results.md").read_text()


def test_make_voice_on_a_stand_in_package(tmp_path: Path) -> None:
    """The whole voice pipeline on synthetic .ogg files named like fillets-ng-data-cs's."""
    root, out = tmp_path / "sound", tmp_path / "dev"
    out.mkdir()
    layout = [  # (path pattern, rate, f0, count)
        ("lvl/cs/a-m-{i}.ogg", 22050, 250.0, 12),
        ("lvl/cs/a-v-{i}.ogg", 22050, 120.0, 10),
        ("hanoi/cs/m-{i}.ogg", 44100, 210.0, 8),
        ("hanoi/cs/v-{i}.ogg", 44100, 110.0, 4),
        ("city/cs/vit-hs-x{i}.ogg", 22050, 130.0, 4),
        ("viking2/cs/dr-3-x{i}.ogg", 22050, 115.0, 2),
        ("gods/cs/b1-x{i}.ogg", 22050, 100.0, 3),  # nobody's: never used
    ]
    for pattern, rate, f0, count in layout:
        for i in range(count):
            p = root / pattern.format(i=i)
            p.parent.mkdir(parents=True, exist_ok=True)
            x = 0.3 * _voiced(f0 * (1 + 0.01 * i), 4.5, rate)
            sf.write(str(p), x, rate, format="OGG", subtype="VORBIS")
    (root / "lvl/cs/a-m-copy.ogg").write_bytes((root / "lvl/cs/a-m-0.ogg").read_bytes())  # dropped
    clips, tracks = make_voice(out, SEED, root)
    assert [c.id for c in clips] == [f"voice-{i:02d}" for i in range(20)]
    assert [c.speaker for c in clips] == [s.key for s in VOICE_SPEAKERS for _ in range(s.n_clips)]
    assert [c.sex for c in clips].count("F") == 10
    statue = [c for c in clips if c.speaker == "statue"]
    assert all(c.sex == "M" and c.sex_source == "f0" and c.f0_hz is not None for c in statue)
    for c in clips:
        info = sf.info(str(out / c.path))
        assert info.samplerate == 16000 and info.channels == 1 and c.category == "voice"
        assert VOICE_MIN_S - 0.05 <= c.duration_s <= VOICE_MAX_S
    used = [t.split("\t")[2] for t in tracks]
    assert len(used) == len(set(used)) == 40 and "lvl/cs/a-m-copy.ogg" not in used
    assert all(t.startswith("fillets-ng-data-cs\t") and "GPL-2" in t for t in tracks)
    again, _ = make_voice(tmp_path, SEED, root)
    assert [c.source for c in again] == [c.source for c in clips]


def test_rebuild_categories_guards(tmp_path: Path) -> None:
    save_manifest(tmp_path, [Clip("music-00", "music", "m.wav", SR, 2, 1.0, "x")], SEED)
    with pytest.raises(SpevError, match="cannot rebuild"):
        rebuild_categories(tmp_path, ["music"], tracks_file=None)
    with pytest.raises(SpevError, match="another seed"):
        rebuild_categories(tmp_path, ["voice"], seed=SEED + 1, tracks_file=None)


def test_rate_quality_plot_draws_every_category(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench.plot draws one panel per category present, voice and notes-fp included, in the right mode."""
    from bench import plot

    titles: list[str] = []
    import matplotlib.axes

    orig = matplotlib.axes.Axes.set_title

    def spy(self: matplotlib.axes.Axes, label: str, *a: object, **k: object) -> object:
        titles.append(label)
        return orig(self, label, *a, **k)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", spy)
    summary = [
        {"category": cat, "codec": name, "family": fam, "kbps": kbps, "visqol": 2.0 + kbps / 10}
        for cat in ("music", "voice", "notes-fp")
        for name, fam, kbps in (
            ("spev", "spev", 2.0),
            ("opus-6", "opus", 6.0),
            ("codec2-1200", "codec2", 1.2),
        )
    ]
    summary.append({"category": "voice", "codec": "basic", "family": "ceiling", "visqol": 4.5})
    out = tmp_path / "rq.png"
    plot.plot_rate_quality(summary, out)
    assert out.stat().st_size > 1000
    assert titles == ["music (audio mode)", "voice (speech mode)", "notes-fp (audio mode)"]
