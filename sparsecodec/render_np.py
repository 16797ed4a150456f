"""Fast numpy decode path (no torch import): event vectors → audio.

Same algorithm as :mod:`sparsecodec.generator` (see :mod:`sparsecodec.dsp` and ``docs/events.md``):
every event adds complex spectra into a global frame grid (Hann ``N``, hop ``N/4``, aligned to absolute
sample 0), each frame is inverse-FFT'd once and overlap-added.  :class:`StreamRenderer` keeps only the frames
and samples that later events can still change, so memory is flat in file length, and rendering chunk by
chunk gives the same samples as :func:`render` in one go.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import dsp, events
from .errors import UsageError

_C = events.INDEX
ROOM_TAIL_S = dsp.ROOM_TAIL_S
"""Bound (s) on a room's reverb tail; a seek pre-rolls by ``events.MAX_SUPPORT_S + ROOM_TAIL_S``."""
RENDER_SLICE_S = 3.0
"""One-shot :func:`render` feeds the stream renderer in slices of this many seconds (flat memory)."""


def check_inputs(vectors: Any, times_s: Any, seeds: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and normalise ``(float64[N,32] clipped, float64[N], int64[N] seeds)``; raises UsageError."""
    v = np.asarray(vectors, dtype=np.float64)
    t = np.asarray(times_s, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != events.N_DIMS:
        raise UsageError(f"vectors must have shape [N, {events.N_DIMS}], got {v.shape}")
    if t.shape != (v.shape[0],):
        raise UsageError(f"times_s must have shape [{v.shape[0]}], got {t.shape}")
    if not (np.isfinite(v).all() and np.isfinite(t).all()):
        raise UsageError("event vectors and times must be finite")
    s = dsp.event_seeds(t) if seeds is None else np.asarray(seeds, dtype=np.int64)
    if s.shape != t.shape:
        raise UsageError(f"seeds must have shape [{v.shape[0]}], got {s.shape}")
    return events.clip(v), t, s


def parse_room(side: dict[str, Any] | None) -> tuple[float, float] | None:
    """``side["room"] = [rt60_s, damping]`` → clipped floats, or None (no room)."""
    if not side or side.get("room") is None:
        return None
    try:
        rt60, damping = (float(x) for x in side["room"])
    except (TypeError, ValueError) as exc:
        raise UsageError(f"side data 'room' must be [rt60_s, damping]: {exc}") from None
    if not (math.isfinite(rt60) and math.isfinite(damping)):
        raise UsageError("side data 'room' must be finite")
    return (
        float(np.clip(rt60, dsp.ROOM_MIN_RT60_S, dsp.ROOM_MAX_RT60_S)),
        float(np.clip(damping, 0.0, dsp.ROOM_MAX_DAMPING)),
    )


@dataclass
class Contributions:
    """Spectral contributions of a batch of events, relative to frame ``m_lo``.

    Each of ``M`` sources (a partial in one frame, or one noise cell) has a complex coefficient
    ``re + i·im`` (float64[M]) and event ``ev`` (int64[M]); it is spread over ``K`` bins with real weights
    ``kern`` (float64[M, K], None for K = 1) at flat indices ``idx`` (int64[M, K]):
    ``(frame - m_lo) * (N/2+1) + bin``.
    """

    idx: np.ndarray
    kern: np.ndarray | None
    re: np.ndarray
    im: np.ndarray
    ev: np.ndarray
    im_kern: np.ndarray | None = None
    """Weights for ``im`` where they differ from ``kern`` (conjugate fold-back below bin 0)."""


def partial_contributions(
    v: np.ndarray,
    times_s: np.ndarray,
    offsets: np.ndarray,
    support: np.ndarray,
    sample_rate: int,
    m_lo: int,
    m_hi: int,
) -> list[Contributions]:
    """Spectral values of all partials of events ``v`` over frames ``[m_lo, m_hi)``."""
    n = dsp.frame_size(sample_rate)
    nb = n // 2 + 1
    half = dsp.KERNEL_HALF_WIDTH
    sel = dsp.select_partials(v, times_s, support, sample_rate, m_lo, m_hi)
    jph = dsp.seeded_phases(offsets, len(dsp.JITTER_FREQS_HZ), dsp.JITTER_SALT)
    sph = dsp.seeded_phases(offsets, events.MAX_PARTIALS, dsp.PHASE_SALT)
    amp, phase, freq = dsp.partial_values(v, sel, jph, sph, support, sample_rate, np, np.asarray)
    peak = 10.0 ** (v[:, _C["level"]] / 20.0)
    ok = np.abs(amp) > dsp.PARTIAL_FLOOR * peak[sel.e]
    e, amp, phase, freq = sel.e[ok], amp[ok], phase[ok], freq[ok]
    frame = sel.plan.frame[sel.ef[ok]]
    x = freq * (n / sample_rate)
    fl = np.floor(x)
    ridx = np.rint((x - fl) * dsp.KERNEL_TABLE_RES).astype(np.intp)
    kern = dsp.kernel_table_t(n)[ridx]  # [M, 2L]
    fli = fl.astype(np.int64)
    taps = np.arange(-half + 1, half + 1)[None, :]
    idx = ((frame - m_lo) * nb + fli)[:, None] + taps
    half_amp = (0.5 * amp).astype(np.float32)
    phase32 = phase.astype(np.float32)  # already reduced to [0, 4π)
    re, im = half_amp * np.cos(phase32), half_amp * np.sin(phase32)
    edge = np.flatnonzero((fli < half) | (fli + half >= nb))
    if not len(edge):
        return [Contributions(idx, kern, re, im, e)]
    # near DC / Nyquist: taps below bin 0 fold back as conjugates, bin 0 is real, above N/2 dropped;
    # those few rows become a separate contribution and are zeroed in the main one
    bins = fli[edge][:, None] + taps
    k_e = np.where(bins == 0, 2.0 * kern[edge], kern[edge])
    k_e = np.where(bins < nb, k_e, 0.0).astype(np.float32)
    i_e = idx[edge] + np.minimum(np.abs(bins), nb - 1) - bins
    sign = np.where(bins < 0, -1.0, np.where(bins == 0, 0.0, 1.0)).astype(np.float32)
    kern[edge] = 0.0
    idx[edge] = np.clip(idx[edge], 0, None)
    folded = Contributions(i_e, k_e, re[edge], im[edge], e[edge], k_e * sign)
    return [Contributions(idx, kern, re, im, e), folded]


def noise_contributions(
    v: np.ndarray,
    times_s: np.ndarray,
    offsets: np.ndarray,
    support: np.ndarray,
    sample_rate: int,
    m_lo: int,
    m_hi: int,
) -> Contributions:
    """Spectral values (before the Hann bin smoothing) of the events' noise parts over ``[m_lo, m_hi)``."""
    nb = dsp.frame_size(sample_rate) // 2 + 1
    sel = dsp.select_noise(v, times_s, support, sample_rate, m_lo, m_hi)
    mag = dsp.noise_values(v, sel, support, sample_rate, np, np.asarray)
    tidx = dsp.noise_index(offsets, sel, nb)
    z = dsp.noise_table()[tidx]
    idx = (sel.plan.frame[sel.row] - m_lo) * nb + sel.b
    return Contributions(idx, None, mag * z.real, mag * z.imag, sel.e)


class StreamRenderer:
    """Overlap-add accumulator on the absolute frame grid; output covers ``[start_sample, n_samples_total)``.

    ``push`` renders events (whole support at once) into pending frames and returns the samples no later
    event can change: later events must start at or after ``safe_until_s``.  ``finish`` returns the rest.
    Memory holds only frames/samples within about ``MAX_SUPPORT_S + ROOM_TAIL_S`` of the last push.
    ``threads`` > 1 computes the events' spectra in that many threads (numpy releases the GIL); the result
    equals the single-threaded one up to float32 summation order (~1e-7).
    """

    def __init__(
        self, sample_rate: int, channels: int, n_samples_total: int, start_sample: int = 0, threads: int = 1
    ) -> None:
        if channels not in (1, 2):
            raise UsageError(f"channels must be 1 or 2, got {channels}")
        if not 0 <= start_sample <= n_samples_total:
            raise UsageError("need 0 <= start_sample <= n_samples_total")
        self._threads = max(1, int(threads))
        self._pool: ThreadPoolExecutor | None = None
        self.sample_rate = int(sample_rate)
        self.channels = channels
        self.n_samples_total = int(n_samples_total)
        self.start_sample = int(start_sample)
        self._n = dsp.frame_size(self.sample_rate)
        self._hop = self._n // dsp.OVERLAP
        self._nb = self._n // 2 + 1
        # a seek also renders the room's input up to ROOM_TAIL_S before the start (its tail reaches in)
        lead = math.ceil(ROOM_TAIL_S * self.sample_rate) if self.start_sample > 0 else 0
        # first frame not yet turned into audio; frames >= _m_end cannot reach the output
        self._m_done = max(self.start_sample - lead, 0) // self._hop - dsp.HALF + 1
        self._m_end = -(-self.n_samples_total // self._hop) + dsp.HALF
        self._acc: dict[str, np.ndarray] = {}  # slot -> complex64[rows, nb], row 0 = frame _m_done
        self._rows = 0
        self._out = np.zeros((channels, 0))  # samples from (_m_done - 2) * hop
        self._wet: dict[tuple[float, float], np.ndarray] = {}  # room -> mono wet samples, same origin
        self._spectra: dict[tuple[tuple[float, float], int], np.ndarray] = {}

    # ------------------------------------------------------------------------------------------------ api

    def push(
        self,
        vectors: Any,
        times_s: Any,
        side: dict[str, Any] | None,
        safe_until_s: float,
        seeds: Any = None,
    ) -> np.ndarray:
        """Render events (``float[N,32]``, absolute onsets in s); return the final audio ``float32[C, k]``."""
        v, t, s = check_inputs(vectors, times_s, seeds)
        room = parse_room(side)
        if len(v):
            self._add_events(v, t, s, room)
        safe = float(safe_until_s)
        if math.isnan(safe):
            raise UsageError("safe_until_s must not be NaN")
        if safe >= self.n_samples_total / self.sample_rate + events.MAX_SUPPORT_S:
            m_safe = self._m_end
        else:
            m_safe = math.ceil(safe * self.sample_rate / self._hop - 1e-9)
        return self._finalise(min(m_safe, self._m_end))

    def finish(self) -> np.ndarray:
        """Return the remaining audio up to ``n_samples_total``, ``float32[C, k]``."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        return self._finalise(self._m_end)

    # ------------------------------------------------------------------------------------------ internals

    def _slot(self, name: str, rows: int) -> np.ndarray:
        acc = self._acc.get(name)
        if acc is None or acc.shape[0] < rows:
            new = np.zeros((max(rows, int(1.25 * self._rows)), self._nb), dtype=np.float32)
            if acc is not None:
                new[: acc.shape[0]] = acc
            self._acc[name] = acc = new
        return acc

    def _add_events(
        self, v: np.ndarray, t: np.ndarray, s: np.ndarray, room: tuple[float, float] | None
    ) -> None:
        sr = self.sample_rate
        support = events.support_s(v)
        offsets = dsp.seed_offsets(s)
        m_lo, m_hi = self._m_done, self._m_end

        def contrib(sel: np.ndarray) -> list[Contributions]:
            args = (v[sel], t[sel], offsets[sel], support[sel], sr, m_lo, m_hi)
            out = [*partial_contributions(*args), noise_contributions(*args)]
            for c in out:
                c.ev = sel[c.ev]
            return out

        groups = [np.arange(k, len(v), self._threads) for k in range(min(self._threads, len(v)))]
        if len(groups) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads)
            contribs = [c for cs in self._pool.map(contrib, groups) for c in cs]
        else:
            contribs = contrib(np.arange(len(v)))
        gains: list[tuple[str, np.ndarray | None]] = []
        if self.channels == 1:
            gains.append(("0", None))
        else:
            gl, gr = dsp.pan_gains(v, np)
            gains += [("0", gl), ("1", gr)]
        wet = v[:, _C["wet"]]
        if room is not None and np.any(wet > 0):
            gains.append((f"wet{room}", wet))
            self._wet.setdefault(room, np.zeros(0))
        for c in contribs:
            kind = "p" if c.kern is not None else "n"
            if not c.idx.size:
                continue
            hi = int(c.idx.max()) // self._nb + 1
            idx = c.idx.ravel()
            im_kern = c.kern if c.im_kern is None else c.im_kern
            for name, g in gains:
                cre, cim = (c.re, c.im) if g is None else (c.re * g[c.ev], c.im * g[c.ev])
                cre, cim = cre.astype(np.float32), cim.astype(np.float32)
                if c.kern is not None:
                    cre, cim = (cre[:, None] * c.kern).ravel(), (cim[:, None] * im_kern).ravel()
                np.add.at(self._slot(kind + name + "r", hi).reshape(-1), idx, cre)
                np.add.at(self._slot(kind + name + "i", hi).reshape(-1), idx, cim)
        self._rows = max([self._rows] + [a.shape[0] for a in self._acc.values()])

    def _frames_to_audio(self, name: str, rows: int) -> np.ndarray:
        """OLA audio ``float64[(rows+3)·hop]`` of the first ``rows`` pending frames of one slot pair."""
        spec = np.zeros((rows, self._nb), dtype=np.complex64)
        if "p" + name + "r" in self._acc:
            re, im = self._acc["p" + name + "r"][:rows], self._acc["p" + name + "i"][:rows]
            spec.real[: re.shape[0]] += re
            spec.imag[: re.shape[0]] += im
        if "n" + name + "r" in self._acc:
            re, im = self._acc["n" + name + "r"][:rows], self._acc["n" + name + "i"][:rows]
            spec.real[: re.shape[0]] += dsp.hann_smooth_real(re, conj_sign=1.0)
            spec.imag[: re.shape[0]] += dsp.hann_smooth_real(im, conj_sign=-1.0)
        return dsp.overlap_add(np.fft.irfft(spec, self._n, axis=-1).astype(np.float64))

    def _finalise(self, m_safe: int) -> np.ndarray:
        rows = m_safe - self._m_done
        if rows <= 0:
            return np.zeros((self.channels, 0), dtype=np.float32)
        hop = self._hop
        n_final = rows * hop
        need = (rows + dsp.OVERLAP - 1) * hop
        if self._out.shape[1] < need:
            self._out = np.pad(self._out, ((0, 0), (0, need - self._out.shape[1])))
        for c in range(self.channels):
            if any(k[1:-1] == str(c) for k in self._acc):
                self._out[c, :need] += self._frames_to_audio(str(c), rows)
        for room in list(self._wet):
            name = f"wet{room}"
            wet = self._wet[room]
            if wet.shape[0] < need:
                wet = np.pad(wet, (0, need - wet.shape[0]))
            if any(k[1:-1] == name for k in self._acc):
                wet[:need] += self._frames_to_audio(name, rows)
            self._convolve_room(room, wet[:n_final])
            self._wet[room] = wet[n_final:]
            if not np.any(self._wet[room]) and not any(k[1:-1] == name for k in self._acc):
                del self._wet[room]
        for key in list(self._acc):
            acc = self._acc[key]
            self._acc[key] = acc[rows:] if acc.shape[0] > rows else acc[:0]
        self._rows = max([0] + [a.shape[0] for a in self._acc.values()])
        for key in [k for k, a in self._acc.items() if not a.shape[0]]:
            del self._acc[key]
        first = (self._m_done - dsp.HALF) * hop
        block = self._out[:, :n_final]
        self._out = self._out[:, n_final:]
        self._m_done = m_safe
        lo = max(self.start_sample - first, 0)
        hi = min(self.n_samples_total - first, n_final)
        if hi <= lo:
            return np.zeros((self.channels, 0), dtype=np.float32)
        return np.nan_to_num(block[:, lo:hi]).astype(np.float32)

    def _convolve_room(self, room: tuple[float, float], seg: np.ndarray) -> None:
        """Add ``seg`` (mono wet samples at the output origin) convolved with the room's IR to the output."""
        if not np.any(seg):
            return
        ir = dsp.room_ir(room[0], room[1], self.sample_rate, self.channels)
        length = seg.shape[0] + ir.shape[1] - 1
        nfft = 1 << (length - 1).bit_length()
        spec = self._spectra.get((room, nfft))
        if spec is None:
            spec = np.fft.rfft(ir, nfft, axis=-1)
            self._spectra = {(room, nfft): spec}
        y = np.fft.irfft(np.fft.rfft(seg, nfft)[None, :] * spec, nfft, axis=-1)[:, :length]
        if self._out.shape[1] < length:
            self._out = np.pad(self._out, ((0, 0), (0, length - self._out.shape[1])))
        self._out[:, :length] += y


def render(
    vectors: Any,
    times_s: Any,
    n_samples: int,
    sample_rate: int,
    side: dict[str, Any] | None = None,
    channels: int = 1,
    start_s: float = 0.0,
    seeds: Any = None,
) -> np.ndarray:
    """Render events to ``float32[channels, n_samples]`` starting at absolute time ``start_s``.

    ``vectors``: physical ``float[N, 32]``; ``times_s``: absolute onsets ``float[N]`` (s); ``side``:
    ``{"room": [rt60_s, damping]}`` or None; ``seeds``: optional ``int[N]`` (default from the times).
    """
    v, t, s = check_inputs(vectors, times_s, seeds)
    start = round(start_s * sample_rate)
    stream = StreamRenderer(sample_rate, channels, start + int(n_samples), start)
    order = np.argsort(t, kind="stable")
    v, t, s = v[order], t[order], s[order]
    out = []
    edges = np.arange(t[0] if len(t) else 0.0, (t[-1] if len(t) else 0.0) + RENDER_SLICE_S, RENDER_SLICE_S)
    cut = np.searchsorted(t, edges[1:], side="left") if len(t) else np.zeros(0, np.int64)
    lo = 0
    for i, hi in enumerate(cut):
        out.append(stream.push(v[lo:hi], t[lo:hi], side, safe_until_s=float(edges[i + 1]), seeds=s[lo:hi]))
        lo = int(hi)
    out.append(stream.push(v[lo:], t[lo:], side, safe_until_s=math.inf, seeds=s[lo:]))
    out.append(stream.finish())
    audio = np.concatenate(out, axis=1)
    assert audio.shape == (channels, int(n_samples)), audio.shape
    return audio
