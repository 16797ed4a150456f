"""Voice knots in the codec (layout 2, #18): the container, the decoders (streams, seeks, CUDA's interface on
the CPU), the encoder's choice between knots and events, edits and exports, measured on decoded audio."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from sparsecodec import api
from sparsecodec.cli import cli
from sparsecodec.errors import FormatError
from sparsecodec.format import container as C
from sparsecodec.format import events, quantize
from sparsecodec.synth import render_np
from sparsecodec.synth import voice as sv
from tests.test_voice import FEMALE, MALE, f0_frames, measure_formants, vowel

SR = 16000
TABLE = quantize.TABLES["layout2"]


def utterance(who: tuple[float, tuple[float, ...]], seconds: float = 7.0, seed: int = 0) -> np.ndarray:
    """Speech-like test audio at 16 kHz: syllables (a fricative burst, then a vowel whose f0 falls by 4
    semitones through ``who``'s formants), pauses between words.  Deterministic."""
    rng = np.random.default_rng(seed)
    f0, formants = who
    parts: list[np.ndarray] = []
    while sum(len(p) for p in parts) < seconds * SR:
        for _ in range(int(rng.integers(2, 4))):  # a word
            parts.append(0.004 * rng.standard_normal(int(0.06 * SR)))  # fricative
            n = int(rng.uniform(0.18, 0.3) * SR)
            start = f0 * 2.0 ** (rng.uniform(-2.0, 2.0) / 12.0)
            v = vowel((start, start * 2.0 ** (-4.0 / 12.0)), formants, n / SR)  # falls 4 semitones
            parts.append(v[:n] / 0.3 * 0.25 * np.hanning(len(v[:n])) ** 0.25)
        parts.append(np.zeros(int(rng.uniform(0.15, 0.3) * SR)))  # pause
    return np.concatenate(parts)[: int(seconds * SR)].astype(np.float32)


def f0_shift(ref: np.ndarray, moved: np.ndarray) -> float:
    """Median f0 change (semitones) over the frames where the reference is loud and periodic."""
    f_r, p_r = f0_frames(ref)
    f_m, _ = f0_frames(moved)
    loud = p_r > p_r.max() - 20.0
    return float(np.median(12.0 * np.log2(f_m[loud] / f_r[loud])))


def voice_track(seconds: float = 2.0, rate: int = 44100) -> sv.VoiceFrames:
    """A synthetic track: knots every 25 ms with a gliding f0, one pause, a varying envelope."""
    t = np.arange(0, seconds, 0.025)
    level = np.where((t > 0.8) & (t < 1.1), -120.0, -20.0)
    ceps = 0.5 * np.sin(np.outer(t, np.arange(1, sv.N_CEPS + 1)))
    voicing = np.clip(np.stack([np.cos(3 * t + b) for b in range(4)], 1), 0.0, 1.0)
    return sv.VoiceFrames(
        np.rint(t * rate).astype(np.int64),
        120.0 * 2.0 ** (np.sin(2 * t) / 6),
        level,
        ceps,
        voicing,
        np.sin(t),
    )


def mixed(rate: int = 44100) -> tuple[np.ndarray, np.ndarray]:
    """Voice knots and notes (times in s, sorted): what a file of speech over music holds."""
    track = voice_track(rate=rate)
    notes = events.sample_prior(np.random.default_rng(3), 12)
    v = np.vstack([sv.to_vectors(track), notes])
    t = np.concatenate([track.t / rate, np.random.default_rng(4).uniform(0.0, 2.0, 12)])
    order = np.argsort(t, kind="stable")
    return v[order], t[order]


def test_voice_knots_survive_the_container_in_both_formats() -> None:
    v, t = mixed()
    codes = quantize.quantize(v, TABLE)
    assert (codes[:, events.KIND_DIM] == events.is_voice(v)).all()
    ticks = np.rint(t * 44100).astype(np.int64)
    header = C.Header(2, "test", "0" * 16, 44100, 2, 2 * 44100, 44100, 44100, table=TABLE)
    for version in (1, 2):
        out = io.BytesIO()
        cut = [(ticks >= i * 44100) & (ticks < (i + 1) * 44100) for i in range(2)]
        chunks = [C.Chunk(i, i * 44100, 44100, ticks[cut[i]], codes[cut[i]]) for i in range(2)]
        C.write_file(out, header, chunks, format_version=version)
        back = np.concatenate([c.codes for c in C.Reader(io.BytesIO(out.getvalue()))])
        assert back.tobytes() == codes.tobytes()
    again = quantize.dequantize(codes, TABLE)
    assert np.array_equal(quantize.quantize(again, TABLE), codes)
    voice = events.is_voice(again)
    assert np.allclose(again[voice, 1], v[voice, 1], atol=0.25)  # pitch: half-semitone steps


def test_an_unknown_kind_is_a_format_error() -> None:
    codes = quantize.quantize(mixed()[0][:3], TABLE)
    codes[1, events.KIND_DIM] = 2
    with pytest.raises(FormatError, match="event kind 2"):
        quantize.dequantize(codes, TABLE)


def test_the_container_refuses_an_unknown_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kinds 2 and 3 are reserved: the writer will not write them, a reader (and so ``spev test``) refuses
    them, a tolerant reader skips the chunk."""
    v, t = mixed()
    codes = quantize.quantize(v, TABLE)
    codes[2, events.KIND_DIM] = 3
    header = C.Header(2, "test", "0" * 16, 44100, 2, 2 * 44100, 44100, 2 * 44100, table=TABLE)
    chunk = C.Chunk(0, 0, 2 * 44100, np.rint(t * 44100).astype(np.int64), codes)
    with pytest.raises(FormatError, match="event kind 3"):
        C.write_file(io.BytesIO(), header, [chunk])
    with monkeypatch.context() as m:
        m.setattr(C, "check_kinds", lambda header, chunk: None)
        out = io.BytesIO()
        C.write_file(out, header, [chunk])
    with pytest.raises(FormatError, match="event kind 3"):
        C.Reader(io.BytesIO(out.getvalue())).verify()
    assert list(C.Reader(io.BytesIO(out.getvalue())).iter_tolerant()) == []


def test_the_voice_renders_the_same_in_any_span_and_stream() -> None:
    """Each sample is a function of the knots alone: split renders, chunked pushes and a seek agree."""
    rate, n = 44100, 2 * 44100 + 500
    track = voice_track(rate=rate)
    whole = sv.render_span(track, rate, 0, n, 2)
    cut = 37_123
    parts = np.concatenate(
        [sv.render_span(track, rate, 0, cut, 2), sv.render_span(track, rate, cut, n, 2)], 1
    )
    assert np.array_equal(whole, parts)
    assert np.abs(whole).max() > 0.01
    v, t = mixed(rate)
    full = render_np.render(v, t, n, rate, channels=2)
    stream = render_np.StreamRenderer(rate, 2, n)
    blocks = [
        stream.push(v[i : i + 7], t[i : i + 7], None, t[i + 7] if i + 7 < len(t) else np.inf)
        for i in range(0, len(t), 7)
    ]
    blocks.append(stream.finish())
    assert np.abs(np.concatenate(blocks, 1) - full).max() < 1e-6
    seek = render_np.StreamRenderer(rate, 2, n, start_sample=50_001)
    got = np.concatenate([seek.push(v, t, None, np.inf), seek.finish()], 1)
    assert np.abs(got - full[:, 50_001:]).max() < 1e-6


def test_the_torch_stream_renders_voice_as_numpy_does() -> None:
    from sparsecodec.synth import render_torch

    rate, n = 22050, 2 * 22050
    v, t = mixed(rate)
    full = render_np.render(v, t, n, rate, channels=1)
    stream = render_torch.StreamRenderer(rate, 1, n, device="cpu")
    got = np.concatenate([stream.push(v, t, None, np.inf), stream.finish()], 1)
    assert got.shape == full.shape and np.abs(got - full).max() < 1e-4


@pytest.fixture(scope="module")
def speech_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic male and female utterances, encoded with the defaults."""
    root = tmp_path_factory.mktemp("speech")
    out = {}
    for name, who in (("male", MALE), ("female", FEMALE)):
        wav = root / f"{name}.wav"
        sf.write(wav, utterance(who), SR)
        api.encode_file(wav, root / f"{name}.spev")
        out[name] = root / f"{name}.spev"
    return out


def _codes(path: Path) -> np.ndarray:
    return np.concatenate([c.codes for c in C.Reader(path.open("rb"))])


def _decode(path: Path) -> np.ndarray:
    buf = io.BytesIO()
    api.decode_file(path, buf, bits="32f", fmt="wav")
    buf.seek(0)
    return sf.read(buf, dtype="float32")[0].astype(np.float64)


def test_the_encoder_codes_speech_as_voice_knots(speech_files: dict[str, Path]) -> None:
    for name, who in (("male", MALE), ("female", FEMALE)):
        codes = _codes(speech_files[name])
        assert np.mean(codes[:, events.KIND_DIM] == events.KIND_VOICE) > 0.9, name
        x, y = utterance(who).astype(np.float64), _decode(speech_files[name])
        assert abs(10.0 * np.log10(np.mean(y**2) / np.mean(x**2))) < 2.0  # the level
        assert C.Reader(speech_files[name].open("rb")).header.layout_version == 2


def test_the_encoder_keeps_a_melody_as_notes(tmp_path: Path) -> None:
    """Held harmonic notes (steps, no glide, no pauses) stay notes."""
    rate = 22050
    t = np.arange(int(4.0 * rate)) / rate
    pitch = 57 + np.array([0, 4, 7, 12, 7, 4, 0, 5])[(t // 0.5).astype(int)]
    phase = 2 * np.pi * np.cumsum(440.0 * 2 ** ((pitch - 69) / 12)) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.2
    sf.write(tmp_path / "m.wav", x.astype(np.float32), rate)
    api.encode_file(tmp_path / "m.wav", tmp_path / "m.spev")
    assert not np.any(_codes(tmp_path / "m.spev")[:, events.KIND_DIM] == events.KIND_VOICE)


@pytest.mark.parametrize("shift", [-5.0, 5.0])
@pytest.mark.parametrize("who", ["male", "female"])
def test_edit_transpose_moves_a_voice_and_keeps_its_formants(
    speech_files: dict[str, Path], tmp_path: Path, who: str, shift: float
) -> None:
    """#18's bar on the codec: ``spev edit --transpose`` moves the decoded f0 within ±0.2 semitone and F1/F2
    by less than 60/120 Hz (median over voiced frames)."""
    out = tmp_path / "t.spev"
    result = CliRunner().invoke(cli, ["edit", str(speech_files[who]), str(out), "--transpose", str(shift)])
    assert result.exit_code == 0, result.output
    ref, moved = _decode(speech_files[who]), _decode(out)
    assert abs(f0_shift(ref, moved) - shift) < 0.2
    (f1r, f2r), (f1m, f2m) = measure_formants(ref), measure_formants(moved)
    assert abs(f1m - f1r) < 60.0 and abs(f2m - f2r) < 120.0, ((f1r, f2r), (f1m, f2m))


def test_edit_formant_shift_moves_the_formants_and_keeps_f0(
    speech_files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "f.spev"
    result = CliRunner().invoke(cli, ["edit", str(speech_files["male"]), str(out), "--formant-shift", "1.15"])
    assert result.exit_code == 0, result.output
    ref, up = _decode(speech_files["male"]), _decode(out)
    assert abs(f0_shift(ref, up)) < 0.2
    (f1r, f2r), (f1u, f2u) = measure_formants(ref), measure_formants(up)
    assert 1.07 < f1u / f1r < 1.23 and 1.07 < f2u / f2r < 1.23, ((f1r, f2r), (f1u, f2u))


def test_edit_selects_by_kind_and_keeps_voice_out_of_note_edits(tmp_path: Path) -> None:
    from sparsecodec.tools import edit

    v, t = mixed()
    ev = edit.Events(v, t, 2.0)
    voice = events.is_voice(v)
    assert len(edit.keep(ev, edit.parse_selection("kind=1:2"))) == voice.sum()
    assert len(edit.drop(ev, edit.parse_selection("kind=1:"))) == (~voice).sum()
    moved = edit.apply_ops(
        ev, [edit.Op("transpose", "3"), edit.Op("perturb", "0.1"), edit.Op("stretch", "2")]
    )
    assert np.allclose(moved.vectors[voice][:, 2:28], v[voice][:, 2:28])  # voicing and envelope untouched
    assert np.allclose(moved.vectors[voice][:, 1], np.minimum(v[voice][:, 1] + 3, 87.5))


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_writes_the_voice_and_imports_back_losslessly(
    speech_files: dict[str, Path], tmp_path: Path, fmt: str
) -> None:
    runner = CliRunner()
    out, back = tmp_path / f"e.{fmt}", tmp_path / "back.spev"
    assert (
        runner.invoke(cli, ["export", str(speech_files["male"]), "--format", fmt, "-o", str(out)]).exit_code
        == 0
    )
    args = ["import", str(out), str(back)] + (["--rate", str(SR)] if fmt == "csv" else [])
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert _codes(back).tobytes() == _codes(speech_files["male"]).tobytes()
    if fmt == "json":
        recs = [r for r in json.loads(out.read_text())["events"] if r.get("kind") == "voice"]
        voiced = [r for r in recs if r["params"]["voicing1"] > 0.5 and r["level_db"] > -60]
        # the male vowel's F1 is 700 Hz: one of the first two peaks (a glottal bump can come first)
        near = [min((f for f in r["formants_hz"][:2] if f), key=lambda f: abs(f - 700.0)) for r in voiced]
        assert 600.0 < np.median(near) < 800.0
        assert all(r["f0_end_hz"] > 0 and r["end"] >= r["time"] for r in recs)


def test_voice_hops_are_the_same_for_any_worker_count_and_block_size() -> None:
    """The voice analysis sees the same audio whatever the segments and blocks: same knots."""
    from sparsecodec.encoder import stream
    from sparsecodec.jobs import encode as jobs_encode

    x = utterance(MALE, seconds=5.3 * stream.hop_samples(SR) / SR)[None]
    settings = stream.EncoderSettings(segment_hops=2)

    def run(workers: int, size: int) -> list[stream.EncodedChunk]:
        blocks = [x[:, i : i + size] for i in range(0, x.shape[1], size)]
        return list(jobs_encode.encode_segmented(blocks, SR, 1, settings, workers=workers))

    ref = run(1, 10**9)
    assert sum(bool(events.is_voice(c.vectors).any()) for c in ref) >= 4
    for workers, size in ((2, 10**9), (1, 7001)):
        got = run(workers, size)
        assert [(c.start, c.length) for c in got] == [(c.start, c.length) for c in ref]
        for a, b in zip(ref, got, strict=True):
            np.testing.assert_array_equal(a.times, b.times)
            np.testing.assert_allclose(a.vectors, b.vectors, rtol=1e-6, atol=1e-6)  # float32 rounding


def test_a_reader_of_layout_1_refuses_a_voice_file_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a layout-1 reader (spev before layout 2) does with a layout-2 file: one line, a format error."""
    from sparsecodec import errors

    golden = Path(__file__).resolve().parent.parent / "formats" / "golden" / "voice_mix.spev"
    monkeypatch.setattr(C, "SUPPORTED_LAYOUTS", frozenset({1}))
    with pytest.raises(errors.UnsupportedLayoutError, match="event layout 2 is not supported"):
        C.Reader(golden.open("rb"))
    result = CliRunner().invoke(cli, ["decode", str(golden), "-"])
    assert result.exit_code == errors.UnsupportedLayoutError.exit_code
    assert "event layout 2 is not supported" in result.output


def test_any_voice_codes_render_finite_and_bounded() -> None:
    """Hostile files: every code a voice knot can hold renders to finite audio at most its level allows."""
    rng = np.random.default_rng(7)
    widths = quantize.column_widths(TABLE)
    n = 400
    codes = (rng.integers(0, 1 << 16, (n, 32)) % (1 << widths)).astype(np.uint16)
    codes[:, events.KIND_DIM] = events.KIND_VOICE
    codes[::3, 1] = rng.choice([0, 127], len(codes[::3]))  # lowest and highest pitch
    v = quantize.dequantize(codes, TABLE)
    t = np.sort(rng.integers(0, 3 * 22050, n))
    for rate in (8000, 22050, 48000):
        y = sv.render_span(sv.from_vectors(v, t * rate // 22050), rate, 0, 3 * rate, 2)
        assert np.isfinite(y).all()
        assert float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) < 10.0  # +6 dBFS knots, a few at once


def test_stems_put_the_voice_in_one_stem(speech_files: dict[str, Path], tmp_path: Path) -> None:
    from sparsecodec.tools import stems

    out = stems.decode_stems(speech_files["male"], tmp_path / "k", group="kind", bits="32f")
    assert [p.name for p in out] == ["voice.wav", "pitched.wav", "noise.wav"]
    total = sum(sf.read(p, dtype="float64")[0] for p in out)
    assert np.abs(total - _decode(speech_files["male"])).max() < 1e-4  # they add up to the decode
    listed = stems.decode_stems(speech_files["male"], tmp_path / "e", group="event")
    assert listed[0].name == "voice.wav" and listed[-1].name == "stems.json"
