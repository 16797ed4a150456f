"""The synthesis contract, kernel by kernel (sparsecodec/synth/kernels.py).

Twin tests: each shared kernel gives the same values on numpy arrays and torch tensors, at 8, 22.05, 44.1 and
48 kHz.  Closed-form tests: a sine's level, a T60's decay and a noise band's centre come out as the event
says, in both renderers.  Import test: the renderers define no window, smoother or overlap-add of their own.
"""

from __future__ import annotations

import ast
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from sparsecodec.format import events
from sparsecodec.synth import kernels as dsp
from sparsecodec.synth import render_np

torch = pytest.importorskip("torch")
from sparsecodec.synth import render_torch  # noqa: E402

RATES = [8000, 22050, 44100, 48000]
C = events.INDEX


def t64(a: Any) -> Any:
    """numpy → torch, float64 kept (the ``conv`` the kernels take)."""
    a = np.asarray(a)
    return torch.as_tensor(a, dtype=torch.float64) if a.dtype == np.float64 else torch.as_tensor(a)


def close(a: Any, b: Any, tol: float = 1e-9) -> None:
    """numpy ``a`` equals torch ``b`` within ``tol`` relative to the largest magnitude."""
    a = np.asarray(a)
    b = b.detach().numpy()
    assert a.shape == b.shape
    scale = max(float(np.abs(a).max(initial=0.0)), 1e-300)
    assert float(np.abs(a - b).max(initial=0.0)) <= tol * scale


