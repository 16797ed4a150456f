"""Voice synthesis (#18, in progress): a track of voice knots → audio.  numpy only, no torch.

The planned layout-2 voice event (docs: DEVELOPERS.md "Voice events") is one *knot* of a voice track: f0,
level, a spectral envelope in absolute frequency (:data:`N_CEPS` mel-cepstral coefficients, so formants stay
put when f0 moves) and a voicing strength in each of the :data:`BANDS`.  Between two knots of a track every
value glides linearly; the renderer integrates f0 across the track, so harmonic phases run on without a
seam.  Synthesis: the harmonics of the gliding f0, their amplitudes read off the envelope and weighted by
the band voicing, plus noise shaped by the envelope for the unvoiced share; both are scaled to the knot's
power.  Edits act on the knots: :func:`transpose` moves f0 only, :func:`formant_shift` warps the envelope's
frequency axis only.

Not wired into the container or the encoder yet: ``runs/voice_proto.py`` measures it against Codec2.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.fft import dct, idct, irfft, rfft

SR = 16000
"""Voice analysis and synthesis rate (Hz)."""
HOP = 80
"""Analysis frame step: 5 ms at :data:`SR`."""
N_MEL = 40
"""Points of the envelope's mel grid between :data:`F_LO` and :data:`F_HI`."""
N_CEPS = 16
"""Mel-cepstra kept per knot (DCT terms 1..N_CEPS of the log10 envelope; term 0 is the level)."""
F_LO, F_HI = 60.0, 7800.0
"""Envelope range (Hz); nothing is synthesised above :data:`F_HI`."""
F0_MIN = 60.0
"""Lowest f0 (Hz): bounds the harmonic count."""
BANDS = (0.0, 1000.0, 2000.0, 4000.0, 8000.0)
"""Voicing bands (Hz edges)."""
NOISE_N = 4 * HOP
"""Noise synthesis frame (samples, Hann, hop :data:`HOP`)."""


@dataclass(frozen=True)
class VoiceFrames:
    """A voice track sampled at knots ``t`` (samples at :data:`SR`, increasing): ``f0`` Hz ``[K]``,
    ``level_db`` frame power in dB ``[K]``, ``ceps`` ``[K, N_CEPS]`` (log10 envelope shape, mel-cepstra),
    ``voicing`` ``[K, 4]`` (0..1, the harmonic share of each band's power)."""

    t: np.ndarray
    f0: np.ndarray
    level_db: np.ndarray
    ceps: np.ndarray
    voicing: np.ndarray

    def __len__(self) -> int:
        return len(self.t)

    def take(self, idx: np.ndarray) -> VoiceFrames:
        """The knots ``idx``."""
        return VoiceFrames(self.t[idx], self.f0[idx], self.level_db[idx], self.ceps[idx], self.voicing[idx])


def mel_grid() -> np.ndarray:
    """``float64[N_MEL]``: the envelope's frequencies (Hz), evenly spaced in mel."""
    lo, hi = 2595.0 * np.log10(1.0 + F_LO / 700.0), 2595.0 * np.log10(1.0 + F_HI / 700.0)
    return 700.0 * (10.0 ** (np.linspace(lo, hi, N_MEL) / 2595.0) - 1.0)


def ceps_from_envelope(log_env: np.ndarray) -> np.ndarray:
    """``[..., N_MEL]`` log10 power envelope on :func:`mel_grid` → ``[..., N_CEPS]`` shape coefficients."""
    return dct(log_env, type=2, norm="ortho", axis=-1)[..., 1 : N_CEPS + 1]


def envelope_from_ceps(ceps: np.ndarray) -> np.ndarray:
    """``[..., N_CEPS]`` → ``[..., N_MEL]`` log10 envelope shape (mean 0) on :func:`mel_grid`."""
    full = np.zeros((*ceps.shape[:-1], N_MEL))
    full[..., 1 : ceps.shape[-1] + 1] = ceps
    return idct(full, type=2, norm="ortho", axis=-1)


def band_of(freqs: np.ndarray) -> np.ndarray:
    """The voicing band (index into :data:`BANDS`) of each frequency (Hz)."""
    return np.clip(np.searchsorted(BANDS, freqs, side="right") - 1, 0, len(BANDS) - 2)


def transpose(frames: VoiceFrames, semitones: float) -> VoiceFrames:
    """f0 moved by ``semitones``; envelope (formants), level and voicing kept."""
    return replace(frames, f0=frames.f0 * 2.0 ** (semitones / 12.0))


def formant_shift(frames: VoiceFrames, ratio: float) -> VoiceFrames:
    """The envelope's frequency axis scaled by ``ratio`` (> 1: formants up); f0 kept."""
    mel_hz = mel_grid()
    env = envelope_from_ceps(frames.ceps)
    src = np.clip(mel_hz / ratio, mel_hz[0], mel_hz[-1])
    warped = np.stack([np.interp(src, mel_hz, row) for row in env]) if len(env) else env
    return replace(frames, ceps=ceps_from_envelope(warped))


def to_frames(knots: VoiceFrames, n_frames: int) -> VoiceFrames:
    """The knots glided to every :data:`HOP` frame ``0..n_frames-1`` (f0 in log, the rest linearly; held
    before the first knot and after the last)."""
    t = np.arange(n_frames) * HOP
    kt = knots.t.astype(np.float64)

    def lin(v: np.ndarray) -> np.ndarray:
        if v.ndim == 1:
            return np.interp(t, kt, v)
        return np.stack([np.interp(t, kt, v[:, j]) for j in range(v.shape[1])], axis=1)

    return VoiceFrames(
        t=t,
        f0=np.exp(lin(np.log(np.maximum(knots.f0, 1.0)))),
        level_db=lin(knots.level_db),
        ceps=lin(knots.ceps),
        voicing=np.clip(lin(knots.voicing), 0.0, 1.0),
    )


