"""Training data and command: labels, reproducibility, a few steps, resume (CI never trains for real)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsecodec.encoder import proposal
from sparsecodec.format import events
from training import datagen, train


def test_synth_example_is_reproducible_and_labelled() -> None:
    a = datagen.synth_example(np.random.default_rng([3, 0, 0]))
    b = datagen.synth_example(np.random.default_rng([3, 0, 0]))
    assert np.array_equal(a.audio, b.audio) and np.array_equal(a.times, b.times)
    assert a.audio.shape == (datagen.WINDOW_SAMPLES,) and a.audio.dtype == np.float32
    assert np.abs(a.audio).max() > 1e-3
    assert np.all((a.times >= 0) & (a.times < datagen.WINDOW_S)) and np.all(np.diff(a.times) >= 0)
    assert a.vectors.shape == a.mask.shape == (a.times.size, 32)
    for name in datagen.UNLABELLED:
        assert not a.mask[:, events.INDEX[name]].any()
    assert a.mask[:, events.INDEX["level"]].all()


@pytest.mark.skipif(not datagen.SOUNDFONT.is_file(), reason="fluid-soundfont-gm not installed")
def test_fluid_examples_use_only_fluidr3_and_label_pitch() -> None:
    assert datagen.SOUNDFONT.name == "FluidR3_GM.sf2"
    exs = datagen.fluid_examples(np.random.default_rng(5), 2)
    assert len(exs) == 2
    for e in exs:
        assert e.audio.shape == (datagen.WINDOW_SAMPLES,) and np.abs(e.audio).max() > 1e-3
        pi = events.INDEX["pitch"]
        pitched = e.mask[:, pi] > 0
        assert pitched.any()
        p = e.vectors[pitched, pi]
        assert np.all(p == np.round(p)) and np.all((p >= 24) & (p <= 108))
        assert not e.mask[:, events.INDEX["level"]].any()  # velocity → dBFS is unknown: not supervised


def test_targets_mark_onset_pitch_and_vector() -> None:
    t_s = np.array([1.0, 1.5])
    vec = events.defaults(2)
    vec[:, events.INDEX["pitch"]] = [60.0, 72.0]
    vec[:, events.INDEX["level"]] = [-30.0, -10.0]
    vec[:, events.INDEX["noise_mix"]] = 0.0
    units = events.to_unit(vec).astype(np.float32)
    masks = np.ones((2, 32), np.float32)
    start = 50
    tg = train.targets(t_s.astype(np.float32), units, masks, start, 128)
    f0 = round(1.0 * train.FPS) - start
    assert tg["onset"].argmax() == f0 and tg["onset"][f0] > 0.5
    assert tg["near"][f0 - 1 : f0 + 2].all() and tg["near"].sum() == 6
    assert int(tg["pitch"][:, f0].argmax()) == round(proposal.pitch_bin(np.array(60.0)))
    f1 = round(1.5 * train.FPS) - start
    assert int(tg["pitch"][:, f1].argmax()) == round(proposal.pitch_bin(np.array(72.0)))
    assert np.allclose(tg["unit"][:, f1], units[1]) and tg["mask"][:, f1].all()
    assert not tg["mask"][:, f0 + 5].any()
    # gain augmentation moves the level label by the same number of dB
    tg6 = train.targets(t_s.astype(np.float32), units, masks, start, 128, gain_db=6.0)
    lv = events.INDEX["level"]
    assert tg6["unit"][lv, f1] - tg["unit"][lv, f1] == pytest.approx(6.0 / 96.0, abs=1e-6)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    datagen.build(root, 7, 2, 2, shard_examples=2)
    datagen.build(root, 7 + 10_000, 1, 1, shard_examples=1)
    return root


def test_shards_round_trip_and_are_checked(tiny_data: Path, tmp_path: Path) -> None:
    paths = datagen.build(tiny_data, 7, 2, 2, shard_examples=2)  # cached: nothing rebuilt
    d = datagen.load_shard(paths[0])
    assert d["feats"].shape == (2, proposal.N_BANDS, datagen.WINDOW_SAMPLES // proposal.HOP)
    assert d["feats"].dtype == np.float16
    bad = dict(d, ev_unit=d["ev_unit"][:, :5])
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(datagen.DataError):
        datagen.load_shard(tmp_path / "bad.npz")


def test_loss_decreases_on_a_fixed_batch(tiny_data: Path) -> None:
    torch.manual_seed(0)
    data = train.Data.load(datagen.build(tiny_data, 7, 2, 2, shard_examples=2))
    batch = train.make_batch(data, np.random.default_rng(0), 4, 64)
    model = proposal.ProposalModel(proposal.ModelConfig(c2d=(4, 4, 4), hidden=32, dilations=(1, 2)))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        ls = train.losses(model, batch)
        opt.zero_grad()
        ls["total"].backward()
        opt.step()
        first = float(ls["total"].detach()) if first is None else first
    assert float(train.losses(model, batch)["total"].detach()) < 0.8 * first


def _args(tiny_data: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--out", str(tmp_path / "w.safetensors"), "--seed", "7", "--steps", "4", "--n-synth", "2",
        "--n-fluid", "2", "--n-eval", "1", "--batch", "2", "--crop", "32", "--data-dir", str(tiny_data),
        "--log-dir", str(tmp_path / "runs"), "--log-every", "1", "--ckpt-every", "100", "--eval-every", "0",
        "--eval-examples", "1", "--checkpoint", str(tmp_path / "ck"), "--quiet", *extra,
    ]  # fmt: skip


def test_resume_gives_the_same_weights(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(train.datagen, "build", _build_small)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    train.main(_args(tiny_data, a))
    train.main(_args(tiny_data, b, "--stop-after", "2"))
    assert (b / "ck.json").is_file()
    train.main(_args(tiny_data, b, "--resume"))
    wa = proposal.ProposalNet.from_file(a / "w.safetensors").model.state_dict()
    wb = proposal.ProposalNet.from_file(b / "w.safetensors").model.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    recs = [json.loads(line) for line in (b / "runs" / "proposal-seed7.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if "total" in r] == [1, 2, 3, 4]  # the log continues across the resume
    assert recs[-1]["final"] and recs[-1]["step"] == 4 and len(recs[-1]["weights_hash"]) == 64


_real_build = datagen.build


def _build_small(out_dir: Path, seed: int, n_synth: int, n_fluid: int, **kw: object) -> list[Path]:
    return _real_build(out_dir, seed, n_synth, n_fluid, shard_examples=2 if seed == 7 else 1)
