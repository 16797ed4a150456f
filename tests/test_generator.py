"""The torch generator: same audio as the numpy decoder, differentiable, batched, CPU/CUDA."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sparsecodec.format import events
from sparsecodec.synth import render_np
from sparsecodec.synth import render_torch as generator

torch = pytest.importorskip("torch")

SR = 22050
TWIN_TOL = 1e-4
"""Max abs difference numpy vs torch (full scale 1): the numpy kernel table (nearest of 8192 fractions) and
float32 accumulation differ from torch's closed form in float64; measured ≈ 2e-5 on prior events."""


def prior(n: int, seed: int, span: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return events.sample_prior(rng, n), np.sort(rng.uniform(0, span, n))


@pytest.mark.parametrize(("channels", "room", "start"), [(1, None, 0.0), (2, [0.6, 0.5], 0.4)])
def test_twin_matches_numpy(channels: int, room: list[float] | None, start: float) -> None:
    v, t = prior(16, 1, 1.5)
    side = {"room": room} if room else None
    a = render_np.render(v, t, SR * 2, SR, side=side, channels=channels, start_s=start)
    b = generator.render(torch.tensor(v), t, SR * 2, SR, side=side, channels=channels, start_s=start)
    assert b.shape == (channels, SR * 2) and b.dtype == torch.float64
    assert np.abs(a).max() > 0.05
    assert np.abs(a - b.numpy()).max() < TWIN_TOL


def test_batched_equals_single() -> None:
    v1, t1 = prior(6, 2, 0.5)
    v2, t2 = prior(6, 3, 0.5)
    vb = torch.tensor(np.stack([v1, v2]), dtype=torch.float32)
    out = generator.render(vb, np.stack([t1, t2]), SR // 2, SR)
    assert out.shape == (2, 1, SR // 2) and out.dtype == torch.float32
    for i, (v, t) in enumerate([(v1, t1), (v2, t2)]):
        single = generator.render(torch.tensor(v, dtype=torch.float32), t, SR // 2, SR)
        torch.testing.assert_close(out[i], single, atol=1e-6, rtol=0)


def test_gradients_are_finite_and_flow() -> None:
    v, t = prior(5, 4, 0.3)
    x = torch.tensor(v, requires_grad=True)
    audio = generator.render(x, t, SR // 2, SR, channels=2, side={"room": [0.4, 0.5]})
    audio.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name in ("level", "pitch", "tilt", "noise_centre", "attack", "pan"):
        assert x.grad[:, events.INDEX[name]].abs().sum() > 0, name


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Small tensors: one thread avoids oversubscribing the 2-core CI machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def mrstft_logmag(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Multi-resolution log-magnitude STFT L1 distance."""
    loss = x.new_zeros(())
    for n in (64, 128, 256, 512):
        win = torch.hann_window(n, dtype=x.dtype)
        sx = torch.stft(x, n, n // 4, window=win, return_complex=True).abs()
        sy = torch.stft(y, n, n // 4, window=win, return_complex=True).abs()
        loss = loss + (torch.log(sx + 1e-3) - torch.log(sy + 1e-3)).abs().mean()
    return loss


@pytest.mark.parametrize("offset", [2.0, -3.0])
def test_adam_recovers_pitch(offset: float) -> None:
    """Adam on the whole unit vector of one (nearly pure) tone; the phase is detached (the default)."""
    target = events.defaults(1)
    for name, value in {
        "pitch": 57.0,
        "level": -12.0,
        "tilt": -40.0,
        "duration": 1.0,
        "t60_low": 3.0,
    }.items():
        target[0, events.INDEX[name]] = value
    n = SR // 2
    ref = generator.render(torch.tensor(target), [0.05], n, SR)[0].detach()
    start = target.copy()
    start[0, events.INDEX["pitch"]] = 57.0 + offset
    u = torch.tensor(events.to_unit(start), requires_grad=True)
    opt = torch.optim.Adam([u], lr=5e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 100, eta_min=1e-4)
    for _ in range(100):
        opt.zero_grad()
        audio = generator.render(events.from_unit(u.clamp(0, 1)), [0.05], n, SR)[0]
        loss = mrstft_logmag(audio, ref)
        loss.backward()
        opt.step()
        sched.step()
    got = float(events.from_unit(u.detach().clamp(0, 1))[0, events.INDEX["pitch"]])
    assert abs(got - 57.0) * 100 < 25, got


@pytest.mark.cuda
def test_cuda_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    v, t = prior(16, 6, 1.0)
    x = torch.tensor(v, dtype=torch.float32)
    cpu = generator.render(x, t, SR, SR, channels=2, side={"room": [0.5, 0.5]})
    gpu = generator.render(x.cuda(), t, SR, SR, channels=2, side={"room": [0.5, 0.5]})
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=0)


def test_stream_renderer_matches_the_numpy_decoder() -> None:
    """The torch streaming decoder (what `spev decode --device cuda` runs; here on the CPU device): chunks
    with and without a room, a seek with pre-roll, stereo — the numpy decoder's samples within 1e-4."""
    sr = 8000
    v, t = prior(24, 41, 6.0)
    v[:, events.INDEX["wet"]] = 0.4
    rooms: list[dict[str, object] | None] = [None, {"room": [0.6, 0.4]}]
    edges = [0.0, 1.5, 3.0, 4.5, 6.0]
    for start in (0, 2 * sr):
        n_total = 8 * sr
        ref = render_np.StreamRenderer(sr, 2, n_total, start_sample=start)
        gen = generator.StreamRenderer(sr, 2, n_total, start_sample=start, device="cpu")
        a: list[np.ndarray] = []
        b: list[np.ndarray] = []
        for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
            sel = (t >= lo) & (t < hi)
            side = rooms[i % 2]
            a.append(ref.push(v[sel], t[sel], side, safe_until_s=hi))
            b.append(gen.push(v[sel], t[sel], side, safe_until_s=hi))
        a.append(ref.finish())
        b.append(gen.finish())
        x, y = np.concatenate(a, axis=1), np.concatenate(b, axis=1)
        assert x.shape == y.shape == (2, n_total - start)
        assert np.abs(x).max() > 0.01
        np.testing.assert_allclose(y, x, atol=1e-4)


@pytest.mark.cuda
def test_cuda_decode_matches_cpu(tmp_path: Path) -> None:
    """`spev decode --device cuda` renders on the GPU (generator.StreamRenderer) and gives the CPU's audio."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    import soundfile as sf
    from conftest import make_spev

    from sparsecodec import api as codec

    src = make_spev(tmp_path / "f.spev", seconds=6.0, rate=22050, channels=2)
    codec.decode_file(src, tmp_path / "cpu.wav", bits="32f")
    codec.decode_file(src, tmp_path / "gpu.wav", bits="32f", device="cuda")
    cpu, _ = sf.read(tmp_path / "cpu.wav")
    gpu, _ = sf.read(tmp_path / "gpu.wav")
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)
