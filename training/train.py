"""Proposal-network training: ``python -m training.train --out PATH --seed 0 [--minutes M] [--resume]``.

Data comes from :mod:`training.datagen` (made once, cached under ``.cache/proposal-data``).  Training is
reproducible from the seed: batch ``k`` is drawn from ``default_rng([seed, k])``, so a resumed run sees the
same batches as an uninterrupted one.  A checkpoint (model + AdamW state as safetensors, step as JSON; no
pickle) is written next to ``--out`` every ``--ckpt-every`` steps and at the end; losses and held-out
figures are appended to ``runs/proposal-seed<S>.jsonl``.  The shipped file is float16 safetensors.

Losses, per frame of a random 256-frame crop (see docs/training.md):

- onset: BCE against a Gaussian bump (σ = 0.5 frame ≈ 6 ms) at each labelled onset, positives weighted ×10;
- pitch: multi-label BCE over half-semitone bins (Gaussian σ = 1 bin), on frames within ±1 of an onset;
- vector: L1 in unit-interval space at ±1 frame of each onset (the loudest event wins a frame), weighted per
  dimension (:data:`DIM_WEIGHTS`, pitch highest) and masked by what the label knows.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparsecodec.encoder.proposal import (
    ANALYSIS_RATE,
    HOP,
    N_PITCH,
    ModelConfig,
    ProposalModel,
    ProposalNet,
    pitch_bin,
    save_weights,
)
from sparsecodec.format import events
from training import datagen

FPS = ANALYSIS_RATE / HOP
"""Network frames per second."""

DIM_WEIGHTS = np.full(events.N_DIMS, 0.3)
for _name, _w in {
    "pitch": 3.0, "level": 2.0, "noise_mix": 2.0, "attack": 1.0, "duration": 1.0, "release": 1.0,
    "t60_low": 1.0, "t60_high": 1.0, "cutoff": 1.0, "tilt": 0.5, "noise_centre": 0.7, "noise_width": 0.5,
    "noise_decay": 0.7, "noise_attack": 0.5,
}.items():  # fmt: skip
    DIM_WEIGHTS[events.INDEX[_name]] = _w
for _j in range(1, 8):
    DIM_WEIGHTS[events.INDEX[f"env{_j}"]] = 0.5
"""Per-dimension weights of the vector loss (unit-interval L1)."""


@dataclass
class Data:
    """All shards in memory: features float16[N, F, T] and per-example event label arrays."""

    feats: np.ndarray
    times: list[np.ndarray] = field(default_factory=list)  # float32[K] per example
    units: list[np.ndarray] = field(default_factory=list)  # float32[K, 32]
    masks: list[np.ndarray] = field(default_factory=list)  # float32[K, 32]

    @classmethod
    def load(cls, paths: list[Path]) -> Data:
        """Concatenate shards written by :func:`datagen.build`."""
        feats, times, units, masks = [], [], [], []
        for p in paths:
            d = datagen.load_shard(p)
            feats.append(d["feats"])
            for i in range(d["feats"].shape[0]):
                sel = d["ev_example"] == i
                times.append(d["ev_time"][sel])
                units.append(d["ev_unit"][sel])
                masks.append(d["ev_mask"][sel])
        return cls(np.concatenate(feats), times, units, masks)


def targets(
    times: np.ndarray, units: np.ndarray, masks: np.ndarray, start: int, length: int, gain_db: float = 0.0
) -> dict[str, np.ndarray]:
    """Frame targets for one crop ``[start, start + length)`` (frames).

    Returns ``onset`` float32[L], ``near`` float32[L] (frames within ±1 of an onset), ``pitch``
    float32[N_PITCH, L], ``unit`` float32[32, L] and ``mask`` float32[32, L].
    """
    onset = np.zeros(length, np.float32)
    pitch = np.zeros((N_PITCH, length), np.float32)
    unit = np.zeros((events.N_DIMS, length), np.float32)
    mask = np.zeros((events.N_DIMS, length), np.float32)
    frames = np.arange(length) + start
    bins = np.arange(N_PITCH)
    lvl, pi, nm = events.INDEX["level"], events.INDEX["pitch"], events.INDEX["noise_mix"]
    order = np.argsort(units[:, lvl], kind="stable") if len(times) else np.zeros(0, int)
    for k in order:
        tf = float(times[k]) * FPS
        if tf < start - 3 or tf > start + length + 3:
            continue
        onset = np.maximum(onset, np.exp(-0.5 * ((frames - tf) / 0.5) ** 2).astype(np.float32))
        centre = round(tf) - start
        lo, hi = max(0, centre - 1), min(length, centre + 2)
        if hi <= lo:
            continue
        u = units[k].copy()
        u[lvl] += gain_db / (events.HI[lvl] - events.LO[lvl])
        unit[:, lo:hi] = u[:, None]
        mask[:, lo:hi] = masks[k][:, None]
        if masks[k][pi] > 0 and u[nm] < events.PITCHED_NOISE_MIX:
            p = float(events.from_unit(u[None].astype(np.float64))[0, pi])
            bump = np.exp(-0.5 * (bins - pitch_bin(np.array(p))) ** 2).astype(np.float32)
            pitch[:, lo:hi] = np.maximum(pitch[:, lo:hi], bump[:, None])
    near = np.zeros(length, np.float32)
    for k in range(len(times)):
        c = round(float(times[k]) * FPS) - start
        near[max(0, c - 1) : max(0, min(length, c + 2))] = 1.0
    return {"onset": onset, "near": near, "pitch": pitch, "unit": unit, "mask": mask}


def make_batch(data: Data, rng: np.random.Generator, batch: int, crop: int) -> dict[str, torch.Tensor]:
    """Random crops with random gain (−12..+6 dB, applied to features and level labels)."""
    n, _, t_total = data.feats.shape
    xs, tg = [], []
    for _ in range(batch):
        i = int(rng.integers(0, n))
        s = int(rng.integers(0, t_total - crop + 1))
        g = float(rng.uniform(-12.0, 6.0))
        x = data.feats[i, :, s : s + crop].astype(np.float32) + g / 25.0
        xs.append(np.maximum(x, -2.0))
        tg.append(targets(data.times[i], data.units[i], data.masks[i], s, crop, g))
    out = {"x": torch.from_numpy(np.stack(xs))}
    for key in tg[0]:
        out[key] = torch.from_numpy(np.stack([t[key] for t in tg]))
    return out


def losses(model: ProposalModel, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The three loss terms and their sum (``total``) for a batch from :func:`make_batch`."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    onset, pitch, vec = model(b["x"])
    w_on = 1.0 + 9.0 * b["onset"]
    l_on = (bce(onset, b["onset"], reduction="none") * w_on).sum() / w_on.sum()
    near = b["near"][:, None, :]
    w_p = near * (1.0 + 4.0 * b["pitch"])
    l_p = (bce(pitch, b["pitch"], reduction="none") * w_p).sum() / w_p.sum().clamp(min=1.0)
    dw = torch.as_tensor(DIM_WEIGHTS, dtype=torch.float32)[None, :, None] * b["mask"]
    l_v = ((torch.sigmoid(vec) - b["unit"]).abs() * dw).sum() / dw.sum().clamp(min=1.0)
    return {"onset": l_on, "pitch": l_p, "vector": l_v, "total": l_on + l_p + 2.0 * l_v}


# ---------------------------------------------------------------------------------------- evaluation


def evaluate(net: ProposalNet, data: Data, max_examples: int = 40) -> dict[str, float]:
    """Held-out figures on full windows through :meth:`ProposalNet.propose` (all proposals, whole window).

    ``onset_recall``: labelled onsets with a proposal within 20 ms; ``onset_precision``: proposals within
    20 ms of a labelled onset; ``pitch_recall``: pitched labels with a proposal within 20 ms *and* 1 semitone;
    ``level_mae_db``: level error of the best-matching proposal (where levels are labelled).
    """
    hit = tot = p_hit = p_tot = ph = pt = 0
    lvl_err: list[float] = []
    pi, li = events.INDEX["pitch"], events.INDEX["level"]
    n_frames = data.feats.shape[2]
    for i in range(min(max_examples, data.feats.shape[0])):
        times, units, masks = data.times[i], data.units[i], data.masks[i]
        if times.size == 0:
            continue
        truth = events.from_unit(units.astype(np.float64))
        # re-synthesising audio is not possible from features: run the model on the stored features
        prop = _propose_from_features(net, data.feats[i].astype(np.float32), n_frames)
        vec, ts = prop
        tot += times.size
        dt = np.abs(ts[None, :] - times[:, None]) if ts.size else np.zeros((times.size, 0))
        near = dt <= 0.020
        hit += int(near.any(axis=1).sum())
        p_tot += ts.size
        p_hit += int(near.any(axis=0).sum()) if ts.size else 0
        pitched = (masks[:, pi] > 0) & events.is_pitched(truth)
        for k in np.flatnonzero(pitched):
            pt += 1
            cand = near[k]
            if cand.any() and np.any(np.abs(vec[cand, pi] - truth[k, pi]) <= 1.0):
                ph += 1
        for k in np.flatnonzero(masks[:, li] > 0):
            if near[k].any():
                cand = np.flatnonzero(near[k])
                lvl_err.append(float(np.min(np.abs(vec[cand, li] - truth[k, li]))))
    return {
        "onset_recall": hit / max(tot, 1),
        "onset_precision": p_hit / max(p_tot, 1),
        "pitch_recall": ph / max(pt, 1),
        "level_mae_db": float(np.mean(lvl_err)) if lvl_err else float("nan"),
        "n_labels": float(tot),
    }


def _propose_from_features(net: ProposalNet, feats: np.ndarray, n_frames: int) -> tuple[np.ndarray, ...]:
    """``propose`` on precomputed features (whole window, up to 200 proposals): (vectors, times)."""
    vec, ts, _ = net.propose_features(feats, n_frames * HOP / ANALYSIS_RATE, 200, first_half=False)
    return vec, ts


# ------------------------------------------------------------------------------------- checkpointing


def save_checkpoint(
    path: Path, model: ProposalModel, opt: torch.optim.Optimizer, info: dict[str, Any]
) -> None:
    """Model + optimizer tensors to ``path`` (safetensors) and ``info`` + param groups to ``path.json``."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    sd = opt.state_dict()
    for idx, st in sd["state"].items():
        for name, val in st.items():
            t = val if isinstance(val, torch.Tensor) else torch.tensor(float(val))
            tensors[f"opt.{idx}.{name}"] = t.detach().clone().contiguous()
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)
    meta = dict(info, param_groups=sd["param_groups"])
    Path(str(path) + ".json").write_text(json.dumps(meta, indent=1))


