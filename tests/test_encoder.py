"""The encoder: analysis kernels, recovery of known events, determinism, streaming, silence, stereo, rate."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sparsecodec.api import encode_file
from sparsecodec.encoder import analysis, fill, initialisers, proposal, refine, transcriber
from sparsecodec.encoder import stream as encoder
from sparsecodec.errors import UsageError
from sparsecodec.format import container, events
from sparsecodec.synth import render_np

SR = 22050
C = events.INDEX


def _notes(rng: np.random.Generator, pitches: list[float], times: list[float]) -> np.ndarray:
    """Pitched, prior-like notes with short attacks and little noise."""
    n = len(pitches)
    v = events.sample_prior(rng, n)
    v[:, C["pitch"]] = pitches
    v[:, C["level"]] = rng.uniform(-24.0, -12.0, n)
    v[:, C["attack"]] = rng.uniform(0.002, 0.012, n)
    v[:, C["noise_mix"]] = rng.uniform(0.0, 0.1, n)
    v[:, C["t60_low"]] = rng.uniform(1.0, 4.0, n)
    v[:, C["duration"]] = rng.uniform(0.3, 0.8, n)
    for name in ("glide", "vibrato_depth", "pitch_drop", "jitter", "detune", "wet", "pan"):
        v[:, C[name]] = 0.0
    v[:, C["inharmonicity"]] = -7.0
    return events.clip(v)


def _encode(x: np.ndarray, settings: encoder.EncoderSettings | None = None, block: int | None = None):
    s = settings or encoder.EncoderSettings(init="analysis")
    blocks = [x] if block is None else [x[:, i : i + block] for i in range(0, x.shape[1], block)]
    chunks = list(encoder.encode_stream(iter(blocks), SR, x.shape[0], s))
    vec = np.concatenate([c.vectors for c in chunks]) if chunks else np.zeros((0, 32))
    tim = np.concatenate([c.times for c in chunks]) if chunks else np.zeros(0, np.int64)
    return chunks, vec, tim


def test_stft_istft_round_trip_and_scale() -> None:
    res = analysis.resolutions(SR)[1]
    t = np.arange(SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    spec = analysis.stft(x, res)
    assert abs(np.abs(spec[10]).max() - 0.5) < 0.02  # amplitude-scaled: a sine of 0.5 peaks at ≈0.5
    back = analysis.istft(spec, res, x.size)
    np.testing.assert_allclose(back, x, atol=1e-4)
    m_lo, seg = analysis.stft_segment(x[5000:9000], 5000, res.n_frames(x.size), res)
    full = analysis.stft(np.pad(x[5000:9000], (5000, x.size - 9000)), res)
    np.testing.assert_allclose(seg, full[m_lo : m_lo + seg.shape[0]], atol=1e-5)
    assert np.abs(full[:m_lo]).max() < 1e-6


def test_analyser_finds_pitch_and_onset_of_one_note() -> None:
    v = _notes(np.random.default_rng(0), [57.3], [0.0])
    x = render_np.render(v, np.array([0.5]), SR * 2, SR)[0]
    vec, tim, score = analysis.Analyzer(SR).propose(x, SR, 5)
    pitched = events.is_pitched(vec)
    assert pitched.any()
    i = int(np.argmax(np.where(pitched, score, -1)))
    assert abs(vec[i, C["pitch"]] - 57.3) < 0.25
    assert abs(tim[i] - 0.5) < 0.01


def _legato_line(slow: bool = True) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Four sustained notes (150 ms attacks when ``slow``), each starting while the last still sounds."""
    pitches = [60.0, 64.0, 67.0, 71.0]
    v = _notes(np.random.default_rng(3), pitches, [0.0] * 4)
    v[:, C["attack"]] = 0.15 if slow else 0.005
    v[:, C["duration"]] = 1.0
    v[:, C["release"]] = 0.3
    v[:, C["t60_low"]] = 20.0
    v[:, C["t60_high"]] = 20.0
    v[:, C["level"]] = -16.0
    return v, np.array([0.4, 1.3, 2.2, 3.1]), pitches


