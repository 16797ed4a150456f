"""Pictures of a ``.spev`` file's events: the seed's timeline, a piano roll, optionally a spectrogram.

Panels, top to bottom (one shared time axis in seconds):

1. *(with a source audio file)* its log-magnitude spectrogram on a log-frequency axis, with every event
   overlaid at its onset: pitched events at their f0 (circles), unpitched ones at their noise centre (×).
2. *timeline* (the seed's picture): x = start time, y = a 1-D t-SNE embedding of the events' unit-space
   vectors (similar events sit at similar heights), colour = a seeded random projection 32 → RGB of the
   same vectors (similar events get similar colours), marker area ∝ level.  t-SNE's perplexity adapts to
   N (``min(30, (N - 1) / 3)``); with fewer than 5 events, or more than :data:`MAX_TSNE` (for speed), the
   first principal component is used instead.
3. *piano roll*: pitched events as bars at their MIDI pitch, from onset over their sounding length (a
   voice's pitch contour as a line), in the
   same colours, opacity by level.

Rendering uses matplotlib's Agg backend and fixed seeds, so the same file gives the same PNG bytes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from sparsecodec.errors import InputError, UsageError
from sparsecodec.format import events
from sparsecodec.tools.edit import Events, read_events

MAX_TSNE = 3000
"""Above this many events the timeline's y axis is the first principal component (t-SNE is too slow)."""
EXACT_TSNE = 600
"""Up to this many events t-SNE runs its exact method (faster than Barnes-Hut at this size)."""
MIN_TSNE = 5
"""Below this many events t-SNE is not meaningful; the first principal component is used."""
COLOUR_SEED = 12345
"""Seed of the random 32 → 3 colour projection (fixed so colours mean the same in every picture)."""
MAX_SOURCE_S = 1800.0
"""Longest source audio drawn as a spectrogram (seconds)."""


def embed_1d(unit: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """1-D embedding ``float64[N]`` in [0, 1] of unit-space vectors ``float[N, 32]`` (t-SNE or PCA)."""
    n = len(unit)
    if n == 0:
        return np.zeros(0)
    if n == 1:
        return np.full(1, 0.5)
    x = np.asarray(unit, dtype=np.float64)
    if MIN_TSNE <= n <= MAX_TSNE:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(1.0, (n - 1) / 3.0)))
        y = TSNE(
            n_components=1,
            perplexity=perplexity,
            init="pca",
            random_state=seed,
            learning_rate="auto",
            max_iter=500,
            method="exact" if n <= EXACT_TSNE else "barnes_hut",
        ).fit_transform(x)[:, 0]
    else:
        centred = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        axis = vt[0] * np.sign(vt[0][np.argmax(np.abs(vt[0]))] or 1.0)
        y = centred @ axis
    span = float(y.max() - y.min())
    return (y - y.min()) / span if span > 0 else np.full(n, 0.5)


def colours(unit: np.ndarray, *, seed: int = COLOUR_SEED) -> np.ndarray:
    """RGB ``float64[N, 3]`` in [0.1, 0.9] from a seeded random projection of unit-space vectors.

    Each channel is standardised over the file's events before a logistic squashing, so colours use the
    whole range (similar vectors → similar colours within one picture).
    """
    rng = np.random.default_rng(seed)
    proj = rng.normal(0.0, 1.0, (events.N_DIMS, 3)) / math.sqrt(events.N_DIMS)
    z = (np.asarray(unit, dtype=np.float64) - 0.5) @ proj
    if len(z) > 1:
        std = z.std(axis=0)
        z = (z - z.mean(axis=0)) / np.where(std > 1e-9, std, 1.0)
    else:
        z = np.zeros_like(z)
    return 0.1 + 0.8 / (1.0 + np.exp(-1.8 * z))


def _note_lengths(vectors: np.ndarray) -> np.ndarray:
    from sparsecodec.tools.export import note_lengths_s

    return note_lengths_s(vectors)