def render(knots: VoiceFrames, n_samples: int, seed: int = 0) -> np.ndarray:
    """A voice track → ``float32[n_samples]`` at :data:`SR`.  Deterministic for a given ``seed``."""
    if not len(knots) or n_samples <= 0:
        return np.zeros(max(n_samples, 0), np.float32)
    n_frames = n_samples // HOP + 2
    fr = to_frames(knots, n_frames)
    mel_hz = mel_grid()
    shape = envelope_from_ceps(fr.ceps)  # [M, N_MEL] log10, mean 0
    power = 10.0 ** (fr.level_db / 10.0)
    # the envelope's density integrates to 1 over 0..F_HI: its value at f is the share of power per Hz
    grid = np.linspace(0.0, F_HI, 256)
    dens = np.stack([10.0 ** np.interp(grid, mel_hz, row) for row in shape]).mean(axis=1) * F_HI
    scale = power / np.maximum(dens, 1e-30)
    out = _harmonics(fr, shape, scale, mel_hz, n_samples)
    out += _noise(fr, shape, scale, mel_hz, n_samples, seed)
    return out.astype(np.float32)


CHUNK = 50
"""Harmonics are summed over chunks of this many frames (250 ms), each up to its own highest harmonic."""


def _harmonics(
    fr: VoiceFrames, shape: np.ndarray, scale: np.ndarray, mel_hz: np.ndarray, n_samples: int
) -> np.ndarray:
    """Harmonic part: amplitudes per frame (power per harmonic = envelope density x f0 x voicing), linearly
    interpolated per sample; phase = k x the running integral of f0.  The sum over harmonics is Clenshaw's
    recurrence on ``cos(k phase)`` (two multiply-adds per harmonic and sample, no cosine per harmonic)."""
    t = np.arange(n_samples)
    f0_s = np.interp(t, fr.t, fr.f0)
    phase = 2.0 * np.pi * np.cumsum(f0_s) / SR
    kmax = int(F_HI / max(float(fr.f0.min()), 1.0))  # a transposed track may go below F0_MIN
    k = np.arange(1, kmax + 1)
    fk = fr.f0[:, None] * k[None, :]  # [M, K]
    env = 10.0 ** np.stack([np.interp(fk[i], mel_hz, shape[i]) for i in range(len(fk))])
    voiced = np.take_along_axis(fr.voicing, band_of(fk), axis=1)
    amps = np.sqrt(2.0 * env * voiced * (fk < F_HI) * fr.f0[:, None] * scale[:, None])  # [M, K]
    out = np.zeros(n_samples)
    for m0 in range(0, len(fr.t) - 1, CHUNK):
        m1 = min(m0 + CHUNK, len(fr.t) - 1)  # frames m0..m1 bound samples [m0 * HOP, m1 * HOP)
        s0, s1 = int(fr.t[m0]), min(int(fr.t[m1]), n_samples)
        if s1 <= s0:
            continue
        a = amps[m0 : m1 + 1]
        live = np.flatnonzero(a.max(axis=0) > 0)
        if not len(live):
            continue
        # per-sample position between frames: a_k(t) = a[j] + frac * (a[j + 1] - a[j])
        pos = (np.arange(s0, s1) - s0) / HOP
        j = np.minimum(pos.astype(np.int64), len(a) - 2)
        frac = pos - j
        x = np.cos(phase[s0:s1])
        two_x = 2.0 * x
        b1 = np.zeros(s1 - s0)
        b2 = np.zeros(s1 - s0)
        for kk in range(int(live[-1]), -1, -1):  # harmonic kk + 1, from the top down
            col = a[:, kk]
            b0 = two_x * b1 - b2
            if col.any():
                b0 += col[j] + frac * (col[j + 1] - col[j])
            b2, b1 = b1, b0
        out[s0:s1] = x * b1 - b2
    return out


def _noise(
    fr: VoiceFrames, shape: np.ndarray, scale: np.ndarray, mel_hz: np.ndarray, n_samples: int, seed: int
) -> np.ndarray:
    """Unvoiced part: white noise, each Hann frame shaped by the envelope x (1 - voicing), overlap-added."""
    n = NOISE_N
    win = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
    m = len(fr.t)
    # one white noise signal, cut into overlapping frames: the overlap-add of its shaped frames divided by
    # the summed squared window keeps its power (independent frames would come out 3 dB low)
    white = np.random.default_rng(seed).standard_normal((m + n // HOP - 1) * HOP)
    noise = np.lib.stride_tricks.sliding_window_view(white, n)[::HOP][:m] * win
    freqs = np.fft.rfftfreq(n, 1.0 / SR)
    env = 10.0 ** np.stack([np.interp(freqs, mel_hz, row) for row in shape])  # [M, n/2+1]
    unvoiced = 1.0 - fr.voicing[:, band_of(freqs)]
    gain = np.sqrt(env * unvoiced * (freqs < F_HI) * scale[:, None] * F_HI)  # mean over bins: the power
    frames = irfft(rfft(noise, axis=1) * gain, n, axis=1) * win
    over = n // HOP  # frames overlapping any sample (NOISE_N is a multiple of HOP)
    total = np.zeros((m + over - 1, HOP))
    norm = np.zeros_like(total)
    parts, w2 = frames.reshape(m, over, HOP), (win**2).reshape(over, HOP)
    for q in range(over):
        total[q : q + m] += parts[:, q]
        norm[q : q + m] += w2[q]
    y = (total / np.maximum(norm, 1e-3)).reshape(-1)
    # frame i starts at sample i * HOP and is centred on i * HOP + n / 2
    return y[n // 2 : n // 2 + n_samples]