def load_checkpoint(path: Path, model: ProposalModel, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore what :func:`save_checkpoint` wrote; return its ``info``."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    meta = json.loads(Path(str(path) + ".json").read_text())
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    return dict(meta)


# ------------------------------------------------------------------------------------------------ main


def _lr(step: int, total: int, base: float) -> float:
    """Linear warm-up (100 steps) then cosine decay to 5 % of ``base`` at ``total``."""
    if step < 100:
        return base * (step + 1) / 100
    frac = min(1.0, (step - 100) / max(1, total - 100))
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))


def _datasets(
    args: argparse.Namespace, say: Callable[[str], None]
) -> tuple[list[Path], Data, dict[str, Data]]:
    """``(training files, training data, held-out data by kind)``, made by :mod:`training.datagen` once."""
    t_data = time.time()
    train_paths = datagen.build(args.data_dir, args.seed, args.n_synth, args.n_fluid, log=say)
    eval_paths = datagen.build(args.data_dir, args.seed + 10_000, args.n_eval, args.n_eval, log=say)
    data = Data.load(train_paths)
    held = {
        "synth": Data.load([p for p in eval_paths if p.name.startswith("synth")]),
        "fluid": Data.load([p for p in eval_paths if p.name.startswith("fluid")]),
    }
    say(f"data: {data.feats.shape[0]} windows ({time.time() - t_data:.0f} s)")
    return train_paths, data, held


