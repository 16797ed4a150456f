"""Reference transcribers for the notes categories: basic-pitch (Spotify's ICASSP 2022 model).

basic-pitch lives in its own venv (``.cache/basic-pitch-venv``, made by ``bench/setup.sh``: it pins
tensorflow < 2.15.1 and an old numpy, which must not enter the venv spev is measured in; the bench installs
it ``--no-deps`` with onnxruntime, and its wheel ships the ``.onnx`` model).  :func:`basic_pitch` runs
``bench/basic_pitch_worker.py`` there in a subprocess, at basic-pitch's default thresholds, and caches each
clip's notes under ``.cache/basic-pitch/`` by the SHA-256 of the WAV's bytes and of the worker script.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sparsecodec.errors import SpevError

ROOT = Path(__file__).resolve().parent.parent
BASIC_PITCH_VENV = ROOT / ".cache" / "basic-pitch-venv"
CACHE_DIR = ROOT / ".cache" / "basic-pitch"
WORKER = Path(__file__).with_name("basic_pitch_worker.py")
MAX_RESULT_BYTES = 64 << 20


class TranscriberError(SpevError):
    """A transcriber is missing or failed on a clip (recorded per clip; the run goes on)."""


def basic_pitch_python(venv: Path = BASIC_PITCH_VENV) -> Path | None:
    """The basic-pitch venv's Python, or None when ``bench/setup.sh`` has not made it."""
    py = venv / "bin" / "python"
    return py if py.is_file() else None


def _key(wav: Path) -> str:
    h = hashlib.sha256(WORKER.read_bytes())
    with open(wav, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def basic_pitch(
    wavs: Sequence[Path], timeout_s: float = 600.0, cache_dir: Path | None = CACHE_DIR
) -> dict[Path, dict[str, Any]]:
    """basic-pitch's notes for each WAV: ``{wav: {"notes": [{"onset", "offset", "pitch", "amplitude",
    "velocity"}], "basic_pitch": version, "onnxruntime": version, "model": name, "seconds": wall time of
    the uncached run, "cached": bool}}``.  Uncached clips go through one worker process together.

    Raises :class:`TranscriberError` when the venv is missing, the worker fails or times out."""
    py = basic_pitch_python()
    if py is None:
        raise TranscriberError(f"basic-pitch is not installed in {BASIC_PITCH_VENV} (run bench/setup.sh)")
    out: dict[Path, dict[str, Any]] = {}
    todo: dict[Path, str] = {}
    for wav in wavs:
        key = _key(wav)
        hit = cache_dir / f"{key}.json" if cache_dir is not None else None
        if hit is not None and hit.is_file() and hit.stat().st_size < MAX_RESULT_BYTES:
            try:
                out[wav] = {**json.loads(hit.read_text()), "cached": True}
                continue
            except ValueError:
                pass  # a damaged cache entry: transcribe again
        todo[wav] = key
    if not todo:
        return out
    with tempfile.TemporaryDirectory() as tmp:
        res_path = Path(tmp) / "out.json"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(OMP_NUM_THREADS="2", MKL_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", NUMBA_NUM_THREADS="2")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [str(py), str(WORKER), str(res_path), *(str(w) for w in todo)],
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout_s,
                env=env,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise TranscriberError(f"basic-pitch timed out after {timeout_s:.0f} s") from e
        seconds = time.perf_counter() - t0
        if proc.returncode != 0 or not res_path.is_file():
            tail = (proc.stderr or proc.stdout)[-600:].strip()
            raise TranscriberError(f"basic-pitch worker: exit {proc.returncode}: {tail}")
        if res_path.stat().st_size > MAX_RESULT_BYTES:
            raise TranscriberError("basic-pitch worker output is implausibly large")
        doc = json.loads(res_path.read_text())
    meta = {k: doc.get(k) for k in ("basic_pitch", "onnxruntime", "model")}
    for wav, key in todo.items():
        entry = {"notes": doc["clips"][str(wav)], **meta, "seconds": seconds / len(todo)}
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp_entry = cache_dir / f"{key}.json.{os.getpid()}.tmp"
            tmp_entry.write_text(json.dumps(entry))
            tmp_entry.replace(cache_dir / f"{key}.json")
        out[wav] = {**entry, "cached": False}
    return out
