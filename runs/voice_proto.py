"""Prototype for #18: how good can a parametric voice event be, and at what rate?  Research, not the codec.

``python runs/voice_proto.py WAV... [--knot-ms 30] [--ceps 16] [--quant 1] [--level-step 2]``

Analysis at 5 ms (16 kHz mono): f0 by YIN's CMNDF with a Viterbi track over its minima and an unvoiced
state (pYIN-like; 60-800 Hz), the spectral envelope by LPC (order 18, pre-emphasised; or ``--envelope
cheaptrick``, a pitch-adaptive spectrum smoothed and liftered after Morise 2015) sampled on a mel grid and
kept as ``--ceps`` DCT coefficients (absolute frequency: formants do not move with f0), the frame level,
and a voicing strength in 4 bands (normalised autocorrelation at the pitch period, the window's taper
undone).  The parameters are kept every ``--knot-ms`` (a voice event's start/end values) and linearly
interpolated between knots.  Synthesis: harmonics of the interpolated f0 with amplitudes from the envelope
times the band voicing, plus STFT-shaped noise for the unvoiced share, each scaled to the frame's power.
With ``--quant 1`` every parameter is uniformly quantised and the rate is the empirical entropy of the code
deltas between knots (a stand-in for the container's entropy coder; silence is not skipped).  Prints
ViSQOL (speech, lattice) and PESQ-WB per file (bench.metrics) and the means.

Tuned on training speech only: 8 clips of 9-10 s cut from Debian fillets-ng-data-nl (GPL-2), 16 kHz; the
voice dev set (fillets-ng-data-cs) measured once per version.  Measured 2026-12-07 (Codec2 by the bench's
recipe: 8 kHz s16, c2enc/c2dec, aligned), ViSQOL / PESQ-WB:

| set | coder | kbps | Codec2, or the first version (YIN) | this version, LPC | this version, cheaptrick |
|---|---|---|---|---|---|
| nl (tuning) | Codec2 1200 | 1.20 | 1.11 / 1.30 | | |
| nl | Codec2 3200 | 3.20 | 1.28 / 1.35 | | |
| nl | 5 ms knots, unquantised (the model's ceiling) | - | 2.71 / 1.40 | 2.80 / 1.70 | 2.31 / 1.85 |
| nl | 20 ms knots | 2.7-3.2 | 2.50 / 1.35 | 2.55 / 1.69 | 2.13 / 1.79 |
| nl | 30 ms knots | 1.9-2.2 | 2.22 / 1.33 | **2.29 / 1.63** (1.93 kbps) | 2.03 / 1.71 (2.23 kbps) |
| cs: the voice dev set, 20 clips | Codec2 1200 | 1.20 | 1.30 / 1.35 | | |
| cs | 30 ms knots | 1.9-2.2 | 1.61 / 1.25 | **1.72 / 1.44** (1.93 kbps) | 1.55 / 1.48 (2.16 kbps) |

What moved PESQ-WB (nl, 5 ms knots, unquantised), found by swapping in WORLD's parts (pyworld 0.3.5 in a
side venv: harvest f0, CheapTrick envelope coded to 16 dims, D4C aperiodicity): WORLD itself reaches
3.98 / 2.46 (uncoded) and 2.70 / 2.16 (envelope coded to 16 dims), so a parametric voice *can* pass Opus
6's PESQ-WB (2.14 on the dev set).  Our synthesis with WORLD's three analyses: 2.60 / 2.18.  With WORLD's
aperiodicity alone: 1.44 -> 1.85; its envelope alone: -> 1.47; its f0 alone: 1.39 -> 1.44.  YIN with a
fixed threshold called 44 % of frames voiced against harvest's 74 %, and 10 % of the frames both call
voiced differ by more than a semitone.  Hence this version: the taper-corrected band voicing (1.39 ->
1.56), the tracked f0 (voicing agrees with harvest on 79 % of frames) and the CheapTrick option.  What is
left to the ≤ 4 kbps bar: aperiodicity as good as D4C's, and f0 as good as harvest's.  Minimum-phase
harmonic phases changed nothing (1.393 -> 1.388).  pyworld itself is no dependency to take: an sdist only
(a C++ build on install) that imports the deprecated ``pkg_resources``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy.fft import dct, idct, irfft, rfft
from scipy.linalg import solve_toeplitz

SR = 16000
HOP = 80  # 5 ms
F0_MIN, F0_MAX = 60.0, 800.0
N_MEL = 40
F_LO, F_HI = 60.0, 7800.0
LPC_ORDER = 18
BANDS = (0.0, 1000.0, 2000.0, 4000.0, 8000.0)


def frames(x: np.ndarray, n: int, hop: int) -> np.ndarray:
    """``float[M, n]`` frames centred on ``m * hop`` (zero-padded)."""
    pad = np.pad(x, (n // 2, n))
    m = len(x) // hop + 1
    idx = np.arange(m)[:, None] * hop + np.arange(n)[None, :]
    return pad[idx]


def yin(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(f0 Hz [M], aperiodicity [M])`` per 5 ms frame; f0 0 where unvoiced."""
    n = 640
    fr = frames(x, n, HOP)
    tau_max = int(SR / F0_MIN)
    w = n - tau_max
    # difference function d(tau) = r0 + r_tau_energy - 2 acf, via FFT
    spec = rfft(fr, 2 * n, axis=1)
    acf = irfft(spec * np.conj(rfft(fr[:, :w], 2 * n, axis=1)), 2 * n, axis=1)[:, : tau_max + 1]
    sq = np.cumsum(np.pad(fr**2, ((0, 0), (1, 0))), axis=1)
    e0 = sq[:, w] - sq[:, 0]
    etau = sq[:, w : w + tau_max + 1] - sq[:, : tau_max + 1]
    d = e0[:, None] + etau - 2 * acf
    d[:, 0] = 0
    cm = d[:, 1:] * np.arange(1, tau_max + 1) / np.maximum(np.cumsum(d[:, 1:], axis=1), 1e-12)
    cm = np.concatenate([np.ones((len(cm), 1)), cm], axis=1)
    global _CM
    _CM = cm
    lo = int(SR / F0_MAX)
    f0 = np.zeros(len(cm))
    ap = np.ones(len(cm))
    for i, row in enumerate(cm):
        seg = row[lo:]
        below = np.flatnonzero(seg < 0.15)
        if len(below):
            j = below[0]
            while j + 1 < len(seg) and seg[j + 1] < seg[j]:
                j += 1
        else:
            j = int(np.argmin(seg))
        t = j + lo
        if 1 <= t < tau_max:
            a, b, c = row[t - 1], row[t], row[t + 1]
            den = a - 2 * b + c
            off = 0.5 * (a - c) / den if abs(den) > 1e-12 else 0.0
            tt = t + float(np.clip(off, -1, 1))
        else:
            tt = float(t)
        ap[i] = row[t]
        f0[i] = SR / tt
    return f0, ap