def _train_step(
    model: ProposalModel, opt: torch.optim.Optimizer, data: Data, args: argparse.Namespace, step: int
) -> dict[str, float]:
    """One optimiser step on batch ``step`` (drawn from ``default_rng([seed, step])``); its losses."""
    for g in opt.param_groups:
        g["lr"] = _lr(step, args.steps, args.lr)
    batch = make_batch(data, np.random.default_rng([args.seed, step]), args.batch, args.crop)
    ls = losses(model, batch)
    opt.zero_grad(set_to_none=True)
    ls["total"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return {k: float(v.detach()) for k, v in ls.items()}


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume) training as configured by :func:`parser`'s arguments; return the final figures."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt = Path(args.checkpoint) if args.checkpoint else Path(".cache") / f"proposal-seed{args.seed}.ckpt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    log_path = Path(args.log_dir) / f"proposal-seed{args.seed}.jsonl"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def log(rec: dict[str, Any]) -> None:
        with log_path.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    train_paths, data, held = _datasets(args, say)

    model = ProposalModel(ModelConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step, elapsed = 0, 0.0
    if args.resume and ckpt.is_file():
        info = load_checkpoint(ckpt, model, opt)
        step, elapsed = int(info["step"]), float(info["elapsed_s"])
        say(f"resumed at step {step} ({elapsed:.0f} s trained)")
    elif not args.resume and log_path.exists():
        log_path.unlink()
    budget = args.minutes * 60.0 if args.minutes else float("inf")
    t0 = time.time() - elapsed
    running: dict[str, float] = {}
    model.train()
    stop = min(args.steps, args.stop_after) if args.stop_after else args.steps
    while step < stop and time.time() - t0 < budget:
        ls = _train_step(model, opt, data, args, step)
        step += 1
        for k, v in ls.items():
            running[k] = running.get(k, 0.0) + v
        if step % args.log_every == 0:
            rec = {"step": step, "time_s": round(time.time() - t0, 1), "lr": _lr(step, args.steps, args.lr)}
            rec.update({k: round(v / args.log_every, 5) for k, v in running.items()})
            running = {}
            log(rec)
            say(json.dumps(rec))
        if step % args.ckpt_every == 0:
            save_checkpoint(
                ckpt, model, opt, {"step": step, "elapsed_s": time.time() - t0, "seed": args.seed}
            )
        if args.eval_every and step % args.eval_every == 0:
            model.eval()
            figs = {k: evaluate(ProposalNet(model, ""), d, args.eval_examples) for k, d in held.items()}
            model.train()
            log({"step": step, "eval": figs})
            say(json.dumps({"step": step, "eval": figs}))
    save_checkpoint(ckpt, model, opt, {"step": step, "elapsed_s": time.time() - t0, "seed": args.seed})
    model.eval()
    extra = {
        "steps": step,
        "seed": args.seed,
        "train_s": round(time.time() - t0),
        "data": train_paths[0].parent.name,
    }
    digest = save_weights(model, out, half=True, extra=extra)
    net = ProposalNet.from_file(out)
    figs = {k: evaluate(net, d, args.eval_examples) for k, d in held.items()}
    result = {
        "final": True,
        "step": step,
        "train_s": round(time.time() - t0, 1),
        "weights_hash": digest,
        "eval": figs,
    }
    log(result)
    say(json.dumps(result))
    return result


def parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m training.train``."""
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="weights file to write (float16 safetensors)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget (stops early)")
    p.add_argument("--steps", type=int, default=6000, help="optimizer steps (the LR schedule's length)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    p.add_argument("--stop-after", type=int, default=None, help="stop at this step (schedule unchanged)")
    p.add_argument(
        "--checkpoint", default=None, help="checkpoint path (default .cache/proposal-seed<S>.ckpt)"
    )
    p.add_argument("--data-dir", default=".cache/proposal-data")
    p.add_argument("--n-synth", type=int, default=800, help="synthetic training windows")
    p.add_argument("--n-fluid", type=int, default=800, help="fluidsynth training windows")
    p.add_argument("--n-eval", type=int, default=50, help="held-out windows of each kind")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=256, help="frames per training crop")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--log-dir", default="runs")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--eval-examples", type=int, default=50)
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    train(parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