def prior(n: int, seed: int, span: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Events of the prior (every other one without pitch modulation: numpy's pitch-track shortcut)."""
    rng = np.random.default_rng(seed)
    v = events.clip(events.sample_prior(rng, n))
    for name in dsp.MODULATION_DIMS:
        v[::2, C[name]] = 0.0
    return v, np.sort(rng.uniform(0.0, span, n))


# ------------------------------------------------------------------------------------------------ twins


@pytest.mark.parametrize("rate", RATES)
def test_frame_kernels_twin(rate: int) -> None:
    """hann_smooth and overlap_add: one definition, the same values on numpy and torch."""
    n = dsp.frame_size(rate)
    rng = np.random.default_rng(rate)
    spec = rng.standard_normal((2, 7, n // 2 + 1)) + 1j * rng.standard_normal((2, 7, n // 2 + 1))
    close(dsp.hann_smooth(spec), dsp.hann_smooth(torch.as_tensor(spec), torch), 1e-15)
    frames = rng.standard_normal((2, 7, n))
    close(dsp.overlap_add(frames), dsp.overlap_add(torch.as_tensor(frames), torch), 1e-15)
    x = torch.tensor(frames, requires_grad=True)
    dsp.overlap_add(x, torch).sum().backward()
    assert x.grad is not None and torch.all(x.grad == 2.0 / dsp.OVERLAP)


@pytest.mark.parametrize("rate", RATES)
def test_folded_smoothing_equals_hann_smooth(rate: int) -> None:
    """The decoder's fused form (a quarter folded into the scale, bins below 0 in pad columns) gives the
    same spectrum as hann_smooth once the caller folds bin 0."""
    n = dsp.frame_size(rate)
    nb, pad = n // 2 + 1, render_np.PAD
    rng = np.random.default_rng(rate + 1)
    noise = rng.standard_normal((5, nb)) + 1j * rng.standard_normal((5, nb))
    noise[:, 0] = noise[:, -1] = 0.0  # noise bins lie in 1 .. N/2-1
    quarter = np.zeros((5, nb + pad), dtype=complex)
    quarter[:, pad:] = 0.25 * noise
    spec = np.zeros_like(quarter)
    dsp.hann_smooth_folded_into(spec, quarter, pad)
    spec[:, pad] = 2.0 * spec[:, pad].real
    ref = dsp.hann_smooth(noise)
    np.testing.assert_allclose(spec[:, pad + 1 : -1], ref[:, 1:-1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(spec[:, [pad, -1]].real, ref[:, [0, -1]].real, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.fft.irfft(spec[:, pad:], n), np.fft.irfft(ref, n), rtol=0, atol=1e-12)


@pytest.mark.parametrize("lo_hi", [(1, 7), (3, 9), (20, 33), (40, 64)])
def test_hann_smooth_folded_into_a_band(lo_hi: tuple[int, int]) -> None:
    """Given the bins the noise holds, the smoothing touches only their neighbourhood, bit for bit."""
    lo, hi = lo_hi
    pad, nb = 3, 65
    rng = np.random.default_rng(1)
    quarter = np.zeros((4, nb + pad), dtype=np.complex64)
    quarter[:, pad + lo : pad + hi] = rng.standard_normal((4, hi - lo)) + 1j * rng.standard_normal(
        (4, hi - lo)
    )
    base = (rng.standard_normal((4, nb + pad)) + 1j * rng.standard_normal((4, nb + pad))).astype(np.complex64)
    whole, band = base.copy(), base.copy()
    dsp.hann_smooth_folded_into(whole, quarter, pad)
    dsp.hann_smooth_folded_into(band, quarter, pad, (lo, hi))
    np.testing.assert_array_equal(band, whole)


@pytest.mark.parametrize("rate", RATES)
def test_event_kernels_twin(rate: int) -> None:
    """The per-event controls, the synthesis kernel and the noise band on numpy and torch."""
    v, _ = prior(12, rate)
    vt = t64(v)
    ratios = dsp.partial_ratios(v, events.MAX_PARTIALS, np)
    ratios_t = dsp.partial_ratios(vt, events.MAX_PARTIALS, torch)
    close(ratios, ratios_t)
    close(dsp.partial_gains(v, ratios, np), dsp.partial_gains(vt, ratios_t, torch))
    close(dsp.partial_t60(v, ratios, np), dsp.partial_t60(vt, ratios_t, torch))
    for a, b in zip(dsp.mix_gains(v, np), dsp.mix_gains(vt, torch), strict=True):
        close(a, b)
    for a, b in zip(dsp.pan_gains(v, np), dsp.pan_gains(vt, torch), strict=True):
        close(a, b)
    close(dsp.noise_scale(v, rate, np), dsp.noise_scale(vt, rate, torch))
    close(dsp.noise_band_bins(v, rate, np, np.asarray), dsp.noise_band_bins(vt, rate, torch, t64))
    n = dsp.frame_size(rate)
    d = np.linspace(-3.0, 3.0, 97)
    close(dsp.synthesis_kernel(d, n, np), dsp.synthesis_kernel(t64(d), n, torch), 1e-12)
    # the numpy decoder's table holds the same kernel
    table = dsp.kernel_table(n)
    r = 1234
    np.testing.assert_allclose(
        table[:, r], dsp.synthesis_kernel(dsp.kernel_taps() - r / dsp.KERNEL_TABLE_RES, n, np), rtol=0, atol=0
    )
    tau = np.linspace(0.0, 3.0, 12)
    sup = events.support_s(v)
    close(dsp.body_envelope(v, tau, sup, np), dsp.body_envelope(vt, t64(tau), t64(sup), torch))
    close(dsp.noise_envelope(v, tau, sup, np), dsp.noise_envelope(vt, t64(tau), t64(sup), torch))


@pytest.mark.parametrize("rate", RATES)
def test_partial_and_noise_values_twin(rate: int) -> None:
    """Pitch track (numpy's shortcut for unmodulated events included), phase integral, partial amplitudes,
    phases and frequencies, and noise magnitudes: the same on numpy and torch."""
    v, t = prior(10, rate + 2)
    vt = t64(v)
    sup = events.support_s(v)
    hop = dsp.frame_size(rate) // dsp.OVERLAP
    m_lo, m_hi = int(0.2 * rate) // hop, int(2.0 * rate) // hop
    sel = dsp.select_partials(v, t, sup, rate, m_lo, m_hi)
    assert len(sel.e) > 100
    offsets = dsp.seed_offsets(dsp.event_seeds(t))
    jph = dsp.seeded_phases(offsets, len(dsp.JITTER_FREQS_HZ), dsp.JITTER_SALT)
    sph = dsp.seeded_phases(offsets, events.MAX_PARTIALS, dsp.PHASE_SALT)
    f0 = events.pitch_to_hz(v[:, C["pitch"]])
    track = dsp.pitch_track(v, f0, jph, sel.plan, np, np.asarray)
    track_t = dsp.pitch_track(vt, t64(f0), t64(jph), sel.plan, torch, t64)
    for a, b in zip(track, track_t, strict=True):
        close(a, b, 1e-12)
    close(
        dsp.phase_integral(*track, sel.plan, rate, np, np.asarray),
        dsp.phase_integral(*track_t, sel.plan, rate, torch, t64),
        1e-12,
    )
    got = dsp.partial_values(v, sel, jph, sph, sup, rate, np, np.asarray)
    got_t = dsp.partial_values(vt, sel, t64(jph), t64(sph), t64(sup), rate, torch, t64)
    for a, b in zip(got, got_t, strict=True):
        close(a, b)
    nsel = dsp.select_noise(v, t, sup, rate, m_lo, m_hi)
    assert len(nsel.row) > 100
    close(
        dsp.noise_values(v, nsel, sup, rate, np, np.asarray),
        dsp.noise_values(vt, nsel, t64(sup), rate, torch, t64),
    )


def test_partial_tables_bound_what_is_selected() -> None:
    """select_partials renders exactly the active partials of partial_tables up to their tau_end."""
    v, t = prior(8, 5)
    sup = events.support_s(v)
    tables = dsp.partial_tables(v, 22050)
    assert np.all(np.isneginf(tables.tau_end[~tables.active]))
    sel = dsp.select_partials(v, t, sup, 22050, 0, 10**6)
    assert np.all(tables.active[sel.e, sel.k])
    assert np.all(sel.plan.tau[sel.ef] <= tables.tau_end[sel.e, sel.k] + 1e-9)


# ----------------------------------------------------------------------------------------- closed form


def tone(**kw: float) -> np.ndarray:
    """One event, a sustained almost pure first partial (the next one 40 dB down) unless overridden."""
    v = events.defaults(1)
    base = {"tilt": -40.0, "t60_low": 60.0, "t60_high": 60.0, "duration": 8.0, "release": 4.0, "level": -12.0}
    for name, value in {**base, **kw}.items():
        v[0, C[name]] = value
    return v


Renderer = Callable[[np.ndarray, float, int], np.ndarray]


def render_with(name: str) -> Renderer:
    """``(vectors, seconds, rate) -> float64[samples]`` mono audio of one event at t = 0."""

    def go(v: np.ndarray, seconds: float, rate: int) -> np.ndarray:
        n = round(seconds * rate)
        if name == "numpy":
            return render_np.render(v, [0.0], n, rate)[0].astype(np.float64)
        return render_torch.render(torch.as_tensor(v), [0.0], n, rate)[0].numpy()

    return go


RENDERERS = [pytest.param(render_with("numpy"), id="numpy"), pytest.param(render_with("torch"), id="torch")]


def db(x: float) -> float:
    return 20.0 * math.log10(x)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("render", RENDERERS)
def test_sine_level(render: Renderer, rate: int) -> None:
    """A single-partial event at L dBFS peaks at L and has an RMS of L - 3.01 dB (a sine), less its decay
    (T60 60 s: 1 dB/s); a pure-noise event's power is the same (sine-equivalent level; T60 30 s)."""
    t = np.arange(round(0.6 * rate)) / rate
    use = t >= 0.05
    for level in (-30.0, -6.0):
        x = render(tone(level=level, pitch=60.0), 0.6, rate)[use]
        amp = 10.0 ** (level / 20.0) * np.exp(-math.log(1000.0) * t[use] / 60.0)  # closed form
        assert abs(db(float(np.abs(x).max())) - db(float(amp.max()))) < 0.1
        assert abs(db(float(np.sqrt(np.mean(x**2)))) - db(float(np.sqrt(np.mean(amp**2 / 2.0))))) < 0.1
    noise = tone(level=-12.0, noise_mix=1.0, noise_decay=30.0, noise_centre=1000.0, noise_width=1.0)
    t = np.arange(rate) / rate
    use = t >= 0.05
    x = render(noise, 1.0, rate)[use]
    amp = 10.0 ** (-12.0 / 20.0) * np.exp(-math.log(1000.0) * t[use] / 30.0)
    assert abs(db(float(np.sqrt(np.mean(x**2)))) - db(float(np.sqrt(np.mean(amp**2 / 2.0))))) < 0.4


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("render", RENDERERS)
def test_t60_decay(render: Renderer, rate: int) -> None:
    """The envelope falls 60 dB in T60 seconds (straight-line fit of the 20 ms RMS in dB)."""
    t60 = 0.4
    x = render(tone(t60_low=t60, t60_high=t60, attack=0.001, pitch=64.0), 0.5, rate)
    w = int(0.02 * rate)
    frames = x[: len(x) // w * w].reshape(-1, w)
    level = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-30)
    t = (np.arange(len(level)) + 0.5) * w / rate
    use = (t > 0.03) & (t < 0.3)  # the support ends at T60 (+ 1 ms), with a 50 ms fade
    slope = np.polyfit(t[use], level[use], 1)[0]
    assert abs(-60.0 / slope / t60 - 1.0) < 0.03
    # the kernel itself: the partial's amplitude falls by 1000 per T60 after the attack
    v = tone(t60_low=t60, t60_high=t60, attack=0.001, pitch=64.0)
    sel = dsp.select_partials(v, np.zeros(1), events.support_s(v), rate, 0, 10**6)
    zeros = np.zeros((1, events.MAX_PARTIALS))
    amp, _, _ = dsp.partial_values(v, sel, zeros, zeros, events.support_s(v), rate, np, np.asarray)
    first = (sel.k == 0) & (sel.plan.tau[sel.ef] > 0.01) & (sel.plan.tau[sel.ef] < 0.3)
    tau = sel.plan.tau[sel.ef][first]
    ratio = amp[first] / amp[first][0]
    np.testing.assert_allclose(ratio, np.exp(-math.log(1000.0) * (tau - tau[0]) / t60), rtol=1e-9)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("render", RENDERERS)
def test_noise_band_centre(render: Renderer, rate: int) -> None:
    """A noise event's band is centred where it says: the log-frequency centroid of its spectrum (power per
    octave) and its smoothed peak are near ``noise_centre``."""
    centre = 1200.0
    v = tone(level=-12.0, noise_mix=1.0, noise_decay=30.0, noise_centre=centre, noise_width=1.0)
    x = render(v, 2.0, rate)[int(0.1 * rate) :]
    seg = 4096
    frames = x[: len(x) // seg * seg].reshape(-1, seg) * np.hanning(seg)
    psd = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)[1:]
    f = np.fft.rfftfreq(seg, 1.0 / rate)[1:]
    # density per octave is psd · f; a log-Gaussian in f has its mean log f at the centre for psd / f · f
    w = psd / f
    log_centroid = float(np.sum(w * np.log2(f)) / np.sum(w))
    assert abs(log_centroid - math.log2(centre)) < 0.05  # octaves
    smooth = np.convolve(psd, np.ones(31) / 31, mode="same")
    assert abs(math.log2(f[int(np.argmax(smooth))] / centre)) < 0.15


# ---------------------------------------------------------------------------------------------- imports

KERNEL_WORDS = (
    "hann",
    "smooth",
    "overlap",
    "ola",
    "window",
    "partial_tables",
    "phase_integral",
    "pitch_track",
)


@pytest.mark.parametrize("module", [render_np, render_torch], ids=["render_np", "render_torch"])
def test_renderers_define_no_kernels_of_their_own(module: Any) -> None:
    """Neither renderer defines a window, smoother, overlap-add or the shared tables; validation and frame
    helpers are the kernels' own objects, and the torch renderer does not import the numpy one."""
    tree = ast.parse(inspect.getsource(module))
    defined = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    clash = [name for name in defined if any(w in name.lower() for w in KERNEL_WORDS)]
    assert not clash, f"{module.__name__} defines {clash}: use sparsecodec.synth.kernels"
    kernel_names = {name for name, obj in vars(dsp).items() if inspect.isfunction(obj)}
    assert not kernel_names & set(defined), f"{module.__name__} redefines {kernel_names & set(defined)}"
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not any(n.module and n.module.endswith("render_np") for n in imports)
    source = inspect.getsource(module)
    assert "dsp.hann_smooth" in source and "dsp.overlap_add" in source


def test_validation_lives_in_kernels() -> None:
    for name in ("check_inputs", "parse_room", "safe_frame"):
        assert getattr(render_np, name) is getattr(dsp, name)
        assert getattr(render_np, name).__module__ == dsp.__name__


def test_dead_kernels_are_gone() -> None:
    for name in ("kernel_table_t", "hann_smooth_real", "band_half_width_oct"):
        assert not hasattr(dsp, name)
