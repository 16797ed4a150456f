"""Fast numpy decode path (no torch import): event vectors → audio.

Same algorithm as :mod:`sparsecodec.synth.render_torch` (see :mod:`sparsecodec.synth.kernels` and
``docs/events.md``): every event adds complex spectra into a global frame grid (Hann ``N``, hop ``N/4``,
aligned to absolute sample 0), each frame is inverse-FFT'd once and overlap-added. :class:`StreamRenderer`
keeps only the frames and samples that later events can still change, so memory is flat in file length, and
rendering chunk by chunk gives the same samples as :func:`render` in one go.
"""

from __future__ import annotations

import functools
import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparsecodec.format import events
from sparsecodec.synth import kernels as dsp
from sparsecodec.synth.voice import VoiceStream, take_voice

_C = events.INDEX
ROOM_TAIL_S = dsp.ROOM_TAIL_S
"""Bound (s) on a room's reverb tail; a seek pre-rolls by ``events.MAX_SUPPORT_S + ROOM_TAIL_S``."""
RENDER_SLICE_S = 3.0
"""One-shot :func:`render` feeds the stream renderer in slices of this many seconds (flat memory)."""
PAD = dsp.KERNEL_HALF_WIDTH - 1
"""Accumulator rows hold bins ``-PAD .. N/2`` (column = bin + PAD): the partials' kernel taps below bin 0
land there and are folded back (conjugated) when the frame is finished, so the scatter needs no special
case near DC."""


check_inputs = dsp.check_inputs
parse_room = dsp.parse_room
safe_frame = dsp.safe_frame
"""Validation shared with :mod:`render_torch`, defined in :mod:`kernels` (names kept here for callers)."""


Gains = list[tuple[str, "np.ndarray | None"]]
"""Accumulator slots of a push: ``(name, float32[E] per-event gain or None for 1)``."""


@functools.lru_cache(maxsize=1)
def _noise_table64() -> np.ndarray:
    """:func:`dsp.noise_table` as ``complex64`` (the accumulators are complex64 anyway)."""
    out = dsp.noise_table().astype(np.complex64)
    out.setflags(write=False)
    return out


def warm_tables(sample_rate: int) -> None:
    """Build the cached noise and kernel tables now (before forking decode workers that share them)."""
    _noise_table64()
    _kernel_table32(dsp.frame_size(sample_rate))


def frame_load(
    v: np.ndarray, times_s: np.ndarray, support: np.ndarray, sample_rate: int, m_lo: int, m_hi: int
) -> np.ndarray:
    """Estimated work per frame ``float64[m_hi - m_lo]``: partial-frames plus noise cells / 12 (a partial
    writes 12 values per frame in stereo).  Used to split frame ranges evenly between threads."""
    hop = dsp.frame_size(sample_rate) // dsp.OVERLAP
    onset = times_s * (sample_rate / hop)
    first = np.clip(np.ceil(onset - 1e-9).astype(np.int64), m_lo, m_hi) - m_lo
    tau_end = np.minimum(dsp.partial_tables(v, sample_rate).tau_end, support[:, None])
    sup, _, width = dsp.noise_ranges(v, support, sample_rate)
    ends = np.concatenate(
        [onset[:, None] + tau_end * (sample_rate / hop), (onset + sup * (sample_rate / hop))[:, None]], 1
    )
    weight = np.concatenate([np.ones(tau_end.shape), (width / 12.0)[:, None]], 1)
    with np.errstate(invalid="ignore"):
        last = np.clip(np.floor(np.nan_to_num(ends, neginf=-1.0)), m_lo - 1, m_hi - 1).astype(np.int64) - m_lo
    firsts = np.broadcast_to(first[:, None], last.shape)
    ok = last >= firsts
    diff = np.bincount(firsts[ok], weight[ok], minlength=m_hi - m_lo + 1)
    diff -= np.bincount(last[ok] + 1, weight[ok], minlength=m_hi - m_lo + 1)
    return np.cumsum(diff[:-1])


