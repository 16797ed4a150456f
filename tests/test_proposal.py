"""Proposal network: features, weights loading (offline, validated), proposals on synthetic mixtures."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsecodec.encoder import proposal
from sparsecodec.errors import SpevError
from sparsecodec.format import events


def test_features_shape_and_pitch_axis() -> None:
    sr = 44100
    t = np.arange(sr * 2) / sr
    x = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    f = proposal.features(x, sr)
    n22 = 2 * 22050
    assert f.shape == (proposal.N_BANDS, -(-n22 // proposal.HOP))
    mid = f[:, f.shape[1] // 2]
    assert int(np.argmax(mid)) == (69 - 24) * proposal.BANDS_PER_SEMITONE  # A4 lands on its band
    # 0.5 amplitude sine ≈ -6 dB → (−6 + 50) / 25 ≈ 1.76; silence sits at the floor
    assert 1.6 < mid.max() < 1.9
    assert proposal.features(np.zeros(22050, np.float32), 22050).max() == pytest.approx(-2.0)


def test_band_matrix_partition_of_unity() -> None:
    m = proposal.band_matrix()
    # where half a semitone spans at least one bin (≳ 372 Hz) every bin is covered exactly once
    freqs = np.arange(m.shape[1]) * proposal.ANALYSIS_RATE / proposal.N_FFT
    inside = (freqs > 400.0) & (freqs < 10000.0)
    assert np.allclose(m[:, inside].sum(axis=0), 1.0, atol=1e-5)
    # below, low bands interpolate between bins: each band's weights still sum to one
    low = proposal.events.pitch_to_hz(proposal.BAND_LO_MIDI + np.arange(proposal.N_BANDS) / 2) < 300.0
    assert np.allclose(m[low].sum(axis=1), 1.0, atol=1e-5)


def _random_net(tmp_path: Path) -> tuple[Path, proposal.ProposalModel]:
    torch.manual_seed(0)
    model = proposal.ProposalModel()
    path = tmp_path / "p.safetensors"
    proposal.save_weights(model, path, half=False)
    return path, model


def test_save_load_roundtrip_and_shapes(tmp_path: Path) -> None:
    path, model = _random_net(tmp_path)
    net = proposal.ProposalNet.from_file(path)
    x = torch.randn(1, proposal.N_BANDS, 40)
    with torch.no_grad():
        a = model.eval()(x)
        b = net.model(x)
    for u, v in zip(a, b, strict=True):
        assert torch.allclose(u, v)
    assert len(net.weights_hash) == 64
    rng = np.random.default_rng(0)
    res = (0.1 * rng.standard_normal(22050 * 3)).astype(np.float32)
    vec, times, scores = net.propose(res, 22050, 7)
    assert vec.shape[1] == 32 and vec.shape[0] == times.shape[0] == scores.shape[0] <= 7
    assert vec.dtype == times.dtype == scores.dtype == np.float64


def test_bad_weights_are_refused(tmp_path: Path) -> None:
    path, _ = _random_net(tmp_path)
    data = path.read_bytes()
    with pytest.raises(proposal.WeightsError):
        proposal.ProposalNet.from_bytes(data[:100])
    with pytest.raises(proposal.WeightsError):
        proposal.ProposalNet.from_bytes(b"\x00" * 8)
    # a model of another shape under the same metadata
    from safetensors.torch import save_file

    other = proposal.ProposalModel(proposal.ModelConfig(hidden=64))
    meta = proposal._config_metadata(proposal.ModelConfig())  # claims the default architecture
    bad = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(bad), metadata=meta)
    with pytest.raises(proposal.WeightsError, match="architecture"):
        proposal.ProposalNet.from_file(bad)
    meta2 = dict(meta, hop="512")
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(bad), metadata=meta2)
    with pytest.raises(proposal.WeightsError, match="hop"):
        proposal.ProposalNet.from_file(bad)
    meta3 = dict(meta, config=json.dumps({"c2d": [8, 12, 16], "hidden": 10**6, "dilations": [1]}))
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(bad), metadata=meta3)
    with pytest.raises(SpevError):
        proposal.ProposalNet.from_file(bad)


def test_load_default_missing_returns_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(proposal, "default_weights_path", lambda: tmp_path / "absent.safetensors")
    assert proposal.load_default() is None


needs_weights = pytest.mark.skipif(
    not proposal.default_weights_path().is_file(), reason="no shipped weights in this checkout"
)


@pytest.fixture(scope="module")
def shipped(request: pytest.FixtureRequest) -> proposal.ProposalNet:
    mp = pytest.MonkeyPatch()

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access while loading weights")

    mp.setattr(socket, "socket", no_network)  # loading must be offline
    try:
        net = proposal.load_default()
    finally:
        mp.undo()
    assert net is not None
    return net


@needs_weights
def test_shipped_weights_shapes(shipped: proposal.ProposalNet) -> None:
    assert shipped.weights_hash == hashlib.sha256(proposal.default_weights_path().read_bytes()).hexdigest()
    assert proposal.load_default() is shipped  # loaded once per process: one read, one hash
    sr = 44100
    n = 1 << 18  # the encoder's window at 44.1 kHz
    rng = np.random.default_rng(1)
    res = (0.05 * rng.standard_normal(n)).astype(np.float32)
    vec, times, scores = shipped.propose(res, sr, 16)
    assert vec.shape == (times.size, 32) and scores.shape == times.shape and times.size <= 16
    assert np.all(times < n / sr / 2) and np.all(times >= 0)
    assert np.all(np.diff(scores) <= 0)
    assert np.all(vec >= events.LO) and np.all(vec <= events.HI)


def _mixture(seed: int, n_events: int, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A few pitched prior events in the first half of a 2**18-sample window, rendered at ``sr``."""
    from sparsecodec.synth.render_np import render

    rng = np.random.default_rng(seed)
    v = events.sample_prior(rng, n_events)
    v[:, events.INDEX["noise_mix"]] = rng.uniform(0.0, 0.2, n_events)
    v[:, events.INDEX["level"]] = rng.uniform(-20.0, -8.0, n_events)
    v[:, events.INDEX["wet"]] = 0.0
    n = 1 << 18
    times = np.sort(rng.uniform(0.1, n / sr / 2 - 0.1, n_events))
    audio = render(v, times, n, sr)[0]
    return audio, times, v


