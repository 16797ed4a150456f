"""Offline training data for the proposal network, reproducible from a seed.

Two sources, both at the network's analysis rate (22050 Hz), in windows of :data:`WINDOW_SAMPLES` samples
(≈5.94 s, the encoder's window):

- **synthetic** (:func:`synth_example`): events drawn from :func:`events.sample_prior`, rendered with
  ``render_np.render`` (the codec's own generator) — labels are exact (times and full vectors).  Most windows
  hold 10-60 events, one in five holds 1-9 (a residual late in encoding); about a quarter of the events share
  their onset with another one (chords); events may start up to :data:`PRE_S` before the window (tails).
- **fluidsynth** (:func:`fluid_examples`): random MIDI (``mido``) rendered by the ``fluidsynth`` program with
  ``/usr/share/sounds/sf2/FluidR3_GM.sf2`` (package ``fluid-soundfont-gm``, MIT) — never TimGM6mb, which is
  the dev set's soundfont.  Labels: onset times, MIDI pitch and pitched/unpitched (drums on channel 10).

:func:`build` writes shards (``.npz``, loaded with ``allow_pickle=False``) of features (float16) and labels
under a cache directory; nothing here goes into git.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sparsecodec.errors import SpevError
from sparsecodec.format import events

SAMPLE_RATE = 22050
WINDOW_SAMPLES = 1 << 17
"""Window length at :data:`SAMPLE_RATE` (≈5.94 s)."""
WINDOW_S = WINDOW_SAMPLES / SAMPLE_RATE
PRE_S = 1.5
"""Synthetic events may start this long before the window (their tails are context, not labels)."""
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
"""The only soundfont training uses (fluid-soundfont-gm, MIT licence)."""
DATA_VERSION = 1
SHARD_EXAMPLES = 100

UNLABELLED = ("wet", "pan", "reserved")
"""Dimensions never supervised: the data is mono with no room, and ``reserved`` is always 0."""
HARMONIC: tuple[str, ...] = (
    "pitch",
    "glide",
    "vibrato_rate",
    "vibrato_depth",
    "inharmonicity",
    "tilt",
    "odd_even",
    "detune",
)
HARMONIC += (*tuple(f"env{j}" for j in range(1, 8)), "cutoff", "jitter", "pitch_drop")


class DataError(SpevError):
    """Training data cannot be made (missing soundfont or fluidsynth, unreadable shard)."""


@dataclass
class Example:
    """One labelled window: ``audio`` float32[WINDOW_SAMPLES] mono at 22050 Hz, and its ``K`` onsets.

    ``times`` float64[K] seconds from the window start (in ``[0, WINDOW_S)``), ``vectors`` float64[K, 32]
    physical units, ``mask`` float32[K, 32] which label dimensions are known (1) or not (0).
    """

    audio: np.ndarray
    times: np.ndarray
    vectors: np.ndarray
    mask: np.ndarray


# -------------------------------------------------------------------------------------------- synthetic


def renderer_name() -> str:
    """Which renderer makes synthetic audio (part of the cache key)."""
    try:
        from sparsecodec.synth import render_np  # noqa: F401
    except ImportError:
        return "fallback"
    return "render_np"


def _render(vectors: np.ndarray, times: np.ndarray, n_samples: int) -> np.ndarray:
    """Mono float32[n_samples] at 22050 Hz of events at ``times`` (s, may be negative)."""
    try:
        from sparsecodec.synth.render_np import render
    except ImportError:
        return _fallback_render(vectors, times, n_samples)
    shift = PRE_S
    total = n_samples + round(shift * SAMPLE_RATE)
    audio = np.asarray(render(vectors, times + shift, total, SAMPLE_RATE), dtype=np.float32)
    return audio.reshape(-1, total)[0, total - n_samples :]


def _fallback_render(vectors: np.ndarray, times: np.ndarray, n_samples: int) -> np.ndarray:
    """Stand-in for ``render_np.render`` (used only while that module is missing): a reduced event model.

    Up to 24 inharmonic partials with tilt, cosine envelope, odd/even, cutoff, attack, frequency-dependent
    T60 and release; a log-Gaussian noise band; equal-power noise mix; peak-normalised to ``level``.
    """
    c = events.INDEX
    out = np.zeros(n_samples, dtype=np.float64)
    sr = SAMPLE_RATE
    for i, (v, t0) in enumerate(zip(vectors, times, strict=True)):
        start = round(t0 * sr)
        sup = int(min(float(events.support_s(v[None])[0]), 4.0) * sr)
        a, b = max(start, 0), min(start + sup, n_samples)
        if b <= a:
            continue
        t = (np.arange(a, b) - start) / sr
        p = v[c["pitch"]] + v[c["glide"]] * t + v[c["pitch_drop"]] * np.exp(-t / events.PITCH_DROP_TIME_S)
        p = p + v[c["vibrato_depth"]] / 100.0 * np.sin(2 * np.pi * v[c["vibrato_rate"]] * t)
        f0 = events.pitch_to_hz(p)
        k = np.arange(1, 25, dtype=np.float64)
        stretch = np.sqrt(1.0 + 10.0 ** v[c["inharmonicity"]] * k**2)
        fk0 = k * events.pitch_to_hz(v[c["pitch"]]) * stretch
        keep = fk0 < min(4.0 * v[c["cutoff"]], 0.45 * sr)
        k, stretch, fk0 = k[keep], stretch[keep], fk0[keep]
        env_db = v[c["tilt"]] * np.log2(k)
        u = np.log2(k) / 6.0
        for j in range(1, 8):
            env_db += v[c[f"env{j}"]] * np.cos(np.pi * j * u)
        env_db += np.where(k % 2 == 0, v[c["odd_even"]], 0.0)
        amp = 10.0 ** (env_db / 20.0) * (1.0 + (fk0 / v[c["cutoff"]]) ** 2) ** -4
        lt = np.interp(
            np.log(np.maximum(fk0, 1.0)),
            np.log([events.REFERENCE_T60_LOW_HZ, events.REFERENCE_T60_HIGH_HZ]),
            np.log([v[c["t60_low"]], v[c["t60_high"]]]),
        )
        t60 = np.exp(lt)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        rise = np.clip(t / v[c["attack"]], 0.0, 1.0)
        rise = 0.5 - 0.5 * np.cos(np.pi * rise)
        rel = np.where(t > v[c["duration"]], np.exp(-6.91 * (t - v[c["duration"]]) / v[c["release"]]), 1.0)
        harm = np.zeros_like(t)
        for kk, st, am, tt in zip(k, stretch, amp, t60, strict=True):
            harm += am * np.exp(-6.91 * t / tt) * np.sin(kk * st * phase)
        harm *= rise * rel
        rng = np.random.default_rng([start & 0xFFFFFFFF, i])
        noise = rng.standard_normal(b - a)
        spec = np.fft.rfft(noise)
        f = np.fft.rfftfreq(b - a, 1.0 / sr)
        sigma = v[c["noise_width"]] / 2.0
        spec *= np.exp(-0.5 * ((np.log2(np.maximum(f, 1.0)) - np.log2(v[c["noise_centre"]])) / sigma) ** 2)
        noise = np.fft.irfft(spec, b - a)
        nrise = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / v[c["noise_attack"]], 0.0, 1.0))
        noise *= nrise * np.exp(-6.91 * t / v[c["noise_decay"]]) * rel
        mix = v[c["noise_mix"]]
        sig = np.sqrt(1 - mix) * harm / (np.abs(harm).max() + 1e-9) + np.sqrt(mix) * noise / (
            np.abs(noise).max() + 1e-9
        )
        out[a:b] += sig / (np.abs(sig).max() + 1e-9) * 10.0 ** (v[c["level"]] / 20.0)
    return out.astype(np.float32)


def synth_mask(vectors: np.ndarray) -> np.ndarray:
    """Label mask ``float32[K, 32]``: all but :data:`UNLABELLED`; noise hits skip the harmonic dims."""
    mask = np.ones(vectors.shape, dtype=np.float32)
    for name in UNLABELLED:
        mask[:, events.INDEX[name]] = 0.0
    unpitched = ~events.is_pitched(vectors)
    for name in HARMONIC:
        mask[unpitched, events.INDEX[name]] = 0.0
    return mask


def synth_example(rng: np.random.Generator) -> Example:
    """One synthetic window of prior events (see module docstring)."""
    n_in = int(rng.integers(10, 61)) if rng.random() < 0.8 else int(rng.integers(1, 10))
    n_pre = int(rng.binomial(n_in, PRE_S / WINDOW_S))
    n = n_in + n_pre
    vectors = events.sample_prior(rng, n)
    times = np.concatenate([rng.uniform(0.0, WINDOW_S, n_in), rng.uniform(-PRE_S, 0.0, n_pre)])
    chord = rng.random(n_in) < 0.25
    for j in np.flatnonzero(chord)[1:]:
        times[j] = times[int(rng.integers(0, j))] if j > 0 else times[j]
    audio = _render(vectors, times, WINDOW_SAMPLES)
    lab = (times >= 0.0) & (times < WINDOW_S)
    order = np.argsort(times[lab], kind="stable")
    v = vectors[lab][order]
    return Example(audio, times[lab][order], v, synth_mask(v))


# ------------------------------------------------------------------------------------------- fluidsynth


def _random_midi(rng: np.random.Generator, n_windows: int, path: Path) -> list[tuple[float, int, bool]]:
    """Write random multi-instrument MIDI for ``n_windows`` windows; return ``(time_s, note, pitched)``."""
    import mido

    tpb, tempo = 480, 500_000  # 1 tick = 1/960 s
    ticks_per_s = tpb * 1_000_000 / tempo
    msgs: list[tuple[int, int, mido.Message]] = []  # (tick, order, msg)
    notes: list[tuple[float, int, bool]] = []
    for w in range(n_windows):
        w0 = w * WINDOW_S
        n_inst = int(rng.integers(1, 4))
        chans = [c for c in range(16) if c != 9]
        chosen = [int(c) for c in rng.choice(chans, n_inst, replace=False)]
        drums = rng.random() < 0.3
        for ch in chosen:
            prog = int(rng.integers(0, 112))
            msgs.append((int(w0 * ticks_per_s), 0, mido.Message("program_change", channel=ch, program=prog)))
        centres = {ch: int(rng.integers(40, 80)) for ch in chosen}
        density = rng.uniform(1.0, 8.0)
        n_notes = int(rng.poisson(density * WINDOW_S)) + 1
        for _ in range(n_notes):
            t = w0 + rng.uniform(0.0, WINDOW_S)
            if drums and rng.random() < 0.3:
                ch, note, pitched = 9, int(rng.integers(35, 82)), False
            else:
                ch = chosen[int(rng.integers(0, n_inst))]
                note, pitched = int(np.clip(centres[ch] + rng.integers(-12, 13), 24, 108)), True
            dur = float(np.exp(rng.uniform(np.log(0.08), np.log(2.0))))
            vel = int(rng.integers(30, 128))
            on, off = round(t * ticks_per_s), round((t + dur) * ticks_per_s)
            msgs.append((on, 2, mido.Message("note_on", channel=ch, note=note, velocity=vel)))
            msgs.append((off, 1, mido.Message("note_off", channel=ch, note=note, velocity=0)))
            notes.append((on / ticks_per_s, note, pitched))
    msgs.sort(key=lambda m: (m[0], m[1]))
    mid = mido.MidiFile(ticks_per_beat=tpb)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    last = 0
    for tick, _, msg in msgs:
        track.append(msg.copy(time=tick - last))
        last = tick
    mid.save(str(path))
    return notes


def fluid_examples(rng: np.random.Generator, n_windows: int, gain: float = 0.5) -> list[Example]:
    """``n_windows`` labelled windows cut from one fluidsynth render of random MIDI (FluidR3_GM only)."""
    import soundfile

    exe = shutil.which("fluidsynth")
    if exe is None or not SOUNDFONT.is_file():
        raise DataError(f"fluidsynth data needs the fluidsynth program and {SOUNDFONT}")
    with tempfile.TemporaryDirectory(prefix="spev-fluid-") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        notes = _random_midi(rng, n_windows, mid)
        cmd = [exe, "-ni", "-q", "-g", f"{gain:.3f}", "-r", str(SAMPLE_RATE), "-F", str(wav), str(SOUNDFONT)]
        subprocess.run([*cmd, str(mid)], check=True, capture_output=True, timeout=600)
        audio, sr = soundfile.read(str(wav), dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE:
        raise DataError(f"fluidsynth wrote {sr} Hz, expected {SAMPLE_RATE}")
    mono = audio.mean(axis=1)
    need = n_windows * WINDOW_SAMPLES
    mono = np.pad(mono, (0, max(0, need - mono.size)))
    t_all = np.array([n[0] for n in notes])
    p_all = np.array([n[1] for n in notes], dtype=np.float64)
    pitched = np.array([n[2] for n in notes])
    out = []
    c = events.INDEX
    for w in range(n_windows):
        sel = (t_all >= w * WINDOW_S) & (t_all < (w + 1) * WINDOW_S)
        order = np.argsort(t_all[sel], kind="stable")
        k = int(sel.sum())
        vec = events.defaults(k)
        vec[:, c["pitch"]] = p_all[sel][order]
        vec[:, c["noise_mix"]] = np.where(pitched[sel][order], 0.05, 0.95)
        mask = np.zeros((k, events.N_DIMS), dtype=np.float32)
        mask[:, c["pitch"]] = pitched[sel][order]
        mask[:, c["noise_mix"]] = 1.0
        seg = mono[w * WINDOW_SAMPLES : (w + 1) * WINDOW_SAMPLES].astype(np.float32)
        out.append(Example(seg, t_all[sel][order] - w * WINDOW_S, vec, mask))
    return out


# ---------------------------------------------------------------------------------------------- shards


def pack(examples: list[Example]) -> dict[str, np.ndarray]:
    """Shard arrays: features float16[N, F, T] plus flat event labels indexed by ``ev_example``."""
    from sparsecodec.encoder.proposal import features

    feats = np.stack([features(e.audio, SAMPLE_RATE) for e in examples]).astype(np.float16)
    ev_ex = np.concatenate([np.full(e.times.size, i, dtype=np.int32) for i, e in enumerate(examples)])
    return {
        "feats": feats,
        "ev_example": ev_ex,
        "ev_time": np.concatenate([e.times for e in examples]).astype(np.float32),
        "ev_unit": np.concatenate([events.to_unit(e.vectors) for e in examples]).astype(np.float32),
        "ev_mask": np.concatenate([e.mask for e in examples]).astype(np.float32),
    }


MAX_SHARD_EXAMPLES = 10_000
MAX_SHARD_EVENTS = 1_000_000


def load_shard(path: str | Path) -> dict[str, np.ndarray]:
    """Read a shard written by :func:`build` (no pickle; shapes checked)."""
    from sparsecodec.encoder.proposal import N_BANDS

    try:
        with np.load(str(path), allow_pickle=False) as z:
            d = {k: z[k] for k in ("feats", "ev_example", "ev_time", "ev_unit", "ev_mask")}
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: unreadable shard ({exc})") from None
    n, m = d["feats"].shape[0], d["ev_time"].shape[0]
    ok = (
        d["feats"].ndim == 3
        and d["feats"].shape[1] == N_BANDS
        and n <= MAX_SHARD_EXAMPLES
        and m <= MAX_SHARD_EVENTS
        and d["ev_example"].shape == (m,)
        and d["ev_unit"].shape == (m, events.N_DIMS)
        and d["ev_mask"].shape == (m, events.N_DIMS)
        and (m == 0 or (d["ev_example"].min() >= 0 and d["ev_example"].max() < n))
    )
    if not ok:
        raise DataError(f"{path}: shard arrays have inconsistent shapes")
    return d


def config_key(seed: int, shard_examples: int) -> str:
    """Cache key of a data set: seed, shard size, data version and the renderer (sizes only add shards)."""
    blob = json.dumps([DATA_VERSION, seed, shard_examples, renderer_name()])
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def build(
    out_dir: str | Path,
    seed: int,
    n_synth: int,
    n_fluid: int,
    *,
    shard_examples: int = SHARD_EXAMPLES,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Make (or reuse) the data set under ``out_dir/<key>/``; return its shard paths in order.

    Shards are written atomically and skipped when present, so an interrupted build resumes.
    Example ``i`` of a kind is drawn from ``np.random.default_rng([seed, kind, shard])``.
    """
    root = Path(out_dir) / config_key(seed, shard_examples)
    root.mkdir(parents=True, exist_ok=True)
    (root / "info.json").write_text(
        json.dumps(
            {
                "seed": seed,
                "shard_examples": shard_examples,
                "renderer": renderer_name(),
                "version": DATA_VERSION,
                "soundfont": str(SOUNDFONT),
            },
            indent=1,
        )
    )
    paths: list[Path] = []
    plan: list[tuple[str, int, int]] = []
    for kind, total in (("synth", n_synth), ("fluid", n_fluid)):
        for s in range(-(-total // shard_examples)):
            plan.append((kind, s, min(shard_examples, total - s * shard_examples)))
    for kind, s, count in plan:
        path = root / f"{kind}_{s:04d}_{count}.npz"
        paths.append(path)
        if path.is_file():
            continue
        rng = np.random.default_rng([seed, 0 if kind == "synth" else 1, s])
        if kind == "synth":
            exs = [synth_example(rng) for _ in range(count)]
        else:
            exs = fluid_examples(rng, count, gain=float(rng.uniform(0.3, 0.8)))
        arrays: dict[str, Any] = pack(exs)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(str(tmp), **arrays)
        tmp.replace(path)
        if log:
            log(f"data: wrote {path.name} ({count} windows, {arrays['ev_time'].size} events)")
    return paths