_CM = np.zeros(0)


def track_f0(cm: np.ndarray, power: np.ndarray, n_cand: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """pYIN-lite: candidates are the CMNDF's local minima below 0.7 (refined by a parabola), plus an
    unvoiced state; a Viterbi path minimises CMNDF cost + jump cost (per semitone) + voicing switches."""
    lo = int(SR / F0_MAX)
    m = cm.shape[0]
    cand = np.full((m, n_cand), np.nan)
    cost = np.full((m, n_cand + 1), np.inf)
    for i in range(m):
        row = cm[i]
        mins = (
            np.flatnonzero(
                (row[lo:-1] < row[lo - 1 : -2]) & (row[lo:-1] <= row[lo + 1 :]) & (row[lo:-1] < 0.7)
            )
            + lo
        )
        if len(mins):
            mins = mins[np.argsort(row[mins])[:n_cand]]
            a, b, c = row[mins - 1], row[mins], row[mins + 1]
            den = a - 2 * b + c
            off = np.where(np.abs(den) > 1e-12, 0.5 * (a - c) / np.where(den == 0, 1, den), 0.0)
            tau = mins + np.clip(off, -1, 1)
            cand[i, : len(mins)] = 12 * np.log2(SR / tau / 440.0)
            # prefer the shortest period among near-equal minima (octave-down guard): small bias by tau
            cost[i, : len(mins)] = b + 0.0002 * mins
        quiet = power[i] < 1e-7
        cost[i, n_cand] = 0.6 if not quiet else -1.0
    jump, switch = 0.05, 0.3
    acc = cost[0].copy()
    back = np.zeros((m, n_cand + 1), np.int64)
    for i in range(1, m):
        prev, cur = cand[i - 1], cand[i]
        trans = np.full((n_cand + 1, n_cand + 1), np.inf)  # [from, to]
        d = np.abs(prev[:, None] - cur[None, :])
        trans[:n_cand, :n_cand] = np.where(np.isnan(d), np.inf, jump * np.minimum(d, 24) ** 1.0)
        trans[:n_cand, n_cand] = switch
        trans[n_cand, :n_cand] = switch
        trans[n_cand, n_cand] = 0.0
        tot = acc[:, None] + trans
        back[i] = np.argmin(tot, axis=0)
        acc = tot[back[i], np.arange(n_cand + 1)] + cost[i]
    path = np.zeros(m, np.int64)
    path[-1] = int(np.argmin(acc))
    for i in range(m - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    voiced = path < n_cand
    semis = np.where(voiced, cand[np.arange(m), np.minimum(path, n_cand - 1)], np.nan)
    f0 = np.where(voiced, 440.0 * 2 ** (np.nan_to_num(semis) / 12), 0.0)
    return f0, voiced


def lpc_env(x: np.ndarray, mel_hz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(log10 power envelope on the mel grid [M, N_MEL], frame power [M])``."""
    n = 400
    pre = np.append(x[0], x[1:] - 0.9 * x[:-1])
    fr = frames(pre, n, HOP) * np.hanning(n)
    raw = frames(x, n, HOP) * np.hanning(n)
    power = (raw**2).mean(axis=1) / np.mean(np.hanning(n) ** 2)
    nfft = 2048
    ac = irfft(np.abs(rfft(fr, nfft, axis=1)) ** 2, nfft, axis=1)[:, : LPC_ORDER + 1]
    ac[:, 0] *= 1.0 + 1e-4
    ac[:, 0] += 1e-10
    om = 2 * np.pi * mel_hz / SR
    zk = np.exp(-1j * np.outer(np.arange(LPC_ORDER + 1), om))
    env = np.empty((len(fr), len(mel_hz)))
    deemph = np.abs(1 - 0.9 * np.exp(-1j * om)) ** 2
    for i in range(len(fr)):
        a = solve_toeplitz(ac[i, :-1], ac[i, 1:])
        coef = np.concatenate([[1.0], -a])
        err = max(ac[i, 0] - np.dot(a, ac[i, 1:]), 1e-12)
        env[i] = err / np.maximum(np.abs(coef @ zk) ** 2, 1e-12) / deemph
    return np.log10(np.maximum(env, 1e-20)), power


def cheaptrick(x: np.ndarray, f0: np.ndarray, voiced: np.ndarray, mel_hz: np.ndarray) -> np.ndarray:
    """log10 power envelope on the mel grid ``[M, N_MEL]``: a pitch-adaptive (3-period Hann) spectrum,
    smoothed over 2/3 f0 and liftered (CheapTrick's recipe, Morise 2015)."""
    nfft = 2048
    freqs = np.fft.rfftfreq(nfft, 1 / SR)
    q = np.arange(nfft) / SR
    q[nfft // 2 + 1 :] = q[1 : nfft // 2][::-1]
    out = np.empty((len(f0), len(mel_hz)))
    xp = np.pad(x, (nfft, nfft))
    for i in range(len(f0)):
        f = float(f0[i]) if voiced[i] else 500.0
        half = round(1.5 * SR / f)
        w = np.hanning(2 * half + 1)
        w /= np.sqrt((w**2).sum())
        c = i * HOP + nfft
        seg = xp[c - half : c + half + 1] * w
        p = np.abs(rfft(seg, nfft)) ** 2
        # linear smoothing over 2/3 f0
        width = 2.0 * f / 3.0
        k = max(1, round(width / (SR / nfft)))
        cs = np.cumsum(np.concatenate([p[k:0:-1], p, p[-2 : -k - 2 : -1]]))
        sm = (cs[2 * k :] - cs[: -2 * k])[: len(p)] / (2 * k)
        sm = np.maximum(sm, 1e-20)
        cep = np.fft.irfft(np.log(sm), nfft)
        with np.errstate(invalid="ignore", divide="ignore"):
            lift = np.where(q > 0, np.sin(np.pi * f * q) / (np.pi * f * q), 1.0)
        lift *= 1.3 - 0.3 * np.cos(2 * np.pi * q * f)  # (1 - 2 q1) + 2 q1 cos, q1 = -0.15
        env = np.fft.rfft(cep * lift, nfft).real
        out[i] = np.interp(mel_hz, freqs, env) / np.log(10)
    return out


def band_voicing(x: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """``[M, 4]`` normalised autocorrelation at the pitch period in 4 bands (0..1)."""
    n = 480
    spec = rfft(frames(x, n, HOP) * np.hanning(n), 2 * n, axis=1)
    freqs = np.fft.rfftfreq(2 * n, 1 / SR)
    out = np.zeros((len(f0), len(BANDS) - 1))
    acw = np.correlate(np.hanning(n), np.hanning(n), "full")[n - 1 :]
    for b in range(len(BANDS) - 1):
        mask = (freqs >= BANDS[b]) & (freqs < BANDS[b + 1])
        ac = irfft(np.abs(spec * mask) ** 2, 2 * n, axis=1)
        lag = np.clip(np.rint(SR / np.maximum(f0, 1.0)).astype(int), 1, n - 1)
        r = ac[np.arange(len(f0)), lag] / np.maximum(ac[:, 0], 1e-12)
        r = r * acw[0] / acw[lag]  # undo the window's taper at that lag
        out[:, b] = np.clip(r, 0, 1)
    return out


def band_idx(f: np.ndarray) -> np.ndarray:
    """Voicing band of each frequency (Hz)."""
    return np.clip(np.searchsorted(BANDS, f, side="right") - 1, 0, len(BANDS) - 2)


def mel_grid() -> np.ndarray:
    m = np.linspace(2595 * np.log10(1 + F_LO / 700), 2595 * np.log10(1 + F_HI / 700), N_MEL)
    return 700 * (10 ** (m / 2595) - 1)


def analyse(x: np.ndarray, n_ceps: int, envelope: str = "lpc") -> dict[str, np.ndarray]:
    mel_hz = mel_grid()
    f0, ap = yin(x)
    logenv, power = lpc_env(x, mel_hz)
    m = min(len(f0), len(power))
    f0, ap, logenv, power = f0[:m], ap[:m], logenv[:m], power[:m]
    voiced = (ap < 0.3) & (power > 1e-7)
    tf0, voiced = track_f0(_CM[:m], power)
    f0 = np.where(voiced, tf0, f0)
    vb = band_voicing(x, f0)[:m]
    if envelope == "cheaptrick":
        logenv = cheaptrick(x, f0, voiced, mel_hz)
    vb[~voiced] = 0.0
    # fill f0 through unvoiced frames (keeps the interpolation smooth)
    idx = np.flatnonzero(voiced)
    if len(idx):
        f0 = np.interp(np.arange(m), idx, f0[idx])
    else:
        f0[:] = 120.0
    # envelope shape (mean removed: the level carries the power)
    shape = logenv - logenv.mean(axis=1, keepdims=True)
    ceps = dct(shape, type=2, norm="ortho", axis=1)[:, :n_ceps]
    level = 10 * np.log10(np.maximum(power, 1e-10))
    return {"f0": f0, "level": level, "ceps": ceps, "vb": vb}


def knots(p: dict[str, np.ndarray], every: int) -> dict[str, np.ndarray]:
    return {k: v[::every] for k, v in p.items()}


def quantise(
    k: dict[str, np.ndarray], level_step: float = 2.0, ceps_step: float = 0.12
) -> tuple[dict[str, np.ndarray], float]:
    """Uniform quantisers (f0 0.5 semitone, level ``level_step`` dB, cepstra ``ceps_step`` log10 units
    rising 15 % per coefficient, band voicing 1/3); bits per knot as the entropy of the code deltas."""
    steps = {"f0": 0.5, "level": level_step, "ceps": ceps_step, "vb": 0.34}
    out, bits = {}, 0.0
    for name, v in k.items():
        v2 = v if v.ndim == 2 else v[:, None]
        if name == "f0":
            v2 = 12 * np.log2(np.maximum(v2, 1.0) / 440.0)
        step = np.full(v2.shape[1], steps[name])
        if name == "ceps":
            step = steps[name] * (1 + 0.15 * np.arange(v2.shape[1]))
        code = np.rint(v2 / step).astype(int)
        for j in range(code.shape[1]):
            d = np.diff(code[:, j], prepend=0)
            _, c = np.unique(d, return_counts=True)
            pr = c / c.sum()
            bits += float(-(pr * np.log2(pr)).sum())
        q = code * step
        if name == "f0":
            q = 440.0 * 2 ** (q / 12)
        out[name] = q if v.ndim == 2 else q[:, 0]
    return out, bits


def upsample(k: dict[str, np.ndarray], every: int, m: int) -> dict[str, np.ndarray]:
    t_k = np.arange(len(k["f0"])) * every
    t = np.arange(m)
    out = {}
    for name, v in k.items():
        if name == "f0":
            out[name] = np.exp(np.interp(t, t_k, np.log(v)))
        elif v.ndim == 1:
            out[name] = np.interp(t, t_k, v)
        else:
            out[name] = np.stack([np.interp(t, t_k, v[:, j]) for j in range(v.shape[1])], 1)
    return out


def synth(p: dict[str, np.ndarray], n_samples: int, seed: int = 0) -> np.ndarray:
    mel_hz = mel_grid()
    m = len(p["f0"])
    p = {**p, "vb": np.clip(p["vb"], 0.0, 1.0)}
    shape = idct(np.pad(p["ceps"], ((0, 0), (0, N_MEL - p["ceps"].shape[1]))), type=2, norm="ortho", axis=1)
    power = 10 ** (p["level"] / 10)
    # voiced share of the power per band -> harmonic and noise weights
    t_frame = np.arange(m) * HOP
    t = np.arange(n_samples)
    f0_s = np.interp(t, t_frame, p["f0"])
    phase = 2 * np.pi * np.cumsum(f0_s) / SR
    out = np.zeros(n_samples)
    kmax = int(F_HI / F0_MIN)
    # per-frame harmonic amplitudes
    amps = np.zeros((m, kmax))
    for i in range(m):
        f0 = p["f0"][i]
        kk = np.arange(1, kmax + 1)
        fk = kk * f0
        ok = fk < F_HI
        env = 10 ** np.interp(fk, mel_hz, shape[i])  # relative power density
        vw = p["vb"][i][band_idx(fk)]
        a2 = env * vw * ok
        # envelope density times harmonic spacing: power per harmonic; scale so the sum matches voiced power
        dens = 10 ** np.interp(np.linspace(0, F_HI, 256), mel_hz, shape[i])
        vtot = dens.mean() * F_HI
        a2 = a2 * f0 / max(vtot, 1e-20) * power[i]
        amps[i] = np.sqrt(2 * a2)
    for k0 in range(0, kmax, 16):
        ks = np.arange(k0, min(kmax, k0 + 16))
        a = np.stack([np.interp(t, t_frame, amps[:, j]) for j in ks], 0)
        out += (a * np.cos(np.outer(ks + 1, phase))).sum(axis=0)
    # noise: STFT-shaped white noise for the unvoiced share
    n = 320
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(n_samples + 2 * n)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
    hop = HOP
    freqs = np.fft.rfftfreq(n, 1 / SR)
    y = np.zeros(n_samples + 2 * n)
    norm = np.zeros(n_samples + 2 * n)
    for i in range(m):
        s = i * hop
        seg = noise[s : s + n] * win
        spec = rfft(seg)
        env = 10 ** np.interp(freqs, mel_hz, shape[i])
        uv = 1 - p["vb"][i][band_idx(freqs)]
        g = env * uv
        dens = 10 ** np.interp(np.linspace(0, F_HI, 256), mel_hz, shape[i])
        g = g / max(dens.mean(), 1e-20) * power[i]
        spec *= np.sqrt(g)
        y[s : s + n] += irfft(spec, n) * win
        norm[s : s + n] += win**2
    y = y / np.maximum(norm, 1e-3)
    out += y[n // 2 : n // 2 + n_samples]
    return out.astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("wavs", nargs="+", type=Path)
    ap.add_argument("--knot-ms", type=float, default=20.0)
    ap.add_argument("--ceps", type=int, default=16)
    ap.add_argument("--quant", type=int, default=1)
    ap.add_argument("--envelope", choices=("lpc", "cheaptrick"), default="lpc")
    ap.add_argument("--level-step", type=float, default=2.0)
    ap.add_argument("--ceps-step", type=float, default=0.12)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench import metrics

    every = max(1, round(args.knot_ms / 5.0))
    vq, pe, rates = [], [], []
    for w in args.wavs:
        x, sr = sf.read(w, dtype="float64", always_2d=True)
        x = x.mean(axis=1)
        if sr != SR:
            x = soxr.resample(x, sr, SR)
        p = analyse(x, args.ceps, args.envelope)
        k = knots(p, every)
        bits = 0.0
        if args.quant:
            k, bits = quantise(k, args.level_step, args.ceps_step)
        q = upsample(k, every, len(p["f0"]))
        y = synth(q, len(x))
        rate = bits * (SR / HOP / every) / 1000.0
        v = metrics.visqol(x[None], y[None].astype(np.float64), SR, mode="speech")
        s = metrics.pesq_wb(x[None], y[None].astype(np.float64), SR)
        vq.append(v)
        pe.append(s)
        rates.append(rate)
        if args.out:
            args.out.mkdir(exist_ok=True, parents=True)
            sf.write(args.out / w.name, y, SR)
        print(f"{w.name}: ViSQOL {v:.2f} PESQ-WB {s:.2f} rate {rate:.2f} kbps", flush=True)
    print(
        f"MEAN ViSQOL {np.mean(vq):.3f} PESQ-WB {np.mean(pe):.3f} rate {np.mean(rates):.2f} kbps "
        f"(knot {args.knot_ms} ms, {args.ceps} ceps, quant {args.quant})"
    )


if __name__ == "__main__":
    main()
