"""Joint refinement: Adam on a window's events against the input, through the differentiable renderer.

:func:`refine_events` is the optimiser (magnitude-only multi-resolution loss, Adam in the unit interval);
:func:`refine_window` is what the streaming encoder (:mod:`sparsecodec.encoder.stream`) calls on a window's
events (``--refine``, or the cheap ``local_steps``): it fits them in mono against the channel mean, with the
committed events' tails as fixed context.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from sparsecodec.format import events

if TYPE_CHECKING:
    import torch

_C = events.INDEX

FROZEN_DIMS = (
    "glide",
    "vibrato_rate",
    "vibrato_depth",
    "detune",
    "wet",
    "pan",
    "jitter",
    "pitch_drop",
    "reserved",
)
"""Dimensions refinement leaves alone: pitch modulations (their gradients go through detached phases or
seeded randomness), the room send (no per-chunk room yet), pan (set from the L/R energy; the loss is mono)."""

FINE_STEPS = {"pitch": 0.015, "level": 0.2}
"""Dimensions that move in finer Adam steps, and their scale: a unit step of pitch is 108 semitones and of
level 96 dB, so they move ≈0.05 semitone and ≈0.6 dB per step at lr 0.03 (see :func:`step_scale`)."""

LOSS_EPS = 1e-5
"""Magnitude floor (amplitude-scaled STFT) inside the log of the refinement loss (−100 dBFS)."""


def step_scale() -> np.ndarray:
    """Per-dimension scale ``float64[32]`` of the Adam step in the unit interval: 0 for
    :data:`FROZEN_DIMS`, :data:`FINE_STEPS` where given, else 1 (a new array on each call)."""
    scale = np.ones(events.N_DIMS)
    scale[[_C[n] for n in FROZEN_DIMS]] = 0.0
    for name, value in FINE_STEPS.items():
        scale[_C[name]] = value
    return scale


def loss_sizes(sample_rate: int) -> tuple[int, ...]:
    """FFT sizes of the refinement loss: 2048/512/128 at 22.05 kHz, scaled with the rate (same seconds)."""
    scale = 2.0 ** round(math.log2(sample_rate / 22050.0))
    return tuple(max(32, int(n * scale)) for n in (2048, 512, 128))


def refine_events(
    vectors: np.ndarray,
    times_s: np.ndarray,
    target: np.ndarray,
    sample_rate: int,
    steps: int,
    fixed: np.ndarray | None = None,
    lr: float = 0.03,
    lr_end_ratio: float = 0.1,
    threads: int = 1,
    device: str = "cpu",
) -> np.ndarray:
    """Jointly fit ``vectors`` (``float[N, 32]``, physical, onsets ``times_s`` [N] in seconds relative to
    ``target[0]``) so that their mono render (+ ``fixed``, ``float[T]``) matches ``target`` (``float[T]``).

    Loss: mean over FFT sizes :func:`loss_sizes` (Hann, 75 % overlap) of the log-magnitude L1
    (``log10(|S| + 1e-5)``) plus the linear-magnitude L1 relative to the target's mean magnitude — magnitude
    only, because rendered phases are seeded and never match real audio.  Adam in the unit interval
    (:func:`events.to_unit`) with per-dimension step scales :func:`step_scale` (frozen dims: 0), cosine
    decay from ``lr`` to ``lr * lr_end_ratio``; times are fixed.  Deterministic (no randomness).  Returns
    the iterate with the lowest loss seen (never worse than the start), ``float64[N, 32]``.
    """
    import torch

    if steps <= 0 or len(vectors) == 0:
        return np.asarray(vectors, np.float64)
    torch.set_num_threads(max(1, threads))
    dev = torch.device(device)
    f64 = torch.float64
    sizes = [s for s in loss_sizes(sample_rate) if s <= int(target.shape[-1])]
    if not sizes:
        return np.asarray(vectors, np.float64)
    loss_of = _magnitude_loss(target, fixed, np.asarray(times_s, np.float64), sample_rate, sizes, dev)
    u0 = torch.as_tensor(np.clip(events.to_unit(np.asarray(vectors, np.float64)), 0.0, 1.0), device=dev)
    scale = torch.as_tensor(step_scale(), dtype=f64, device=dev)
    delta = torch.zeros_like(u0, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    best_u, best_loss = u0.clone(), math.inf
    for i in range(steps + 1):
        u = (u0 + scale * delta).clamp(0.0, 1.0)
        loss = loss_of(u)
        value = float(loss.detach())
        if value < best_loss:
            best_u, best_loss = u.detach().clone(), value
        if i == steps:
            break
        for group in opt.param_groups:
            group["lr"] = lr * (
                lr_end_ratio + (1.0 - lr_end_ratio) * 0.5 * (1.0 + math.cos(math.pi * i / steps))
            )
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = events.from_unit(best_u.cpu().numpy())
    return np.asarray(events.clip(out), np.float64)


def _magnitude_loss(
    target: np.ndarray,
    fixed: np.ndarray | None,
    times: np.ndarray,
    sample_rate: int,
    sizes: list[int],
    dev: torch.device,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The loss of :func:`refine_events` as a function of unit-interval vectors ``[N, 32]`` (onsets
    ``times`` in s from ``target[0]``): the target's magnitudes at the FFT ``sizes`` are computed once."""
    import torch

    from sparsecodec.synth import render_torch as generator  # type: ignore[attr-defined,unused-ignore]

    f64 = torch.float64
    n = int(target.shape[-1])
    windows = {s: torch.hann_window(s, dtype=f64, device=dev) for s in sizes}

    def mags(x: torch.Tensor) -> list[torch.Tensor]:
        return [
            torch.stft(x, s, s // 4, window=windows[s], center=True, return_complex=True).abs() * (4.0 / s)
            for s in sizes
        ]

    tgt = torch.as_tensor(np.asarray(target, np.float64), device=dev)
    fix = None if fixed is None else torch.as_tensor(np.asarray(fixed, np.float64), device=dev)
    with torch.no_grad():
        tmags = mags(tgt)
        tlogs = [torch.log10(m + LOSS_EPS) for m in tmags]
        tmeans = [float(m.mean()) + LOSS_EPS for m in tmags]

    def loss_of(u: torch.Tensor) -> torch.Tensor:
        y = generator.render(events.from_unit(u), times, n, sample_rate, channels=1)[0]
        if fix is not None:
            y = y + fix
        total = torch.zeros((), dtype=f64, device=dev)
        for mm, tl, tm, mean in zip(mags(y), tlogs, tmags, tmeans, strict=True):
            total = total + (torch.log10(mm + LOSS_EPS) - tl).abs().mean() + (mm - tm).abs().mean() / mean
        return total / len(sizes)

    return loss_of


def mono_offsets(vectors: np.ndarray, channels: int) -> np.ndarray:
    """Level offsets (dB) ``[N]`` that make a mono render equal each event's share of the channel mean.

    Equal-power pan sends ``cos θ · s`` and ``sin θ · s`` to L/R; their mean is ``s (cos θ + sin θ) / 2``.
    """
    if channels != 2:
        return np.zeros(len(vectors))
    theta = (vectors[:, _C["pan"]] + 1.0) * math.pi / 4.0
    return 20.0 * np.log10(np.maximum((np.cos(theta) + np.sin(theta)) / 2.0, 1e-6))


def refine_window(
    vectors: np.ndarray,
    times: np.ndarray,
    x: np.ndarray,
    start: int,
    loss_end: int,
    fixed: np.ndarray | None,
    sample_rate: int,
    steps: int,
    *,
    lr: float = 0.03,
    threads: int = 1,
    device: str = "cpu",
) -> np.ndarray:
    """``steps`` of joint refinement of a window's events (``float[N, 32]`` at absolute samples ``times``)
    against the window's input ``x`` (``float32[C, win]``, absolute ``start``).

    The events are rendered in mono (levels offset by :func:`mono_offsets`) plus ``fixed`` (the committed
    events' tails, mono ``float[win]``; ``None``: none) and fitted to the channel mean in magnitude
    (:func:`refine_events`) over window samples from the first refined onset minus the longest loss FFT up
    to ``loss_end``; events starting at or after ``loss_end`` are left as they are.  Returns
    ``float64[N, 32]``.
    """
    target = x.mean(axis=0)
    keep = (times - start) < loss_end
    if not keep.any():
        return vectors
    out = vectors.copy()
    vec, tim = vectors[keep], times[keep]
    a = max(0, int(tim.min() - start) - loss_sizes(sample_rate)[0])
    b = min(target.shape[-1], loss_end)
    if steps <= 0 or len(vec) == 0 or b - a < loss_sizes(sample_rate)[0]:
        out[keep] = vec
        return out
    off = mono_offsets(vec, x.shape[0])
    mono_v = vec.copy()
    mono_v[:, _C["level"]] += off
    fitted = refine_events(
        mono_v,
        (tim - start - a) / sample_rate,
        target[a:b],
        sample_rate,
        steps,
        fixed=None if fixed is None else fixed[a:b],
        lr=lr,
        threads=threads,
        device=device,
    )
    fitted[:, _C["level"]] -= off
    out[keep] = np.asarray(events.clip(fitted))
    return out