def read_source(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono ``float32[samples]`` and rate of an audio file (at most :data:`MAX_SOURCE_S` seconds)."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            rate = int(f.samplerate)
            frames = min(int(f.frames), int(MAX_SOURCE_S * rate))
            data = f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise InputError(f"{path}: cannot read audio ({exc})") from None
    return data.mean(axis=1), rate


def figure(ev: Events, *, source: tuple[np.ndarray, int] | None = None, title: str = "") -> Any:
    """A matplotlib Figure (Agg) of ``ev``'s events (panels as in the module docstring)."""
    from matplotlib.figure import Figure

    n_panels = 3 if source is not None else 2
    heights = [1.2, 1.0, 1.0][-n_panels:] if source is not None else [1.0, 1.0]
    fig = Figure(figsize=(10, 2.3 * n_panels + 0.6), dpi=100)
    axes = fig.subplots(n_panels, 1, sharex=True, gridspec_kw={"height_ratios": heights})
    axes = list(np.atleast_1d(axes))
    unit = np.clip(events.to_unit(ev.vectors), 0.0, 1.0)
    rgb = colours(unit)
    level = ev.vectors[:, events.INDEX["level"]] if len(ev) else np.zeros(0)
    size = 4.0 + 60.0 * np.clip((level + 60.0) / 60.0, 0.0, 1.0) ** 2
    alpha = 0.35 + 0.6 * np.clip((level + 60.0) / 60.0, 0.0, 1.0)
    pitched = events.is_pitched(ev.vectors) if len(ev) else np.zeros(0, dtype=bool)
    t_end = max(ev.duration_s, float(ev.times_s.max()) if len(ev) else 0.0, 1e-3)

    ax_i = 0
    if source is not None:
        _spectrogram_panel(axes[0], fig, source, ev, pitched)
        ax_i = 1

    ax = axes[ax_i]
    y = embed_1d(unit)
    ax.scatter(ev.times_s, y, s=size, c=rgb, alpha=0.85, linewidths=0)
    ax.set_ylabel("t-SNE of vectors")
    ax.set_ylim(-0.05, 1.05)
    ax.set_yticks([])
    ax.set_title(title or f"{len(ev)} events", fontsize=10, loc="left")

    ax = axes[ax_i + 1]
    shown = np.zeros(0)
    if pitched.any():
        pv = ev.vectors[pitched]
        pitch = pv[:, events.INDEX["pitch"]]
        ax.barh(
            pitch,
            _note_lengths(pv),
            left=ev.times_s[pitched],
            height=0.8,
            color=np.column_stack([rgb[pitched], alpha[pitched]]),
            linewidth=0,
        )
        shown = pitch
    voiced = _voice_contour(ev)
    if voiced is not None:  # a voice's pitch contour: its voiced knots, joined where the track glides
        t, p = voiced
        ax.plot(t, p, color="0.25", linewidth=1.0, label="voice f0")
        ax.legend(loc="upper right", fontsize=8, frameon=False)
        shown = np.concatenate([shown, p[np.isfinite(p)]])
    if len(shown):
        ax.set_ylim(float(shown.min()) - 3, float(shown.max()) + 3)
    else:
        ax.text(0.5, 0.5, "no pitched events", transform=ax.transAxes, ha="center", va="center")
    ax.set_ylabel("pitch (MIDI)")
    ax.set_xlabel("time (s)")
    ax.set_xlim(0.0, t_end)
    ax.grid(True, axis="y", alpha=0.3, linewidth=0.5)
    fig.tight_layout()
    return fig


def _voice_contour(ev: Events) -> tuple[np.ndarray, np.ndarray] | None:
    """``(times s, MIDI pitch)`` of the voiced, sounding voice knots, NaN between tracks (None: none)."""
    from sparsecodec.synth import voice

    sel = events.is_voice(ev.vectors) if len(ev) else np.zeros(0, dtype=bool)
    if not sel.any():
        return None
    v, t = ev.vectors[sel], ev.times_s[sel]
    order = np.argsort(t, kind="stable")
    v, t = v[order], t[order]
    c = events.VOICE_INDEX
    voiced = (v[:, c["voicing1"] : c["voicing1"] + 4].max(axis=1) > 0) & (v[:, c["level"]] > voice.SILENT_DB)
    pitch = np.where(voiced, v[:, c["pitch"]], np.nan)
    return t, pitch


def _spectrogram_panel(ax: Any, fig: Any, source: tuple[np.ndarray, int], ev: Events, pitched: Any) -> None:
    from scipy.signal import spectrogram

    audio, rate = source
    nfft = 2048 if rate > 32000 else 1024
    if len(audio) < nfft:
        audio = np.pad(audio, (0, nfft - len(audio)))
    f, t, s = spectrogram(audio, fs=rate, nperseg=nfft, noverlap=nfft * 3 // 4, mode="magnitude")
    db = 20.0 * np.log10(np.maximum(s, 1e-7))
    top = float(db.max())
    keep = f >= 20.0
    ax.pcolormesh(
        t, f[keep], db[keep], shading="auto", cmap="magma", vmin=top - 80.0, vmax=top, rasterized=True
    )
    ax.set_yscale("log")
    ax.set_ylim(20.0, rate / 2.0)
    ax.set_ylabel("Hz")
    if len(ev):
        f0 = events.pitch_to_hz(ev.vectors[:, events.INDEX["pitch"]])
        centre = ev.vectors[:, events.INDEX["noise_centre"]]
        ax.scatter(
            ev.times_s[pitched], f0[pitched], s=14, facecolors="none", edgecolors="cyan", linewidths=0.8
        )
        ax.scatter(ev.times_s[~pitched], centre[~pitched], s=14, marker="x", c="white", linewidths=0.8)
    ax.set_title("source spectrogram; events: o = f0, x = noise centre", fontsize=9, loc="left")


def plot_file(
    src: str | Path,
    dst: str | Path,
    *,
    source: str | Path | None = None,
    force: bool = False,
    dpi: int = 100,
) -> Path:
    """Draw ``src``'s events to the PNG ``dst`` (atomically); ``source`` adds its spectrogram panel."""
    from sparsecodec.audio.io import atomic_output, ensure_writable

    dst = Path(dst)
    if dst.suffix.lower() not in (".png", ""):
        raise UsageError(f"{dst}: plot writes PNG (use a .png name)")
    if not 20 <= dpi <= 600:
        raise UsageError(f"--dpi {dpi}: choose 20..600")
    ensure_writable(dst, force)
    _, ev = read_events(src)
    audio = read_source(source) if source is not None else None
    fig = figure(ev, source=audio, title=f"{Path(src).name}: {len(ev)} events, {ev.duration_s:.2f} s")
    with atomic_output(dst, overwrite=force) as f:
        fig.savefig(f, format="png", dpi=dpi, metadata={"Software": None})
    return dst
