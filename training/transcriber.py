"""Train the note transcriber (``sparsecodec/encoder/transcriber.py``) on FluidR3 renders of generated MIDI.

    python -m training.transcriber --out sparsecodec/encoder/weights/transcriber.safetensors \
        --seed 0 --phrases 320 --steps 3000

Data: phrases from the dev set's generator (``bench.devset.make_phrase``: chromatic, off-grid, chords of 2-4,
re-strikes, legato with vibrato, velocity spread) on :data:`TRAIN_INSTRUMENTS` (the dev set's programs and
others), rendered by fluidsynth with **FluidR3_GM.sf2 only** (never TimGM6mb, the dev set's soundfont, nor
timidity/freepats, the check renders), with seeds from ``--seed`` × 100000 (the dev phrases' seeds are refused
by ``make_notes``).  Held-out: the next 16 phrases.  Cached in ``.cache/transcriber-data/``.

``--timidity-share S`` draws that share of the crops from the same phrases rendered by ``timidity`` with its
FluidR3 config (:data:`TIMIDITY_FLUIDR3`: the same samples, another synthesis engine's envelopes, releases
and reverb), so that the network does not learn one renderer's note ends.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from bench import devset, metrics
from sparsecodec.encoder import proposal, transcriber

FLUIDR3 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
TIMIDITY_FLUIDR3 = "/etc/timidity/fluidr3_gm.cfg"
"""Debian timidity's config for FluidR3_GM (package ``timidity``): the training samples, another renderer."""
_I = devset.Instrument
TRAIN_INSTRUMENTS: tuple[devset.Instrument, ...] = (
    *devset.INSTRUMENTS,
    _I(4, "electric piano", 45, 84, chords=True, decay_s=(1.5, 0.8)),
    _I(25, "steel guitar", 40, 76, chords=True, decay_s=(1.0, 0.5)),
    _I(13, "xylophone", 60, 96, chords=True, decay_s=(0.3, 0.15)),
    _I(11, "vibraphone", 53, 89, chords=True, decay_s=(1.5, 0.8)),
    _I(42, "cello", 36, 67, legato=True),
    _I(68, "oboe", 58, 89, legato=True),
    _I(56, "trumpet", 55, 82, legato=True),
    _I(65, "alto sax", 49, 80, legato=True),
    _I(19, "church organ", 36, 84, chords=True, legato=True),
    _I(52, "choir aahs", 48, 79, chords=True, legato=True),
    _I(33, "fingered bass", 28, 55, decay_s=(1.5, 1.0)),
    _I(1, "bright piano", 40, 90, chords=True, decay_s=(1.4, 0.6)),
    _I(49, "slow strings", 48, 84, chords=True, legato=True),
    _I(71, "clarinet", 50, 86, legato=True),
    _I(46, "harp", 36, 90, chords=True, decay_s=(1.2, 0.6)),
    _I(0, "piano", 30, 96, chords=True, decay_s=(1.6, 0.5)),
)
"""Training programs: the dev set's eight (played by FluidR3, not TimGM6mb) and sixteen others."""
WIDE_INSTRUMENTS: tuple[devset.Instrument, ...] = (
    *TRAIN_INSTRUMENTS,
    _I(26, "jazz guitar", 40, 76, chords=True, decay_s=(1.0, 0.5)),
    _I(27, "clean electric guitar", 40, 79, chords=True, decay_s=(1.0, 0.5)),
    _I(105, "banjo", 48, 81, chords=True, decay_s=(0.8, 0.4)),
    _I(107, "koto", 48, 84, chords=True, decay_s=(1.0, 0.5)),
    _I(41, "viola", 48, 79, legato=True),
    _I(44, "tremolo strings", 48, 84, chords=True, legato=True),
    _I(50, "synth strings", 48, 84, chords=True, legato=True),
    _I(61, "brass section", 48, 79, chords=True, legato=True),
)
"""``--wide``: the training programs and eight more plucked and bowed ones (more timbres per family)."""
CACHE = Path(".cache/transcriber-data")
N_HELD = 16


OFFSET_SIGMA = 1.0
"""Width (frames) of the note-off target's Gaussian: a release is heard less sharply than an onset."""