PARTIAL_BLOCK = 8192
"""Partial-frames are finished and scattered in blocks of about this many (temporaries stay in cache)."""


@functools.lru_cache(maxsize=8)
def _kernel_table32(n: int) -> np.ndarray:
    """:func:`dsp.kernel_table` as float32 ``[2L, R+1]`` (tap-major: one contiguous gather per tap)."""
    out = np.ascontiguousarray(dsp.kernel_table(n), dtype=np.float32)
    out.setflags(write=False)
    return out


def add_partials(
    v: np.ndarray,
    times_s: np.ndarray,
    offsets: np.ndarray,
    support: np.ndarray,
    sample_rate: int,
    m_lo: int,
    m_hi: int,
    row0: int,
    gains: Gains,
    acc: dict[str, np.ndarray],
) -> None:
    """Add the events' partials over frames ``[m_lo, m_hi)`` into the accumulators (row = frame - row0).

    The numpy twin of :func:`dsp.select_partials` + :func:`dsp.partial_values` (the same tables, pitch
    track and phase integral from :mod:`kernels`, the same -70 dB skips), arranged for speed: per-frame and
    per-partial quantities are computed once, partial-frames are enumerated frame-major within each event
    (cache-friendly scatter) and finished in blocks of :data:`PARTIAL_BLOCK`; amplitudes are float32, only
    the phase integral stays float64.
    """
    plan = dsp.plan_frames(times_s, support, sample_rate, m_lo, m_hi, from_onset=True)
    tables = dsp.partial_tables(v, sample_rate)
    kept = dsp.kept_rows(plan, len(v))  # keep rows (frames >= m_lo) are a suffix of each event's plan rows
    cnt = dsp.frames_above_floor(tables.tau_end, kept.first_tau[:, None], kept.count[:, None], sample_rate)
    order = _render_order(cnt, kept)
    if order is None:
        return
    rows = _partial_rows(v, offsets, support, sample_rate, plan, tables, kept, row0, *order)
    targets = [(acc[name].reshape(-1), None if g is None else g[kept.ev]) for name, g in gains]
    ends = np.cumsum(rows.n_row)
    cuts = np.searchsorted(ends, np.arange(PARTIAL_BLOCK, int(ends[-1]), PARTIAL_BLOCK), side="left")
    for ra, rb in itertools.pairwise([0, *cuts.tolist(), len(rows.n_row)]):
        if rb > ra:
            _scatter_partials(rows, ra, rb, sample_rate, targets)


def _render_order(cnt: np.ndarray, kept: dsp.KeptRows) -> tuple[int, np.ndarray, np.ndarray] | None:
    """``(pmax, order, n_row)`` from ``cnt[E, P]``, the kept frames each partial renders (None: nothing).

    At its j-th kept frame an event renders the partials with ``cnt > j``: the first ``n_row`` of its
    partials sorted by ``cnt`` descending (``order``, flat ``[E * pmax]``); ``pmax`` bounds the partials
    any event renders."""
    used = np.flatnonzero(cnt.any(axis=0))
    if not len(used):
        return None
    pmax = int(used[-1]) + 1
    cnt = cnt[:, :pmax]
    ne = len(cnt)
    order = np.argsort(-cnt, axis=1, kind="stable").reshape(-1)
    asc = -np.sort(-cnt, axis=1)[:, ::-1]
    j_row = np.arange(len(kept.idx)) - kept.start[kept.ev]
    big = int(kept.count.max()) + 2
    flat = (asc + (np.arange(ne) * big)[:, None]).reshape(-1)
    n_row = (kept.ev + 1) * pmax - np.searchsorted(flat, j_row + kept.ev * big, side="right")
    return pmax, order, n_row