def test_analyser_finds_slow_legato_onsets() -> None:
    """Bowed-string-like notes (150 ms attacks, legato) are found: the slow flux sees what a one-frame
    flux misses (without it, two of the four notes are found)."""
    v, t, pitches = _legato_line()
    x = render_np.render(v, t, SR * 5, SR)[0]
    vec, tim, _ = analysis.Analyzer(SR).propose(x, SR, 8)
    ok = events.is_pitched(vec)
    found = 0
    for ti, p in zip(t, pitches, strict=True):
        found += bool((ok & (np.abs(tim - ti) < 0.06) & (np.abs(vec[:, C["pitch"]] - p) < 0.5)).any())
    assert found >= 3


INITS = pytest.mark.parametrize("init", ["analysis", None], ids=["analysis", "default"])
"""Run a test with the plain analysis and with the default initialiser (the hybrid when weights ship)."""


@INITS
def test_synthetic_mix_is_recovered(init: str | None) -> None:
    rng = np.random.default_rng(11)
    pitches = [48.0, 55.5, 62.0, 67.2, 72.0, 79.0]
    times = np.round(np.array([0.2, 0.75, 1.3, 1.9, 2.45, 3.0]) * SR) / SR
    v = _notes(rng, pitches, list(times))
    x = render_np.render(v, times, SR * 4, SR)
    _, vec, tim = _encode(x, encoder.EncoderSettings(init=init))
    pitched = events.is_pitched(vec)
    for p, t in zip(pitches, times, strict=True):
        ok = pitched & (np.abs(tim / SR - t) < 0.010) & (np.abs(vec[:, C["pitch"]] - p) < 0.25)
        assert ok.any(), f"note {p} at {t:.3f} s not found"


def test_polyphony_two_notes_at_one_onset() -> None:
    v = _notes(np.random.default_rng(5), [52.0, 59.0], [0.0, 0.0])
    v[:, C["level"]] = [-14.0, -17.0]
    t = np.array([0.4, 0.4])
    x = render_np.render(v, t, SR * 2, SR)
    _, vec, tim = _encode(x)
    found = vec[events.is_pitched(vec) & (np.abs(tim / SR - 0.4) < 0.02), C["pitch"]]
    for p in (52.0, 59.0):
        assert np.any(np.abs(found - p) < 0.25), (p, found)


@INITS
def test_deterministic_and_block_size_independent(init: str | None) -> None:
    rng = np.random.default_rng(3)
    times = np.round(np.arange(0.3, 15.0, 0.9) * SR) / SR
    pitches = list(rng.uniform(50.0, 80.0, times.size))
    x = render_np.render(_notes(rng, pitches, list(times)), times, SR * 15, SR)
    s = encoder.EncoderSettings(init=init)
    chunks_a, va, ta = _encode(x, s)
    _, vb, tb = _encode(x, s)
    _, vc, tc = _encode(x, s, block=3001)
    np.testing.assert_array_equal(va, vb)
    np.testing.assert_array_equal(ta, tb)
    np.testing.assert_array_equal(va, vc)
    np.testing.assert_array_equal(ta, tc)
    # chunks tile the input; times ascend inside their chunk
    hop = encoder.hop_samples(SR)
    assert [c.start for c in chunks_a] == list(range(0, x.shape[1], hop))
    assert sum(c.length for c in chunks_a) == x.shape[1]
    for c in chunks_a:
        assert np.all((c.times >= c.start) & (c.times < c.start + c.length))
        assert np.all(np.diff(c.times) >= 0)
    assert len(va) >= 0.8 * times.size


def test_silence_costs_nothing() -> None:
    x = np.zeros((1, SR * 7), np.float32)
    chunks, vec, _ = _encode(x)
    assert len(vec) == 0
    assert sum(c.length for c in chunks) == x.shape[1]
    assert list(encoder.encode_stream(iter([]), SR, 1, encoder.EncoderSettings())) == []


def test_stereo_gives_one_stream_with_pan() -> None:
    v = _notes(np.random.default_rng(9), [60.0, 67.0], [0.0, 0.0])
    v[:, C["pan"]] = [-0.8, 0.7]
    t = np.array([0.3, 1.2])
    x = render_np.render(v, t, SR * 2, SR, channels=2)
    _, vec, tim = _encode(x)
    for p, pan, tt in ((60.0, -0.8, 0.3), (67.0, 0.7, 1.2)):
        i = np.nonzero(events.is_pitched(vec) & (np.abs(vec[:, C["pitch"]] - p) < 0.3))[0]
        assert i.size, p
        j = i[np.argmin(np.abs(tim[i] / SR - tt))]
        assert abs(vec[j, C["pan"]] - pan) < 0.2


