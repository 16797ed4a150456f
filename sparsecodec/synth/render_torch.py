"""Differentiable torch renderer: the same algorithm as :mod:`sparsecodec.synth.render_np`, on CPU or CUDA.

``render`` maps physical event vectors to audio and is differentiable with respect to the vectors
(frequencies through the closed-form Hann kernel, amplitudes, envelopes, noise band).  Which partial-frames
and noise cells are rendered is decided in numpy on the detached values (integer bookkeeping, no gradient).
Batched input ``[B, N, 32]`` renders several windows in one pass.  Computation is float64 internally.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from sparsecodec.errors import UsageError
from sparsecodec.format import events
from sparsecodec.synth import kernels as dsp
from sparsecodec.synth.render_np import parse_room

_C = events.INDEX


def _overlap_add(frames: torch.Tensor) -> torch.Tensor:
    """Centred frames ``[..., F, N]`` → audio ``[..., (F+O-1)·h]`` (frame i centred at ``(i+HALF)·h``)."""
    f, n = frames.shape[-2:]
    o = dsp.OVERLAP
    hop = n // o
    q = frames.reshape(*frames.shape[:-2], f, o, hop)
    out = frames.new_zeros((*frames.shape[:-2], f + o - 1, hop))
    for i in range(o):
        out = out + torch.nn.functional.pad(q[..., :, (i + dsp.HALF) % o, :], [0, 0, i, o - 1 - i])
    return (2.0 / o) * out.reshape(*frames.shape[:-2], (f + o - 1) * hop)


def _hann_smooth(spec: torch.Tensor) -> torch.Tensor:
    """Bin kernel [¼, ½, ¼] along the last axis with conjugate mirrors at DC and Nyquist."""
    left = torch.cat([spec[..., 1:2].conj(), spec[..., :-1]], dim=-1)
    right = torch.cat([spec[..., 1:], spec[..., -2:-1].conj()], dim=-1)
    return 0.5 * spec + 0.25 * (left + right)


def render(
    vectors: torch.Tensor,
    times_s: Any,
    n_samples: int,
    sample_rate: int,
    side: dict[str, Any] | None = None,
    channels: int = 1,
    start_s: float = 0.0,
    seeds: Any = None,
    phase_gradient: bool = False,
) -> torch.Tensor:
    """Render ``vectors`` ``[N, 32]`` (or ``[B, N, 32]``) at absolute onsets ``times_s`` ``[N]`` (``[B, N]``)
    to audio ``[channels, n_samples]`` (``[B, channels, n_samples]``) starting at ``start_s``.

    Differentiable w.r.t. ``vectors``; runs on the vectors' device; output dtype = the vectors' dtype.
    Events are clamped to the layout's ranges.  ``seeds``: optional ``int[N]`` (``[B, N]``).
    ``phase_gradient``: by default the running phase is detached, so frequency gradients flow only through
    the spectral kernel's position (smooth for magnitude losses); True keeps the exact waveform gradient.
    """
    if vectors.ndim == 2:
        out = render(
            vectors[None],
            np.asarray(times_s)[None],
            n_samples,
            sample_rate,
            side,
            channels,
            start_s,
            None if seeds is None else np.asarray(seeds)[None],
            phase_gradient,
        )
        return out[0]
    if vectors.ndim != 3 or vectors.shape[-1] != events.N_DIMS:
        raise UsageError(f"vectors must be [N, {events.N_DIMS}] or [B, N, {events.N_DIMS}]")
    if channels not in (1, 2):
        raise UsageError(f"channels must be 1 or 2, got {channels}")
    nbatch, nev = vectors.shape[:2]
    dev = vectors.device
    times = np.asarray(
        times_s.detach().cpu().numpy() if isinstance(times_s, torch.Tensor) else times_s, dtype=np.float64
    ).reshape(nbatch, nev)
    if seeds is None:
        seed_arr = np.stack([dsp.event_seeds(t) for t in times]) if nev else np.zeros((nbatch, 0), np.int64)
    else:
        seed_arr = np.asarray(seeds, dtype=np.int64).reshape(nbatch, nev)
    if not (np.isfinite(times).all() and bool(torch.isfinite(vectors).all())):
        raise UsageError("event vectors and times must be finite")

    def conv(a: np.ndarray) -> torch.Tensor:
        a = np.asarray(a)
        if a.dtype == np.float64:
            return torch.as_tensor(a, dtype=torch.float64, device=dev)
        return torch.as_tensor(a, device=dev)

    v = vectors.reshape(nbatch * nev, events.N_DIMS).to(torch.float64)
    v = torch.minimum(torch.maximum(v, conv(events.LO)), conv(events.HI))
    v_np = v.detach().cpu().numpy()
    t_flat = times.reshape(-1)
    batch_of = np.repeat(np.arange(nbatch), nev)
    room = parse_room(side)

    n = dsp.frame_size(sample_rate)
    hop, nb = n // dsp.OVERLAP, n // 2 + 1
    start = round(start_s * sample_rate)
    end = start + int(n_samples)
    lead = math.ceil(dsp.ROOM_TAIL_S * sample_rate) if (room is not None and start > 0) else 0
    m_lo = (max(start - lead, 0) if lead else start) // hop - dsp.HALF + 1
    m_hi = -(-end // hop) + dsp.HALF
    nf = m_hi - m_lo
    support = events.support_s(v_np)
    support_t = conv(support)
    offsets = dsp.seed_offsets(seed_arr.reshape(-1))

    slots: list[tuple[str, torch.Tensor | None]] = []
    if channels == 1:
        slots.append(("dry", None))
    else:
        gl, gr = dsp.pan_gains(v, torch)
        slots += [("dry", gl), ("dry", gr)]
    if room is not None:
        slots.append(("wet", v[:, _C["wet"]]))
    n_slots = len(slots)
    size = nbatch * n_slots * nf * nb

    def scatter(idx: torch.Tensor, e: torch.Tensor, re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
        """Sum values into a ``complex[B, S, F, nb]`` spectrogram (``idx`` within one slot)."""
        acc_re = re.new_zeros(size)
        acc_im = re.new_zeros(size)
        b_off = conv(batch_of)[e] * (n_slots * nf * nb)
        for s, (_, g) in enumerate(slots):
            gi = 1.0 if g is None else g[e]
            where = idx + b_off + s * nf * nb
            acc_re = acc_re.index_add(0, where, re * gi)
            acc_im = acc_im.index_add(0, where, im * gi)
        return torch.complex(acc_re, acc_im).reshape(nbatch, n_slots, nf, nb)

    # partials
    sel = dsp.select_partials(v_np, t_flat, support, sample_rate, m_lo, m_hi)
    jph = conv(dsp.seeded_phases(offsets, len(dsp.JITTER_FREQS_HZ), dsp.JITTER_SALT))
    sph = conv(dsp.seeded_phases(offsets, events.MAX_PARTIALS, dsp.PHASE_SALT))
    amp, phase, freq = dsp.partial_values(v, sel, jph, sph, support_t, sample_rate, torch, conv)
    if not phase_gradient:
        phase = phase.detach()
    # the same -70 dB skip as the numpy decoder (so the twins render the same partial-frames)
    peak = conv(10.0 ** (v_np[:, _C["level"]] / 20.0))
    keep = torch.nonzero(amp.detach().abs() > dsp.PARTIAL_FLOOR * peak[conv(sel.e)]).squeeze(1)
    amp, phase, freq = amp[keep], phase[keep], freq[keep]
    keep_np = keep.cpu().numpy()
    sel_e, sel_frame = sel.e[keep_np], sel.plan.frame[sel.ef[keep_np]]
    x = freq * (n / sample_rate)
    fl = torch.floor(x.detach())
    taps = conv(np.arange(-dsp.KERNEL_HALF_WIDTH + 1, dsp.KERNEL_HALF_WIDTH + 1, dtype=np.float64))[:, None]
    kern = dsp.synthesis_kernel(taps - (x - fl)[None, :], n, torch)  # [2L, M]
    bins = fl.long()[None, :] + taps.long()
    half = 0.5 * amp
    re = half * torch.cos(phase) * kern
    im = half * torch.sin(phase) * kern
    im = torch.where(bins < 0, -im, im)
    re = torch.where(bins == 0, 2.0 * re, re)
    im = torch.where(bins == 0, torch.zeros_like(im), im)
    bins = bins.abs()
    inside = bins < nb
    re = torch.where(inside, re, torch.zeros_like(re))
    im = torch.where(inside, im, torch.zeros_like(im))
    bins = bins.clamp(max=nb - 1)
    frame = conv(sel_frame - m_lo)
    idx = (frame[None, :] * nb + bins).reshape(-1)
    e_rep = conv(sel_e)[None, :].expand_as(bins).reshape(-1)
    spec = scatter(idx, e_rep, re.reshape(-1), im.reshape(-1))

    # noise
    nsel = dsp.select_noise(v_np, t_flat, support, sample_rate, m_lo, m_hi)
    if len(nsel.row):
        mag = dsp.noise_values(v, nsel, support_t, sample_rate, torch, conv)
        tidx = dsp.noise_index(offsets, nsel, nb)
        z = dsp.noise_table()[tidx]
        nidx = conv((nsel.plan.frame[nsel.row] - m_lo) * nb + nsel.b)
        spec = spec + _hann_smooth(scatter(nidx, conv(nsel.e), mag * conv(z.real), mag * conv(z.imag)))

    audio = _overlap_add(torch.fft.irfft(spec, n, dim=-1))  # [B, S, T], sample 0 = (m_lo - HALF) * hop
    origin = (m_lo - dsp.HALF) * hop
    dry = audio[:, :channels]
    if room is not None:
        ir = conv(dsp.room_ir(room[0], room[1], sample_rate, channels).astype(np.float64))
        wet = audio[:, channels]
        length = wet.shape[-1] + ir.shape[-1] - 1
        nfft = 1 << (length - 1).bit_length()
        y = torch.fft.irfft(torch.fft.rfft(wet, nfft)[:, None, :] * torch.fft.rfft(ir, nfft)[None], nfft)
        y = y[..., : dry.shape[-1]]
        dry = dry + y
    out = dry[..., start - origin : end - origin]
    if out.shape[-1] < n_samples:
        out = torch.nn.functional.pad(out, (0, int(n_samples) - out.shape[-1]))
    return torch.nan_to_num(out).to(vectors.dtype)


class StreamRenderer:
    """Streaming decode on a torch device (``spev decode --device cuda``), with the interface of
    :class:`render_np.StreamRenderer`.

    Each push returns the samples no later event can change, ``[done, safe)``, rendered by :func:`render`
    (``start_s`` = done) over every event that may still sound there: events are kept until their support
    and room tail have passed, so memory is flat in the file's length.  Events of chunks with different
    rooms are rendered per room and summed (rendering is linear).  Same audio as the numpy decoder within
    float tolerance (tested on the CPU device; on CUDA by the GPU test).
    """

    def __init__(
        self,
        sample_rate: int,
        channels: int,
        n_samples_total: int,
        start_sample: int = 0,
        device: str | torch.device = "cuda",
    ) -> None:
        if channels not in (1, 2):
            raise UsageError(f"channels must be 1 or 2, got {channels}")
        if not 0 <= start_sample <= n_samples_total:
            raise UsageError("need 0 <= start_sample <= n_samples_total")
        self.sample_rate, self.channels = int(sample_rate), channels
        self.n_samples_total = int(n_samples_total)
        self.device = torch.device(device)
        self._hop = dsp.frame_size(self.sample_rate) // dsp.OVERLAP
        self._done = int(start_sample)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float] | None]] = []

    def push(
        self,
        vectors: Any,
        times_s: Any,
        side: dict[str, Any] | None,
        safe_until_s: float,
        seeds: Any = None,
    ) -> np.ndarray:
        """Add events (``float[N,32]``, absolute onsets in s); return the final audio ``float32[C, k]``."""
        from sparsecodec.synth.render_np import check_inputs, safe_frame

        v, t, s = check_inputs(vectors, times_s, seeds)
        if len(v):
            self._pending.append((v, t, s, parse_room(side)))
        m_safe = safe_frame(safe_until_s, self.n_samples_total, self.sample_rate, self._hop)
        if m_safe is None:
            return self._render_to(self.n_samples_total)
        # the samples of the frames before m_safe, as the numpy decoder returns them
        return self._render_to(min((m_safe - dsp.HALF) * self._hop, self.n_samples_total))

    def finish(self) -> np.ndarray:
        """Return the remaining audio up to ``n_samples_total``, ``float32[C, k]``."""
        return self._render_to(self.n_samples_total)

    def _render_to(self, end: int) -> np.ndarray:
        if end <= self._done:
            return np.zeros((self.channels, 0), dtype=np.float32)
        start_s = self._done / self.sample_rate
        live = []
        for v, t, s, room in self._pending:  # drop what has fully sounded (support + room tail)
            reach = t + events.support_s(v) + (dsp.ROOM_TAIL_S if room is not None else 0.0)
            keep = reach >= start_s - 1.0 / self.sample_rate
            if keep.any():
                live.append((v[keep], t[keep], s[keep], room))
        self._pending = live
        out = torch.zeros((self.channels, end - self._done), dtype=torch.float64, device=self.device)
        for room in dict.fromkeys(r for *_, r in live):
            group = [(v, t, s) for v, t, s, r in live if r == room]
            vec = np.concatenate([g[0] for g in group])
            tim = np.concatenate([g[1] for g in group])
            seeds = np.concatenate([g[2] for g in group])
            vt = torch.as_tensor(vec, dtype=torch.float64, device=self.device)
            side = None if room is None else {"room": list(room)}
            n = end - self._done
            with torch.no_grad():
                out += render(vt, tim, n, self.sample_rate, side, self.channels, start_s, seeds)
        self._done = end
        return out.to(torch.float32).cpu().numpy()