@dataclass
class _PartialRows:
    """What :func:`_scatter_partials` reads: per kept row ``[R]`` and per (event, partial) ``[E * pmax]``."""

    n: int
    order: np.ndarray
    n_row: np.ndarray
    ev_base: np.ndarray
    pos: np.ndarray
    """fundamental's position in bins"""
    phi0: np.ndarray
    benv: np.ndarray
    decay_t: np.ndarray
    tau: np.ndarray
    rowbase: np.ndarray
    floor: np.ndarray
    ev: np.ndarray
    ratio: np.ndarray
    gain: np.ndarray
    """half amplitude"""
    lam: np.ndarray
    start_phase: np.ndarray
    detuned: np.ndarray
    dhz: np.ndarray | None


def _partial_rows(
    v: np.ndarray,
    offsets: np.ndarray,
    support: np.ndarray,
    sample_rate: int,
    plan: dsp.FramePlan,
    tables: dsp.PartialTables,
    kept: dsp.KeptRows,
    row0: int,
    pmax: int,
    order: np.ndarray,
    n_row: np.ndarray,
) -> _PartialRows:
    """Per kept row (float64 pitch track and running phase, float32 envelope) and per partial tables."""
    n = dsp.frame_size(sample_rate)
    nb = n // 2 + 1
    keep = kept.idx
    jph = dsp.seeded_phases(offsets, len(dsp.JITTER_FREQS_HZ), dsp.JITTER_SALT)
    f_t, f_on = dsp.pitch_track(v, tables.f0, jph, plan, np, np.asarray)
    phi0 = dsp.phase_integral(f_t, f_on, plan, sample_rate, np, np.asarray)[keep]
    benv = dsp.body_envelope(v[plan.ev], plan.tau, support[plan.ev], np)[keep].astype(np.float32)
    tau_k = plan.tau[keep]
    detuned = v[:, _C["detune"]] > 0
    dhz = None
    if detuned.any():
        dhz = dsp.detune_hz(v, tables.f0[:, None] * tables.ratios)[:, :pmax].reshape(-1)
    return _PartialRows(
        n=n,
        order=order,
        n_row=n_row,
        ev_base=kept.ev * pmax,
        pos=f_t[keep] * (n / sample_rate),
        phi0=phi0,
        benv=benv,
        decay_t=np.maximum(tau_k - v[kept.ev, _C["attack"]], 0.0).astype(np.float32),
        tau=tau_k,
        rowbase=(plan.frame[keep] - row0) * (nb + PAD) + PAD,
        floor=(0.5 * dsp.PARTIAL_FLOOR * tables.peak).astype(np.float32)[kept.ev],
        ev=kept.ev,
        ratio=np.ascontiguousarray(tables.ratios[:, :pmax]).reshape(-1),
        gain=(0.5 * tables.gp[:, None] * tables.r[:, :pmax]).astype(np.float32).reshape(-1),
        lam=(-dsp.LN1000 / tables.t60[:, :pmax]).astype(np.float32).reshape(-1),
        start_phase=dsp.seeded_phases(offsets, events.MAX_PARTIALS, dsp.PHASE_SALT)[:, :pmax].reshape(-1),
        detuned=detuned,
        dhz=dhz,
    )


