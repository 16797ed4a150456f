"""Differentiable torch renderer: the same algorithm as :mod:`sparsecodec.synth.render_np`, on CPU or CUDA.

``render`` maps physical event vectors to audio and is differentiable with respect to the vectors
(frequencies through the closed-form Hann kernel, amplitudes, envelopes, noise band).  Which partial-frames
and noise cells are rendered is decided in numpy on the detached values (integer bookkeeping, no gradient).
Batched input ``[B, N, 32]`` renders several windows in one pass.  Computation is float64 internally.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sparsecodec.errors import UsageError
from sparsecodec.format import events
from sparsecodec.synth import kernels as dsp
from sparsecodec.synth.voice import VoiceStream, take_voice

_C = events.INDEX


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
    dsp.check_channels(channels)
    nbatch, nev = vectors.shape[:2]
    times = np.asarray(
        times_s.detach().cpu().numpy() if isinstance(times_s, torch.Tensor) else times_s, dtype=np.float64
    ).reshape(nbatch, nev)
    if seeds is None:
        seed_arr = np.stack([dsp.event_seeds(t) for t in times]) if nev else np.zeros((nbatch, 0), np.int64)
    else:
        seed_arr = np.asarray(seeds, dtype=np.int64).reshape(nbatch, nev)
    dsp.check_finite(np.isfinite(times).all() and bool(torch.isfinite(vectors).all()))
    room = dsp.parse_room(side)
    r = _Render(vectors, times, seed_arr, sample_rate, channels, room, start_s, int(n_samples))
    spec = r.partials(phase_gradient)
    noise = r.noise()
    if noise is not None:
        spec = spec + dsp.hann_smooth(noise, torch)
    audio = dsp.overlap_add(torch.fft.irfft(spec, r.n, dim=-1), torch)  # [B, S, T], from (m_lo - HALF)·hop
    return r.mix(audio).to(vectors.dtype)


class _Render:
    """One call of :func:`render` on ``B`` windows flattened to ``B·N`` events: the frame range, the
    accumulator slots (dry, or left/right, then wet) and the parts of the spectrogram ``[B, S, F, nb]``."""

    def __init__(
        self,
        vectors: torch.Tensor,
        times: np.ndarray,
        seeds: np.ndarray,
        sample_rate: int,
        channels: int,
        room: tuple[float, float] | None,
        start_s: float,
        n_samples: int,
    ) -> None:
        self.nbatch, nev = vectors.shape[:2]
        self.dev = vectors.device
        self.sr, self.channels, self.room, self.n_samples = sample_rate, channels, room, n_samples
        v = vectors.reshape(self.nbatch * nev, events.N_DIMS).to(torch.float64)
        self.v = torch.minimum(torch.maximum(v, self.conv(events.LO)), self.conv(events.HI))
        self.v_np = self.v.detach().cpu().numpy()
        self.t = times.reshape(-1)
        self.batch_of = np.repeat(np.arange(self.nbatch), nev)
        self.n = dsp.frame_size(sample_rate)
        self.hop, self.nb = self.n // dsp.OVERLAP, self.n // 2 + 1
        self.start = round(start_s * sample_rate)
        self.m_lo, self.m_hi = dsp.frame_range(
            self.start, self.start + n_samples, sample_rate, room is not None
        )
        self.support = events.support_s(self.v_np)
        self.offsets = dsp.seed_offsets(seeds.reshape(-1))
        self.slots: list[torch.Tensor | None] = [None]
        if channels == 2:
            self.slots = list(dsp.pan_gains(self.v, torch))
        if room is not None:
            self.slots.append(self.v[:, _C["wet"]])

    def conv(self, a: Any) -> torch.Tensor:
        """numpy → tensor on the device (float64 stays float64)."""
        a = np.asarray(a)
        if a.dtype == np.float64:
            return torch.as_tensor(a, dtype=torch.float64, device=self.dev)
        return torch.as_tensor(a, device=self.dev)

    def scatter(self, idx: torch.Tensor, e: torch.Tensor, re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
        """Sum values into a ``complex[B, S, F, nb]`` spectrogram (``idx`` within one slot)."""
        nf, ns = self.m_hi - self.m_lo, len(self.slots)
        size = self.nbatch * ns * nf * self.nb
        acc_re = re.new_zeros(size)
        acc_im = re.new_zeros(size)
        b_off = self.conv(self.batch_of)[e] * (ns * nf * self.nb)
        for s, g in enumerate(self.slots):
            gi = 1.0 if g is None else g[e]
            where = idx + b_off + s * nf * self.nb
            acc_re = acc_re.index_add(0, where, re * gi)
            acc_im = acc_im.index_add(0, where, im * gi)
        return torch.complex(acc_re, acc_im).reshape(self.nbatch, ns, nf, self.nb)

    def partials(self, phase_gradient: bool) -> torch.Tensor:
        """The partials' spectrogram: :func:`dsp.partial_values` through the closed-form kernel."""
        n, nb, conv = self.n, self.nb, self.conv
        sel = dsp.select_partials(self.v_np, self.t, self.support, self.sr, self.m_lo, self.m_hi)
        jph = conv(dsp.seeded_phases(self.offsets, len(dsp.JITTER_FREQS_HZ), dsp.JITTER_SALT))
        sph = conv(dsp.seeded_phases(self.offsets, events.MAX_PARTIALS, dsp.PHASE_SALT))
        amp, phase, freq = dsp.partial_values(self.v, sel, jph, sph, conv(self.support), self.sr, torch, conv)
        if not phase_gradient:
            phase = phase.detach()
        # the same -70 dB skip as the numpy decoder (so the twins render the same partial-frames)
        peak = conv(10.0 ** (self.v_np[:, _C["level"]] / 20.0))
        keep = torch.nonzero(amp.detach().abs() > dsp.PARTIAL_FLOOR * peak[conv(sel.e)]).squeeze(1)
        amp, phase, freq = amp[keep], phase[keep], freq[keep]
        keep_np = keep.cpu().numpy()
        sel_e, sel_frame = sel.e[keep_np], sel.plan.frame[sel.ef[keep_np]]
        x = freq * (n / self.sr)
        fl = torch.floor(x.detach())
        taps = conv(dsp.kernel_taps())[:, None]
        kern = dsp.synthesis_kernel(taps.to(torch.float64) - (x - fl)[None, :], n, torch)  # [2L, M]
        bins = fl.long()[None, :] + taps
        half = 0.5 * amp
        re = half * torch.cos(phase) * kern
        im = half * torch.sin(phase) * kern
        # taps below bin 0 fold back as conjugates; bin 0 is real (the numpy decoder folds its accumulator)
        im = torch.where(bins < 0, -im, im)
        re = torch.where(bins == 0, 2.0 * re, re)
        im = torch.where(bins == 0, torch.zeros_like(im), im)
        bins = bins.abs()
        inside = bins < nb
        re = torch.where(inside, re, torch.zeros_like(re))
        im = torch.where(inside, im, torch.zeros_like(im))
        bins = bins.clamp(max=nb - 1)
        frame = conv(sel_frame - self.m_lo)
        idx = (frame[None, :] * nb + bins).reshape(-1)
        e_rep = conv(sel_e)[None, :].expand_as(bins).reshape(-1)
        return self.scatter(idx, e_rep, re.reshape(-1), im.reshape(-1))

    def noise(self) -> torch.Tensor | None:
        """The noise's spectrogram before :func:`dsp.hann_smooth` (None: no noise cell)."""
        nsel = dsp.select_noise(self.v_np, self.t, self.support, self.sr, self.m_lo, self.m_hi)
        if not len(nsel.row):
            return None
        mag = dsp.noise_values(self.v, nsel, self.conv(self.support), self.sr, torch, self.conv)
        z = dsp.noise_table()[dsp.noise_index(self.offsets, nsel, self.nb)]
        nidx = self.conv((nsel.plan.frame[nsel.row] - self.m_lo) * self.nb + nsel.b)
        return self.scatter(nidx, self.conv(nsel.e), mag * self.conv(z.real), mag * self.conv(z.imag))

    def mix(self, audio: torch.Tensor) -> torch.Tensor:
        """Slots' audio → the output ``[B, channels, n_samples]``: dry + the wet slot through the room."""
        origin = (self.m_lo - dsp.HALF) * self.hop
        dry = audio[:, : self.channels]
        if self.room is not None:
            ir = self.conv(dsp.room_ir(self.room[0], self.room[1], self.sr, self.channels).astype(np.float64))
            wet = audio[:, self.channels]
            length = wet.shape[-1] + ir.shape[-1] - 1
            nfft = dsp.fft_size(length)
            dry = dry + dsp.fft_convolve(wet, torch.fft.rfft(ir, nfft), nfft, dry.shape[-1], torch)
        out = dry[..., self.start - origin : self.start + self.n_samples - origin]
        if out.shape[-1] < self.n_samples:
            out = torch.nn.functional.pad(out, (0, self.n_samples - out.shape[-1]))
        return torch.nan_to_num(out)


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
        dsp.check_stream(channels, n_samples_total, start_sample)
        self.sample_rate, self.channels = int(sample_rate), channels
        self.n_samples_total = int(n_samples_total)
        self.device = torch.device(device)
        self._hop = dsp.frame_size(self.sample_rate) // dsp.OVERLAP
        self._done = int(start_sample)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float] | None]] = []
        self._voice: VoiceStream | None = None  # once a voice knot arrives

    def push(
        self,
        vectors: Any,
        times_s: Any,
        side: dict[str, Any] | None,
        safe_until_s: float,
        seeds: Any = None,
    ) -> np.ndarray:
        """Add events (``float[N,32]``, absolute onsets in s); return the final audio ``float32[C, k]``."""
        v, t, s = dsp.check_inputs(vectors, times_s, seeds)
        # voice knots render on the CPU (synth.voice), as the numpy decoder does
        self._voice, notes = take_voice(self._voice, v, t, self.sample_rate, self.channels)
        v, t, s = v[notes], t[notes], s[notes]
        if len(v):
            self._pending.append((v, t, s, dsp.parse_room(side)))
        m_safe = dsp.safe_frame(safe_until_s, self.n_samples_total, self.sample_rate, self._hop)
        # the samples of the frames before m_safe, as the numpy decoder returns them
        end = (
            self.n_samples_total
            if m_safe is None
            else min((m_safe - dsp.HALF) * self._hop, self.n_samples_total)
        )
        if self._voice is not None:  # the voice after its last knot waits for the next one
            end = min(
                end, (self._voice.final_until(safe_until_s, self.n_samples_total) // self._hop) * self._hop
            )
        return self._render_to(end)

    def finish(self) -> np.ndarray:
        """Return the remaining audio up to ``n_samples_total``, ``float32[C, k]``."""
        return self._render_to(self.n_samples_total)

    def _render_to(self, end: int) -> np.ndarray:
        if end <= self._done:
            return np.zeros((self.channels, 0), dtype=np.float32)
        if self._voice is not None:
            voice = self._voice.render(self._done, end)
            out = self._render_notes(end)
            return out if voice is None else out + voice
        return self._render_notes(end)

    def _render_notes(self, end: int) -> np.ndarray:
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