def test_rate_control_caps_events_per_chunk() -> None:
    rng = np.random.default_rng(4)
    times = np.round(np.arange(0.1, 5.9, 0.25) * SR) / SR
    x = render_np.render(_notes(rng, list(rng.uniform(50, 80, times.size)), list(times)), times, SR * 6, SR)
    s = encoder.EncoderSettings(kbps=None, events_per_second=1.0, init="analysis")
    chunks, _, _ = _encode(x, s)
    for c in chunks:
        assert len(c.times) <= int(np.ceil(c.length / SR))
    assert encoder.EncoderSettings(kbps=4.0).event_rate() == pytest.approx(4000 / 8 / encoder.BYTES_PER_EVENT)


def test_weights_hash_and_id() -> None:
    h = encoder.weights_hash()
    assert h == "none" or len(h) == 64
    assert encoder.ENCODER_ID.startswith("spev-")
    assert encoder.weights_hash("analysis") == "none"
    assert encoder.encoder_id("analysis") == encoder.ENCODER_ID
    assert encoder.encoder_id("hybrid").startswith(encoder.ENCODER_ID + "+hybrid")
    if transcriber.default_weights_path().is_file():  # the note transcriber's weights are named too
        tr = transcriber.load_default()
        assert tr is not None and encoder.encoder_id("hybrid").endswith("+notes-" + tr.weights_hash[:12])
    if proposal.default_weights_path().is_file():
        assert len(encoder.weights_hash("hybrid")) == 64


def _encode_header(tmp_path: Path, init: str) -> container.Header:
    """Header of a 1.5 s tone encoded through the public API with ``init``."""
    t = np.arange(int(1.5 * SR)) / SR
    wav, spev = tmp_path / "tone.wav", tmp_path / "tone.spev"
    sf.write(str(wav), (0.3 * np.sin(2 * np.pi * 330.0 * t) * (t > 0.2)).astype(np.float32), SR)
    encode_file(wav, spev, init=init)
    with spev.open("rb") as f:
        return container.Reader(f).header


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.skipif(not proposal.default_weights_path().is_file(), reason="no shipped proposal weights")
def test_header_weights_hash_is_the_loaded_weights(tmp_path: Path) -> None:
    """A hybrid encode's header names the sha256 of the weights file the encoder loaded and ran."""
    header = _encode_header(tmp_path, "hybrid")
    assert header.encoder_id == encoder.encoder_id("hybrid") and header.encoder_id.startswith(
        encoder.ENCODER_ID + "+hybrid"
    )
    assert header.weights_hash == _sha256(proposal.default_weights_path())
    net = proposal.load_default()
    assert net is not None and header.weights_hash == net.weights_hash
    assert encoder.make_initialiser("hybrid", SR).weights_hash == header.weights_hash
    assert _encode_header(tmp_path, "analysis").weights_hash == "none"