def _scatter_partials(
    p: _PartialRows, ra: int, rb: int, sample_rate: int, targets: list[tuple[np.ndarray, Any]]
) -> None:
    """Finish the partial-frames of kept rows ``[ra, rb)`` and add their kernel taps into ``targets``."""
    n = p.n
    fmax = dsp.f_max(sample_rate)
    counts = p.n_row[ra:rb]
    row = np.repeat(np.arange(ra, rb), counts)
    pos = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
    ek = p.ev_base[row]
    ek += p.order[ek + pos]
    rk = p.ratio[ek]
    x = rk * p.pos[row]
    amp = p.decay_t[row] * p.lam[ek]
    np.exp(amp, out=amp)
    amp *= p.gain[ek]
    amp *= p.benv[row]
    top = np.flatnonzero(x > (1.0 - dsp.TAPER_FRACTION) * fmax * (n / sample_rate))
    if len(top):
        amp[top] *= dsp.taper(x[top] * (sample_rate / n), fmax).astype(np.float32)
    if p.dhz is not None:
        sel = np.flatnonzero(p.detuned[p.ev[row]])
        amp[sel] *= np.cos(math.pi * p.dhz[ek[sel]] * p.tau[row[sel]]).astype(np.float32)
    amp *= (np.abs(amp) if p.dhz is not None else amp) > p.floor[row]
    two_pi = 2.0 * math.pi
    ph = rk * p.phi0[row]
    ph -= two_pi * np.floor(ph * (1.0 / two_pi))  # = fmod(ph, 2π) for ph >= 0, without its slow path
    ph += p.start_phase[ek]
    ph32 = ph.astype(np.float32)
    coef = np.empty(len(amp), dtype=np.complex64)
    np.multiply(amp, np.cos(ph32), out=coef.real)
    np.multiply(amp, np.sin(ph32), out=coef.imag)
    fl = np.floor(x)
    ridx = np.rint((x - fl) * dsp.KERNEL_TABLE_RES).astype(np.intp)
    kern = np.take(_kernel_table32(n), ridx, axis=1)  # [2L, B]
    # taps above N/2 only occur for partials above f_max (amplitude 0): keep them inside the row
    fli = np.minimum(fl.astype(np.int64), n // 2 - dsp.KERNEL_HALF_WIDTH)
    idx = fli + dsp.kernel_taps()[:, None]  # [2L, B]
    idx += p.rowbase[row]
    flat_idx = idx.reshape(-1)
    vals = np.empty(kern.shape, dtype=np.complex64)
    for target, g in targets:
        np.multiply(kern, coef if g is None else coef * g[row], out=vals)
        np.add.at(target, flat_idx, vals.reshape(-1))


BLOCK_CELLS = 65536
"""Noise cells per block in :func:`add_noise` (temporaries of 192 kB: they stay in the core's cache)."""


MID, SIDE = "mid", "side"
"""Stereo noise is accumulated as mid (``(gL + gR) / 2``) and side (``(gL - gR) / 2``) slots."""


def noise_slot(name: str) -> str:
    """Accumulator slot that holds the unsmoothed noise spectra of output slot ``name``."""
    return "~" + name


def add_noise(
    v: np.ndarray,
    times_s: np.ndarray,
    offsets: np.ndarray,
    support: np.ndarray,
    sample_rate: int,
    m_lo: int,
    m_hi: int,
    row0: int,
    gains: Gains,
    acc: dict[str, np.ndarray],
) -> None:
    """Add the events' noise parts over frames ``[m_lo, m_hi)`` into the noise accumulators
    (``acc[noise_slot(name)]``, row = frame - row0), *before* the Hann bin smoothing.

    The numpy twin of :func:`dsp.select_noise` + :func:`dsp.noise_values`: each event's noise is a dense
    (frames × band bins) rectangle, so it is built with an outer product and a strided view of the noise
    table and added as a slice — no scatter.  The Hann smoothing along the bins (:func:`dsp.hann_smooth`)
    is linear, so it is applied once per frame to the sum of all events
    (:func:`dsp.hann_smooth_folded_into`) rather than to every event: the noise of about 15 events overlaps
    any cell of a real encode.
    """
    n = dsp.frame_size(sample_rate)
    nb = n // 2 + 1
    sup, lo_bin, width = dsp.noise_ranges(v, support, sample_rate)
    plan = dsp.plan_frames(times_s, sup, sample_rate, m_lo, m_hi, from_onset=False)
    ne = len(v)
    rows = np.bincount(plan.ev, minlength=ne)
    has = np.flatnonzero((rows > 0) & (width > 0))
    if not len(has):
        return
    first = np.cumsum(rows) - rows
    # the 1/4 of the Hann bin kernel [1/4, 1/2, 1/4] is folded into the scale (dsp.hann_smooth_folded_into)
    scale = 0.25 * dsp.noise_scale(v, sample_rate, np)
    env = dsp.noise_envelope(v[plan.ev], plan.tau, support[plan.ev], np)
    bands = dsp.noise_band_bins(v[has], sample_rate, np, np.asarray).astype(np.float32)  # [len(has), N/2+1]
    # per (slot, event) row gain of the envelope: scale · env · channel gain, float32
    row_gain = (scale[plan.ev] * env).astype(np.float32)
    # complex64 slots and table as float32 (re, im) pairs: every operation below is a plain float32 loop
    targets = [(acc[noise_slot(name)].view(np.float32), g) for name, g in gains]
    table = _noise_table64()
    table_f = table.view(np.float32)
    size = table.shape[0]
    q_buf = np.empty(2 * (BLOCK_CELLS + nb), dtype=np.float32)
    g_buf = np.empty_like(q_buf)
    for i, e in enumerate(has.tolist()):
        s0, n_rows, lo, w = int(first[e]), int(rows[e]), int(lo_bin[e]), int(width[e])
        band2 = np.repeat(bands[i, lo : lo + w], 2)  # [2w]: the same gain on re and im
        step = max(1, BLOCK_CELLS // w)
        # blocks of rows small enough that the temporaries stay in cache across the targets
        for b0 in range(0, n_rows, step):
            nr = min(step, n_rows - b0)
            start = (int(offsets[e]) + int(plan.local[s0 + b0]) * nb + lo) & dsp.TABLE_MASK
            if start + nr * nb <= size:
                noise = table_f[2 * start : 2 * (start + nr * nb)].reshape(nr, 2 * nb)[:, : 2 * w]
            else:
                idx = (start + np.arange(nr)[:, None] * nb + np.arange(w)[None, :]) & dsp.TABLE_MASK
                noise = table[idx].view(np.float32)
            q = q_buf[: 2 * nr * w].reshape(nr, 2 * w)
            np.multiply.outer(row_gain[s0 + b0 : s0 + b0 + nr], band2, out=q)
            q *= noise
            r0 = int(plan.frame[s0 + b0]) - row0
            for target, g in targets:
                dst = target[r0 : r0 + nr, 2 * (lo + PAD) : 2 * (lo + w + PAD)]
                if g is None:
                    dst += q
                elif g[e] != 0.0:
                    qg = g_buf[: 2 * nr * w].reshape(nr, 2 * w)
                    np.multiply(q, g[e], out=qg)
                    dst += qg


class StreamRenderer:
    """Overlap-add accumulator on the absolute frame grid; output covers ``[start_sample, n_samples_total)``.

    ``push`` renders events (whole support at once) into pending frames and returns the samples no later
    event can change: later events must start at or after ``safe_until_s``.  ``finish`` returns the rest.
    Memory holds only frames/samples within about ``MAX_SUPPORT_S + ROOM_TAIL_S`` of the last push.
    ``threads`` > 1 splits each push's events over that many threads, each with its own accumulators
    (numpy releases the GIL in its array loops), and inverse-FFTs the channels in parallel; the result
    equals the single-threaded one up to float32 summation order (~1e-7).
    """

    def __init__(
        self, sample_rate: int, channels: int, n_samples_total: int, start_sample: int = 0, threads: int = 1
    ) -> None:
        dsp.check_stream(channels, n_samples_total, start_sample)
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
        # first frame not yet turned into audio (a seek also renders the room's input up to ROOM_TAIL_S
        # before the start: its tail reaches in); frames >= _m_end cannot reach the output
        self._m_done, self._m_end = dsp.frame_range(
            self.start_sample, self.n_samples_total, self.sample_rate, room_lead=True
        )
        # slot -> complex64[cap, PAD + nb]; row _base holds frame _m_done (rows before it are spent)
        self._acc: dict[str, np.ndarray] = {}
        self._cap = 0
        self._base = 0
        self._slot_end: dict[str, int] = {}  # slot -> first frame after everything written to it
        self._noise_bins: dict[str, tuple[int, int]] = {}  # noise slot -> bins [lo, hi) it may hold
        self._out = np.zeros((channels, 0), dtype=np.float32)  # samples from (_m_done - 2) * hop
        self._wet: dict[tuple[float, float], np.ndarray] = {}  # room -> mono wet samples, same origin
        self._spectra: dict[tuple[tuple[float, float], int], np.ndarray] = {}
        self._voice: VoiceStream | None = None  # once a voice knot arrives

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
        v, t, s = dsp.check_inputs(vectors, times_s, seeds)
        room = dsp.parse_room(side)
        self._voice, notes = take_voice(self._voice, v, t, self.sample_rate, self.channels)
        v, t, s = v[notes], t[notes], s[notes]
        if len(v):
            self._add_events(v, t, s, room)
        m_safe = dsp.safe_frame(safe_until_s, self.n_samples_total, self.sample_rate, self._hop)
        m_safe = self._m_end if m_safe is None else min(m_safe, self._m_end)
        if self._voice is not None:  # the voice after its last knot waits for the next one
            final = self._voice.final_until(safe_until_s, self.n_samples_total)
            m_safe = min(m_safe, final // self._hop + dsp.HALF)
        return self._finalise(m_safe)

    def finish(self) -> np.ndarray:
        """Return the remaining audio up to ``n_samples_total``, ``float32[C, k]``."""
        out = self._finalise(self._m_end)
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        return out

    # ------------------------------------------------------------------------------------------ internals

    def _map(self, fn: Any, items: list[Any]) -> list[Any]:
        """``[fn(x) for x in items]``, in the thread pool when there is more than one item."""
        if len(items) < 2 or self._threads < 2:
            return [fn(x) for x in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads)
        return list(self._pool.map(fn, items))

    def _ensure(self, rows: int, names: list[str]) -> None:
        """Make the slots ``names`` hold at least ``rows`` rows from ``_base`` (compact or grow)."""
        if self._base + rows > self._cap:
            live = self._cap - self._base
            cap = self._cap if rows <= self._cap else max(rows + rows // 2, 2 * live)
            for name, a in list(self._acc.items()):
                if cap == self._cap:
                    a[:live] = a[self._base :]
                    a[live:] = 0
                else:
                    new = np.zeros((cap, self._nb + PAD), dtype=np.complex64)
                    new[:live] = a[self._base :]
                    self._acc[name] = new
            self._cap, self._base = cap, 0
        for name in names:
            if name not in self._acc:
                self._acc[name] = np.zeros((self._cap, self._nb + PAD), dtype=np.complex64)

    def _add_events(
        self, v: np.ndarray, t: np.ndarray, s: np.ndarray, room: tuple[float, float] | None
    ) -> None:
        sr = self.sample_rate
        support = events.support_s(v)
        offsets = dsp.seed_offsets(s)
        m_lo, m_hi = self._m_done, self._m_end
        first, last = dsp.event_frames(t, support, sr)
        m_top = min(int(last.max()) + 1, m_hi)
        if m_top <= m_lo:
            return
        gains: Gains = []
        if self.channels == 1:
            gains.append(("0", None))
        else:
            gl, gr = dsp.pan_gains(v, np)
            gains += [("0", gl.astype(np.float32)), ("1", gr.astype(np.float32))]
        wet = v[:, _C["wet"]]
        if room is not None and np.any(wet > 0):
            gains.append((f"wet{room}", wet.astype(np.float32)))
            self._wet.setdefault(room, np.zeros(0))
        # noise goes to mid/side slots in stereo: a centred event (half of a real encode's noise) then
        # costs one accumulation instead of two; left = mid + side, right = mid - side
        noise_gains = [(name, g) for name, g in gains if name not in ("0", "1")]
        if self.channels == 2:
            gl, gr = gains[0][1], gains[1][1]
            assert gl is not None and gr is not None
            side_gain = 0.5 * (gl - gr)
            side_gain[np.abs(side_gain) < 1e-6 * np.abs(gl + gr)] = 0.0
            noise_gains = [(MID, 0.5 * (gl + gr)), (SIDE, side_gain), *noise_gains]
        else:
            noise_gains = gains
        names = [name for name, _ in gains]
        self._ensure(m_top - m_lo, names + [noise_slot(name) for name, _ in noise_gains])
        _, lo_bin, width = dsp.noise_ranges(v, support, sr)
        if np.any(width > 0):  # the bins the noise slots may now hold (the Hann smoothing skips the rest)
            lo, hi = int(lo_bin[width > 0].min()), int((lo_bin + width)[width > 0].max())
            for name, _ in noise_gains:
                old = self._noise_bins.get(noise_slot(name), (lo, hi))
                self._noise_bins[noise_slot(name)] = (min(old[0], lo), max(old[1], hi))
        for name in names:
            self._slot_end[name] = max(self._slot_end.get(name, m_top), m_top)
        row0 = m_lo - self._base

        first = np.maximum(first, m_lo)
        last = np.minimum(last, m_top - 1)

        def work(span: tuple[int, int]) -> None:
            a, b = span
            sel = np.flatnonzero((first < b) & (last >= a))
            if len(sel):
                args = (v[sel], t[sel], offsets[sel], support[sel], sr, a, b, row0)
                g = [(name, None if gain is None else gain[sel]) for name, gain in gains]
                add_partials(*args, g, self._acc)
                gn = [(name, None if gain is None else gain[sel]) for name, gain in noise_gains]
                add_noise(*args, gn, self._acc)

        # threads take disjoint frame ranges (disjoint accumulator rows) with about equal work
        bounds = [m_lo, m_top]
        if self._threads > 1:
            cum = np.cumsum(frame_load(v, t, support, sr, m_lo, m_top))
            parts = min(self._threads, max(1, int(cum[-1]) // 20000))
            cuts = m_lo + np.searchsorted(cum, cum[-1] * np.arange(1, parts) / parts)
            bounds = [m_lo, *cuts.tolist(), m_top]
        self._map(work, [(a, b) for a, b in itertools.pairwise(bounds) if b > a])

    def _frames_to_audio(self, name: str, rows: int) -> np.ndarray:
        """OLA audio ``float32[(k+3)·hop]`` of the first ``k <= rows`` pending frames of one slot that can
        hold anything (later ones are silent).  Works in place on rows that are spent afterwards."""
        used = max(0, min(rows, self._slot_end.get(name, 0) - self._m_done, self._cap - self._base))
        if not used:
            return np.zeros(0, dtype=np.float32)
        spec = self._acc[name][self._base : self._base + used]
        noise = self._noise_rows(name, self._base, self._base + used)
        if noise is not None:
            dsp.hann_smooth_folded_into(spec, noise, PAD, self._noise_span(name))
        # fold bins below 0 back as conjugates; bin 0 is real (its image is itself)
        for d in range(1, PAD + 1):
            spec[:, PAD + d] += np.conj(spec[:, PAD - d])
        spec[:, PAD] = 2.0 * spec[:, PAD].real
        return dsp.overlap_add(np.fft.irfft(spec[:, PAD:], self._n, axis=-1), np)

    def _noise_slots(self, name: str) -> list[str]:
        """The noise slots output slot ``name`` reads: mid and side for left/right in stereo, else its own."""
        if name in ("0", "1") and self.channels == 2:
            return [noise_slot(MID), noise_slot(SIDE)]
        return [noise_slot(name)]

    def _noise_span(self, name: str) -> tuple[int, int] | None:
        """Bins ``[lo, hi)`` that output slot ``name``'s noise may hold (None: all)."""
        spans = [self._noise_bins[s] for s in self._noise_slots(name) if s in self._noise_bins]
        if not spans:
            return None
        return min(lo for lo, _ in spans), max(hi for _, hi in spans)

    def _noise_rows(self, name: str, a: int, b: int) -> np.ndarray | None:
        """Unsmoothed noise of output slot ``name`` in accumulator rows ``[a, b)`` (None: no noise slot)."""
        slots = [self._acc.get(s) for s in self._noise_slots(name)]
        if len(slots) == 2:
            mid, side = slots
            if mid is None or side is None:
                return None
            return mid[a:b] + side[a:b] if name == "0" else mid[a:b] - side[a:b]
        noise = slots[0]
        return None if noise is None else noise[a:b]

    def _finalise(self, m_safe: int) -> np.ndarray:
        rows = m_safe - self._m_done
        if rows <= 0:
            return np.zeros((self.channels, 0), dtype=np.float32)
        hop = self._hop
        n_final = rows * hop
        need = (rows + dsp.OVERLAP - 1) * hop
        self._grow_out(need)
        live = [name for name, end in self._slot_end.items() if end > self._m_done]
        audio = dict(zip(live, self._map(lambda name: self._frames_to_audio(name, rows), live), strict=True))
        for c in range(self.channels):
            if str(c) in audio:
                a = audio[str(c)]
                self._out[c, : a.shape[0]] += a
        for room in list(self._wet):
            name = f"wet{room}"
            wet = self._wet[room]
            if wet.shape[0] < need:
                wet = np.pad(wet, (0, need - wet.shape[0]))
            if name in audio:
                a = audio[name]
                wet[: a.shape[0]] += a
            self._convolve_room(room, wet[:n_final])
            self._wet[room] = wet[n_final:]
            if not np.any(self._wet[room]) and self._slot_end.get(name, 0) <= m_safe:
                del self._wet[room]
        self._base = min(self._base + rows, self._cap)
        for name in [k for k, end in self._slot_end.items() if end <= m_safe]:
            del self._slot_end[name]
            self._acc.pop(name, None)
            self._acc.pop(noise_slot(name), None)
            self._noise_bins.pop(noise_slot(name), None)
            if name == "0" and self.channels == 2:
                for slot in (noise_slot(MID), noise_slot(SIDE)):
                    self._acc.pop(slot, None)
                    self._noise_bins.pop(slot, None)
        first = (self._m_done - dsp.HALF) * hop
        if self._voice is not None:
            a, b = max(first, self.start_sample), min(first + n_final, self.n_samples_total)
            voice = self._voice.render(a, b)
            if voice is not None:
                self._out[:, a - first : b - first] += voice
        block = self._out[:, :n_final]
        self._out = self._out[:, n_final:]
        self._m_done = m_safe
        lo = max(self.start_sample - first, 0)
        hi = min(self.n_samples_total - first, n_final)
        if hi <= lo:
            return np.zeros((self.channels, 0), dtype=np.float32)
        out = block[:, lo:hi].copy()
        return np.nan_to_num(out, copy=False)

    def _grow_out(self, length: int) -> None:
        """Make the pending output ``self._out`` at least ``length`` samples long (zeros appended)."""
        if self._out.shape[1] < length:
            new = np.zeros((self.channels, length + length // 4), dtype=np.float32)
            new[:, : self._out.shape[1]] = self._out
            self._out = new

    def _convolve_room(self, room: tuple[float, float], seg: np.ndarray) -> None:
        """Add ``seg`` (mono wet samples at the output origin) convolved with the room's IR to the output."""
        if not np.any(seg):
            return
        ir = dsp.room_ir(room[0], room[1], self.sample_rate, self.channels)
        length = seg.shape[0] + ir.shape[1] - 1
        nfft = dsp.fft_size(length)
        spec = self._spectra.get((room, nfft))
        if spec is None:
            spec = np.fft.rfft(ir, nfft, axis=-1)
            self._spectra = {(room, nfft): spec}
        y = dsp.fft_convolve(seg, spec, nfft, length, np)
        self._grow_out(length)
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
    v, t, s = dsp.check_inputs(vectors, times_s, seeds)
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