@needs_weights
def test_shipped_weights_find_onsets_and_pitches(shipped: proposal.ProposalNet) -> None:
    sr = 44100
    hits = total = 0
    for seed in range(4):
        audio, times, v = _mixture(seed, 5, sr)
        pv, pt, _ = shipped.propose(audio, sr, 20)
        for t, p in zip(times, v[:, events.INDEX["pitch"]], strict=True):
            total += 1
            ok = (np.abs(pt - t) <= 0.020) & (np.abs(pv[:, events.INDEX["pitch"]] - p) <= 1.0)
            hits += bool(ok.any())
    # shipped weights (sha256 2c49ef21…): 16/20 here; 87/100 over 20 seeds (runs/eval_proposals.py)
    assert hits / total >= 0.6, f"{hits}/{total} onsets+pitches found"


@pytest.mark.parametrize("midi", [45.0, 61.3, 80.0])
def test_onset_harmonic_summation_finds_a_new_note(midi: float) -> None:
    sr = 22050
    t = np.arange(sr * 2) / sr
    old = 0.2 * np.sin(2 * np.pi * events.pitch_to_hz(52.0) * t)  # a note already sounding
    f0 = events.pitch_to_hz(midi)
    new = sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 9)) * (t >= 1.0)
    feats = proposal.features((old + new).astype(np.float32), sr)
    power = 10.0 ** ((feats.astype(np.float64) * 25.0 - 50.0) / 10.0)
    frame = round(1.0 * sr / proposal.HOP)
    flat = np.full(proposal.N_PITCH, 0.5)
    found = proposal._onset_pitches(power, frame, flat, 3)
    assert found and abs(found[0][0] - midi) <= 0.5 and found[0][1] == 1.0