def _bump(target: np.ndarray, b: int, t0: float, sigma: float) -> None:
    """Raise ``target[b]`` to a Gaussian of ``sigma`` frames around frame ``t0``, 0.3 of it on bands b ± 1."""
    n_bands, n_frames = target.shape
    reach = math.ceil(3 * sigma)
    for t in range(max(0, math.floor(t0) - reach), min(n_frames, math.ceil(t0) + reach + 1)):
        g = math.exp(-0.5 * ((t - t0) / sigma) ** 2)
        target[b, t] = max(target[b, t], g)
        for nb in (b - 1, b + 1):
            if 0 <= nb < n_bands:
                target[nb, t] = max(target[nb, t], 0.3 * g)


def labels(notes: list[dict[str, float]], n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Onset, frame and note-off targets ``float32[F, T]`` for ``notes`` (onset, pitch, offset each)."""
    n_bands = proposal.N_BANDS
    onset = np.zeros((n_bands, n_frames), np.float32)
    frame = np.zeros((n_bands, n_frames), np.float32)
    offset = np.zeros((n_bands, n_frames), np.float32)
    fs = transcriber.FRAME_S
    for n in notes:
        b = round((n["pitch"] - proposal.BAND_LO_MIDI) * proposal.BANDS_PER_SEMITONE)
        if not 0 <= b < n_bands:
            continue
        t0 = n["onset"] / fs
        t1 = max(n["offset"] / fs, t0 + 1)
        _bump(onset, b, t0, 0.6)
        _bump(offset, b, t1, OFFSET_SIGMA)
        a, z = max(0, round(t0)), min(n_frames, round(t1))
        frame[b, a:z] = 1.0
    return onset, frame, offset


def build(seed: int, n: int, log: bool = True, wide: bool = False, renderer: str = "fluidsynth") -> Path:
    """Render ``n`` phrases (+ :data:`N_HELD` held out) on :data:`TRAIN_INSTRUMENTS` (``wide``:
    :data:`WIDE_INSTRUMENTS`) with FluidR3 (``renderer``: fluidsynth, or timidity with
    :data:`TIMIDITY_FLUIDR3`) and cache their features; returns the folder (the targets are made from each
    phrase's ``.notes.json`` by :func:`load`)."""
    suffix = ("-wide" if wide else "") + ("-timidity" if renderer == "timidity" else "")
    out = CACHE / f"seed{seed}-n{n}{suffix}"
    done = out / "done.json"
    if done.is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    wav_dir = out / "wav"
    t = time.time()
    base = 100000 * (seed + 1)
    devset.make_notes(
        wav_dir,
        n + N_HELD,
        seed=base,
        soundfont=TIMIDITY_FLUIDR3 if renderer == "timidity" else FLUIDR3,
        renderer=renderer,
        prefix="tr",
        instruments=WIDE_INSTRUMENTS if wide else TRAIN_INSTRUMENTS,
    )
    for i in range(n + N_HELD):
        stem = wav_dir / f"tr-{i:02d}"
        x, sr = sf.read(f"{stem}.wav", dtype="float32", always_2d=True)
        feats = proposal.features(x.mean(axis=1), sr)
        np.savez(out / f"{i:04d}.npz", feats=feats)
    done.write_text(json.dumps({"n": n, "held": N_HELD, "seconds": time.time() - t}))
    if log:
        print(f"data: {n + N_HELD} phrases in {time.time() - t:.0f} s", file=sys.stderr)
    return out


def load(folder: Path, idx: range) -> list[dict[str, np.ndarray]]:
    """Features (cached) and targets (from each phrase's ``.notes.json``) of phrases ``idx``."""
    out = []
    for i in idx:
        feats = np.load(folder / f"{i:04d}.npz")["feats"]
        truth = json.loads((folder / "wav" / f"tr-{i:02d}.notes.json").read_text())
        on, fr, off = labels(truth["notes"], feats.shape[1])
        out.append({"feats": feats, "onset": on, "frame": fr, "offset": off})
    return out


EQ_TERMS = 4
"""Cosine terms of the ``--eq-db`` augmentation's random curve over the bands (a smooth equaliser)."""


def random_eq(rng: np.random.Generator, eq_db: float) -> np.ndarray:
    """A smooth random equaliser in feature units, ``float32[N_BANDS, 1]``: ``EQ_TERMS`` cosines over the
    band axis whose dB amplitudes are uniform in ``±eq_db / EQ_TERMS`` (so the curve stays within ±eq_db)."""
    u = np.linspace(0.0, 1.0, proposal.N_BANDS)
    k = np.arange(1, EQ_TERMS + 1)
    amp = rng.uniform(-1.0, 1.0, EQ_TERMS) * eq_db / EQ_TERMS
    phase = rng.uniform(0.0, math.pi, EQ_TERMS)
    db = (amp[:, None] * np.cos(math.pi * k[:, None] * u[None, :] + phase[:, None])).sum(axis=0)
    return (db / (-proposal.FLOOR_DB / 4.0)).astype(np.float32)[:, None]


def batch(
    data: list[dict[str, np.ndarray]], rng: np.random.Generator, size: int, crop: int, eq_db: float = 0.0
) -> tuple[torch.Tensor, ...]:
    """``size`` random ``crop``-frame crops: inputs ``[B, H, F, crop]`` and the onset, frame and note-off
    targets ``[B, F, crop]``.  ``eq_db > 0`` adds a :func:`random_eq` curve to each crop."""
    xs, ys = [], []
    for _ in range(size):
        d = data[int(rng.integers(len(data)))]
        t = d["feats"].shape[1]
        s = int(rng.integers(0, max(1, t - crop)))
        f = d["feats"][:, s : s + crop] + np.float32(rng.uniform(-0.5, 0.25))  # gain ±
        if eq_db > 0:
            f = f + random_eq(rng, eq_db)
        xs.append(transcriber.stack_harmonics(f))
        ys.append([d[k][:, s : s + crop] for k in ("onset", "frame", "offset")])
    return (torch.from_numpy(np.stack(xs)), *(torch.from_numpy(np.stack(y)) for y in zip(*ys, strict=True)))


def loss_fn(
    logits: torch.Tensor, onset: torch.Tensor, frame: torch.Tensor, offset: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """``(total, onset, frame, note-off)`` weighted BCE (note-off 0 without the branch)."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    l_on = bce(logits[:, 0], onset, weight=1.0 + 20.0 * onset)
    l_fr = bce(logits[:, 1], frame, weight=1.0 + 2.0 * frame)
    l_off = (
        bce(logits[:, 2], offset, weight=1.0 + 20.0 * offset) if logits.shape[1] > 2 else logits.new_zeros(())
    )
    return l_on + l_fr + l_off, l_on, l_fr, l_off


def evaluate(model: transcriber.NoteModel, folder: Path, n: int) -> dict[str, float]:
    """Mean note scores over the held-out phrases."""
    tr = transcriber.Transcriber(model)
    scores = []
    model.eval()
    for i in range(n, n + N_HELD):
        x, sr = sf.read(folder / "wav" / f"tr-{i:02d}.wav", dtype="float32", always_2d=True)
        truth = json.loads((folder / "wav" / f"tr-{i:02d}.notes.json").read_text())
        est = [
            {"onset": m.onset_s, "pitch": m.pitch, "offset": m.off_s} for m in tr.notes(x.mean(axis=1), sr)
        ]
        ref = [{k: float(r[k]) for k in ("onset", "pitch", "offset")} for r in truth["notes"]]
        scores.append(metrics.note_scores(ref, est))
    model.train()
    keys = ("note_f1", "note_precision", "note_recall", "onset_f1", "pitch_acc", "offset_f1")
    return {k: float(np.mean([s[k] or 0.0 for s in scores])) for k in keys}


def _model(args: argparse.Namespace) -> tuple[transcriber.NoteModel, list[torch.nn.Parameter]]:
    """The network to train (new, ``--init-weights``, or those with a new ``--offset-branch``) and the
    parameters to train (the branch alone when one is added: the rest is frozen)."""
    model = transcriber.NoteModel(transcriber.NoteConfig(channels=args.channels))
    if args.init_weights is not None:
        model = transcriber.Transcriber.from_bytes(args.init_weights.read_bytes()).model
    if args.offset_branch:
        trained = model.state_dict()
        model = transcriber.NoteModel(dataclasses.replace(model.config, offset_layers=args.offset_branch))
        model.load_state_dict(trained, strict=False)  # the body and the onset/frame head stay as they are
        assert model.offset is not None
        for p in [*model.body.parameters(), *model.head.parameters()]:
            p.requires_grad_(False)
        model.train()
        return model, list(model.offset.parameters())
    model.train()
    return model, list(model.parameters())


def _parser() -> argparse.ArgumentParser:
    """The command line of :func:`main`."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=transcriber.default_weights_path())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--phrases", type=int, default=320)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--minutes", type=float, default=0.0, help="stop after this long (0: no limit)")
    ap.add_argument("--init-weights", type=Path, default=None, help="start from these weights (fine-tune)")
    ap.add_argument(
        "--offset-branch",
        type=int,
        default=0,
        help="add a note-off branch of this many convolutions and train only it (needs --init-weights)",
    )
    ap.add_argument("--body-lr-scale", type=float, default=1.0, help="the body's and onset/frame head's lr ×")
    ap.add_argument("--log", type=Path, default=None, help="loss log (runs/transcriber-seed<S>.jsonl)")
    ap.add_argument("--wide", action="store_true", help="train on WIDE_INSTRUMENTS (eight more programs)")
    ap.add_argument("--eq-db", type=float, default=0.0, help="random smooth EQ of up to ± this many dB")
    ap.add_argument(
        "--timidity-share",
        type=float,
        default=0.0,
        help="share of crops from the same phrases rendered by timidity with FluidR3 (0..1)",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.offset_branch and args.init_weights is None:
        ap.error("--offset-branch trains a branch on trained weights: give --init-weights")
    if not 0.0 <= args.timidity_share <= 1.0:
        ap.error(f"--timidity-share is a share of the crops (0..1), not {args.timidity_share}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    folder = build(args.seed, args.phrases, wide=args.wide)
    data = load(folder, range(args.phrases))
    alt = []
    if args.timidity_share > 0:
        alt = load(build(args.seed, args.phrases, wide=args.wide, renderer="timidity"), range(args.phrases))
    model, params = _model(args)
    branch = {id(p) for p in model.offset.parameters()} if model.offset is not None else set()
    groups = [
        {"params": [p for p in params if id(p) in branch], "scale": 1.0},
        {"params": [p for p in params if id(p) not in branch], "scale": args.body_lr_scale},
    ]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=args.lr, weight_decay=1e-4)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    log = args.log or Path("runs") / f"transcriber-seed{args.seed}.jsonl"
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as fh:
        for step in range(args.steps):
            lr = (
                args.lr
                * min(1.0, (step + 1) / 100)
                * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
            )
            for g in opt.param_groups:
                g["lr"] = lr * g["scale"]
            n_alt = int(rng.binomial(args.batch, args.timidity_share)) if alt else 0
            parts = [
                batch(d, rng, k, args.crop, args.eq_db)
                for d, k in ((data, args.batch - n_alt), (alt, n_alt))
                if k
            ]
            x, on, fr, off = (torch.cat(t) for t in zip(*parts, strict=True))
            loss, l_on, l_fr, l_off = loss_fn(model(x), on, fr, off)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if step % 100 == 0 or step == args.steps - 1:
                rec = {
                    "step": step,
                    "loss": loss.item(),
                    "onset": l_on.item(),
                    "frame": l_fr.item(),
                    "offset": l_off.item(),
                    "s": time.time() - t0,
                }
                if step % 500 == 0 or step == args.steps - 1:
                    rec.update(evaluate(model, folder, args.phrases))
                print(json.dumps(rec), file=fh, flush=True)
                print(json.dumps(rec), file=sys.stderr, flush=True)
            if args.minutes and time.time() - t0 > 60 * args.minutes:
                break
        final = evaluate(model, folder, args.phrases)
        sha = transcriber.save_weights(model, args.out, {"seed": str(args.seed), "steps": str(step + 1)})
        print(json.dumps({"final": True, **final, "sha256": sha, "s": time.time() - t0}), file=fh, flush=True)
    print(json.dumps({"final": True, **final, "sha256": sha}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