def test_header_and_network_follow_one_weights_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Move the weights location: the network the encoder runs and the hash its header records both follow
    it (one locator, one loader).  A decoy that sorts first beside it (``proposal-a.safetensors``, which the
    old ``proposal*`` glob hashed) is ignored; without weights the hybrid is refused rather than recorded."""
    torch = pytest.importorskip("torch")
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.manual_seed(1)
    proposal.save_weights(proposal.ProposalModel(), folder / "proposal.safetensors")
    torch.manual_seed(2)
    proposal.save_weights(proposal.ProposalModel(), folder / "proposal-a.safetensors")
    monkeypatch.setattr(proposal, "default_weights_path", lambda: folder / proposal.WEIGHTS_NAME)
    ran: set[str] = set()  # hashes of the networks whose maps the encode used
    cues = initialisers.HybridInit.cues

    def spy(self: initialisers.HybridInit, mono: np.ndarray, sample_rate: int) -> analysis.Cues:
        ran.add(self.net.weights_hash)
        return cues(self, mono, sample_rate)

    monkeypatch.setattr(initialisers.HybridInit, "cues", spy)
    header = _encode_header(tmp_path, "hybrid")
    loaded = _sha256(folder / "proposal.safetensors")
    assert header.weights_hash == loaded != _sha256(folder / "proposal-a.safetensors")
    assert ran == {loaded}
    assert encoder.weights_hash() == loaded == encoder.make_initialiser(None, SR).weights_hash
    monkeypatch.setattr(proposal, "default_weights_path", lambda: folder / "absent.safetensors")
    assert encoder.resolve_init() == "analysis" and encoder.weights_hash() == "none"
    with pytest.raises(UsageError, match="no proposal network"):
        encoder.weights_hash("hybrid")
    with pytest.raises(UsageError, match="no proposal network"):
        encoder.make_initialiser("hybrid", SR)


def test_hybrid_init_adds_the_network_onsets() -> None:
    """``init="hybrid"``: the analysis also examines the proposal network's onsets; it still finds the
    notes of a plain mix, and every hint becomes a candidate onset of the analysis."""
    if not proposal.default_weights_path().is_file():
        pytest.skip("no shipped proposal weights")
    rng = np.random.default_rng(5)
    times = [0.3, 1.1, 1.9, 2.6]
    pitches = [55.0, 62.0, 67.0, 59.0]
    x = render_np.render(_notes(rng, pitches, times), np.array(times), SR * 4, SR)
    s = encoder.EncoderSettings(init="hybrid", fill=False)
    _, vec, tim = _encode(x, s)
    for ti, p in zip(times, pitches, strict=True):
        near = (np.abs(tim / SR - ti) < 0.03) & (np.abs(vec[:, C["pitch"]] - p) < 0.5)
        assert near.any(), (ti, p)
    init = encoder.make_initialiser(s.init, SR)
    assert init.name == "hybrid" and isinstance(init, encoder.HybridInit)
    cues = init.cues(x.mean(axis=0), SR)
    hints = cues.hints()
    assert hints.ndim == 1 and np.all(np.diff(hints) > 0)
    assert all(np.abs(hints - t).min() < 0.03 for t in times)  # the network hears every note
    grid = np.arange(24.0, 108.0, 0.5)
    p = cues.pitch_prior(1.1, grid)  # the network's pitch map at the second note
    assert p.shape == grid.shape and np.all((p >= 0) & (p <= 1))
    assert np.array_equal(cues.shifted(0.5).pitch_prior(1.6, grid), p)
    kept = cues.keep_hints(np.array([times[1]]), 0.03)  # only the hint that found the second note stays
    assert kept.hints().size == 1 and abs(kept.hints()[0] - times[1]) < 0.03
    np.testing.assert_allclose(kept.shifted(0.5).hints(), kept.hints() + 0.5)  # on the padded clock too


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="needs fluidsynth")
@INITS
def test_fluidsynth_phrase_note_f1(tmp_path: Path, init: str | None) -> None:
    mido = pytest.importorskip("mido")
    mir_eval = pytest.importorskip("mir_eval")
    sf2 = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
    if not sf2.is_file():
        pytest.skip("needs timgm6mb-soundfont")
    import soundfile as sf

    rng = np.random.default_rng(7)
    notes, t = [], 0.3
    for _ in range(10):
        p, d = int(rng.integers(48, 80)), float(rng.uniform(0.3, 0.6))
        notes.append((t, t + d, p))
        t += float(rng.uniform(0.35, 0.6))
    mid = mido.MidiFile(ticks_per_beat=480)  # 120 bpm: 960 ticks per second
    track = mido.MidiTrack()
    mid.tracks.append(track)
    msgs = sorted(
        [(on, mido.Message("note_on", note=p, velocity=90)) for on, _, p in notes]
        + [(off, mido.Message("note_off", note=p, velocity=0)) for _, off, p in notes],
        key=lambda m: m[0],
    )
    last = 0
    for when, msg in msgs:
        tick = round(when * 960)
        track.append(msg.copy(time=tick - last))
        last = tick
    mid.save(tmp_path / "a.mid")
    wav = tmp_path / "a.wav"
    subprocess.run(
        ["fluidsynth", "-ni", "-q", "-F", str(wav), "-r", str(SR), str(sf2), str(tmp_path / "a.mid")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    assert rate == SR
    _, vec, tim = _encode(np.ascontiguousarray(audio.T), encoder.EncoderSettings(init=init))
    keep = events.is_pitched(vec) & (vec[:, C["level"]] > vec[:, C["level"]].max() - 40.0)
    est_t = tim[keep] / SR
    ref_i = np.array([[a, b] for a, b, _ in notes])
    ref_p = events.pitch_to_hz(np.array([p for *_, p in notes], dtype=float))
    _, _, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_i,
        ref_p,
        np.stack([est_t, est_t + 0.1], axis=1),
        events.pitch_to_hz(vec[keep, C["pitch"]]),
        onset_tolerance=0.05,
        pitch_tolerance=50.0,
        offset_ratio=None,
    )
    assert f1 >= 0.6


def _mrstft(ref: np.ndarray, deg: np.ndarray) -> float:
    """bench's metric: mean over FFT 2048/512/128 (75 % overlap) of mean |log10 |R| - log10 |D||, mono."""
    r, d = ref.mean(axis=0), deg.mean(axis=0)
    out = []
    for n in (2048, 512, 128):
        w = np.hanning(n + 1)[:-1]
        idx = np.arange(0, r.size - n + 1, n // 4)[:, None] + np.arange(n)[None, :]
        lr = np.log10(np.abs(np.fft.rfft(r[idx] * w, axis=1)) + 1e-5)
        ld = np.log10(np.abs(np.fft.rfft(d[idx] * w, axis=1)) + 1e-5)
        out.append(float(np.abs(lr - ld).mean()))
    return float(np.mean(out))


def test_refine_events_lowers_loss_from_a_wrong_start() -> None:
    """Joint Adam on a magnitude loss moves wrong timbre/decay/level back towards the truth."""
    pytest.importorskip("torch")
    truth = _notes(np.random.default_rng(21), [55.0, 64.0], [0.0, 0.0])
    t = np.array([0.1, 0.6])
    x = render_np.render(truth, t, SR * 3 // 2, SR)
    start = truth.copy()
    start[:, C["level"]] += [5.0, -4.0]
    start[:, C["tilt"]] += [6.0, -6.0]
    start[:, C["t60_low"]] *= [0.3, 2.5]
    start[:, C["t60_high"]] *= [0.5, 2.0]
    start = events.clip(start)
    y0 = render_np.render(start, t, x.shape[1], SR)
    out = refine.refine_events(start, t, x[0], SR, 20)
    y1 = render_np.render(out, t, x.shape[1], SR)
    before, after = _mrstft(x, y0), _mrstft(x, y1)
    assert after < 0.8 * before, (before, after)
    assert np.all(np.abs(out[:, C["pitch"]] - truth[:, C["pitch"]]) < 0.2)  # pitch stays put
    frozen = [C[n] for n in refine.FROZEN_DIMS]
    np.testing.assert_array_equal(out[:, frozen], start[:, frozen])
    again = [refine.refine_events(start, t, x[0], SR, 2) for _ in range(2)]
    np.testing.assert_array_equal(again[0], again[1])  # deterministic


def test_refine_setting_improves_the_encode() -> None:
    """``refine_steps`` (--refine) lowers the bench distance of the decoded events on a short mix."""
    pytest.importorskip("torch")
    v = _notes(np.random.default_rng(8), [50.0, 57.0, 62.0], [0.0, 0.0, 0.0])
    t = np.array([0.15, 0.15, 0.9])
    x = render_np.render(v, t, SR * 2, SR)
    _, v0, t0 = _encode(x)
    _, v1, t1 = _encode(x, encoder.EncoderSettings(init="analysis", refine_steps=12))
    np.testing.assert_array_equal(t0, t1)
    assert np.all((v1 >= events.LO) & (v1 <= events.HI))
    before = _mrstft(x, render_np.render(v0, t0 / SR, x.shape[1], SR))
    after = _mrstft(x, render_np.render(v1, t1 / SR, x.shape[1], SR))
    assert after < before - 0.01, (before, after)


def _dense_texture(seconds: float = 6.0) -> np.ndarray:
    """A noisy chord texture ``float32[1, n]``: 4 sustained notes + broadband noise swelling over time."""
    rng = np.random.default_rng(21)
    v = _notes(rng, [48.0, 55.0, 64.0, 71.0], [0.0] * 4)
    v[:, C["duration"]] = 6.0
    v[:, C["t60_low"]] = 20.0
    n = int(SR * seconds)
    x = render_np.render(v, np.array([0.05, 0.05, 0.05, 0.05]), n, SR)
    pink = np.sqrt(1.0 + np.fft.rfftfreq(n, 1 / SR) / 500.0)
    noise = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / pink, n)
    swell = 0.5 + 0.5 * np.sin(2 * np.pi * 0.4 * np.arange(n) / SR)
    x = x + (0.1 * noise / np.abs(noise).max() * swell)[None]
    return np.asarray(x / np.abs(x).max() * 0.5, np.float32)


def test_kbps_controls_events_and_fill_covers_dense_texture() -> None:
    x = _dense_texture()
    counts = {}
    for kbps in (2.0, 8.0):
        s = encoder.EncoderSettings(kbps=kbps, init="analysis")
        chunks, vec, _ = _encode(x, s)
        counts[kbps] = len(vec)
        for c in chunks:  # the budget is a cap per hop
            assert len(c.times) <= np.ceil(s.event_rate() * c.length / SR)
    assert counts[8.0] >= 1.5 * counts[2.0] > 0, counts
    # the fill (unpitched noise events) must cover the texture: a much lower log-spectral distance
    _, v_off, t_off = _encode(x, encoder.EncoderSettings(kbps=4.0, init="analysis", fill=False))
    _, v_on, t_on = _encode(x, encoder.EncoderSettings(kbps=4.0, init="analysis"))
    assert (~events.is_pitched(v_on)).sum() > (~events.is_pitched(v_off)).sum() + 10
    y_off = render_np.render(v_off, t_off / SR, x.shape[1], SR)
    y_on = render_np.render(v_on, t_on / SR, x.shape[1], SR)
    d_off, d_on = _mrstft(x, y_off), _mrstft(x, y_on)
    assert d_on < 0.7 * d_off, (d_on, d_off)
    # levels are not biased low: the decode's power within 3.2 dB of the input's
    assert abs(10 * np.log10(np.mean(y_on**2) / np.mean(x**2))) < 3.2


def test_fill_selection_fills_noise_floors_and_not_the_gaps_between_partials() -> None:
    """``fill.select_fill`` keeps a tile where the input has a noise floor the events leave empty, and drops
    one that would put noise between clean partials the events already explain."""
    m, b = 40, 64
    mag2 = np.full((1, m, b), 1e-12, np.float32)
    explained = np.zeros((1, m, b), np.float32)
    mag2[0, :, :32] = 1e-4  # band 0: a noise floor, nothing explains it
    mag2[0, :, 32::4] = 1.0  # band 1: clean partials ...
    explained[0, :, 32::4] = 1.0  # ... that the events explain
    unit = [(0, np.full((m, 48), 1e-4)), (16, np.full((m, 48), 1e-4))]  # each tile spills into its neighbour
    out = fill.select_fill(np.array([1.0, 1.0]), unit, [0], 20, mag2, explained, np.array([0, 32, 64]))
    assert out[0] == 1.0 and out[1] == 0.0
    # too loud a fit is turned down
    out = fill.select_fill(np.array([8.0, 0.0]), unit, [0], 20, mag2, explained, np.array([0, 32, 64]))
    assert 0.0 < out[0] <= 4.0


def test_pitch_prior_breaks_ties_but_cannot_pull_f0_off_the_partials() -> None:
    """A pitch prior picks among f0s that explain the partials equally (the octave below a tone with all
    harmonics), but a prior on the octave above, which explains only the even partials, is overruled."""
    a = analysis.Analyzer(SR)
    new = np.zeros(a.res_a.n_fft // 2 + 1)
    f0 = float(events.pitch_to_hz(57.0))
    for k in range(1, 13):
        new[round(k * f0 / a.bin_hz)] = 1.0 / k

    def prior_at(p: float) -> np.ndarray:
        return np.exp(-0.5 * ((a.cand_pitch - p) / 0.5) ** 2)

    def pitch(hz: float) -> float:
        return float(events.hz_to_pitch(hz))

    assert abs(pitch(a._f0(new)[0]) - 57.0) < 0.25
    assert abs(pitch(a._f0_with_prior(new, prior_at(45.0))[0]) - 45.0) < 0.25  # a tie: the prior decides
    assert abs(pitch(a._f0(new, prior=prior_at(69.0))[0]) - 69.0) < 0.25  # unguarded, it would move
    f0_g, harm_g = a._f0_with_prior(new, prior_at(69.0))
    assert abs(pitch(f0_g) - 57.0) < 0.25 and harm_g > 0.9
