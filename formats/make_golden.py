"""Write the .spev golden files (format versions 1 and 2; layouts 1 and 2) and their expected events.

    python formats/make_golden.py            # write missing goldens only (released ones are frozen)
    python formats/make_golden.py --check    # regenerate in memory, compare with the stored files
    python formats/make_golden.py --audio    # add reference decodes NAME.wav (16-bit)

Each golden ``NAME.spev`` comes with ``NAME.events.json``: the header fields, every chunk's times, codes
and side data, and the SHA-256 of the file.  Events are drawn from ``events.sample_prior`` with fixed seeds
and quantised with the default table; ``tests/test_golden.py`` never regenerates them, so later changes to
the prior cannot alter a frozen golden.  The format-2 goldens ``NAME-f2`` hold exactly the events of the
format-1 golden ``NAME`` (only the comment tag differs), and their reference decode is ``NAME.wav``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sparsecodec.format import container, events, quantize

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"

AUDIO_TOLERANCE = {"max_abs": 1e-3, "snr_db": 50.0}
"""Tolerance for reference decodes (float32 WAV), checked by tests/test_golden.py when a WAV exists."""

# name: (sample_rate, channels, n_chunks, events per chunk, seed, side data every other chunk)
SPECS: dict[str, tuple[int, int, int, tuple[int, ...], int, bool]] = {
    "mono": (44100, 1, 3, (6, 0, 9), 1, False),
    "stereo_room": (48000, 2, 3, (8, 5, 3), 2, True),
    "mono_room": (22050, 1, 2, (4, 7), 3, True),
    "empty": (44100, 1, 0, (), 4, False),
}
# layout 2 (voice knots and notes): name: (sample_rate, channels, n_chunks, notes per chunk, seed, side data)
SPECS_L2: dict[str, tuple[int, int, int, tuple[int, ...], int, bool]] = {
    "voice_mix": (16000, 1, 3, (3, 0, 5), 5, False),
    "voice_stereo": (44100, 2, 2, (4, 2), 6, True),
}
SPECS.update(SPECS_L2)
F2_SUFFIX = "-f2"
"""Golden ``NAME-f2`` is golden ``NAME``'s events written in format 2."""
GOLDENS: dict[str, tuple[str, int]] = {
    **{name: (name, 1) for name in SPECS},
    **{name + F2_SUFFIX: (name, 2) for name in SPECS},
}
"""Every golden: its events (a key of :data:`SPECS`) and its format version."""


def build(golden: str) -> tuple[container.Header, list[container.Chunk]]:
    """The fixed header and chunks of golden ``golden``."""
    name, version = GOLDENS[golden]
    rate, channels, n_chunks, per_chunk, seed, side = SPECS[name]
    hop = 2**17 if rate > 30000 else 2**16
    rng = np.random.default_rng(seed)
    layout = 2 if name in SPECS_L2 else 1
    header = container.Header(
        layout_version=layout,
        encoder_id="golden",
        weights_hash="0" * 16,
        sample_rate=rate,
        channels=channels,
        n_samples=max(n_chunks * hop - 1234, 0),
        time_rate=rate,
        hop_samples=hop,
        table=quantize.TABLES["layout2"] if layout == 2 else quantize.default_table(),
        settings={"analysis_rate": rate, "kbps": 3.0},
        tags={"title": f"golden {name}", "comment": f"format {version} / layout {layout}, frozen"},
        software="spev golden",
        history=[],
    )
    chunks = []
    for i in range(n_chunks):
        n = per_chunk[i]
        times = np.sort(rng.integers(i * hop, (i + 1) * hop, n)).astype(np.int64)
        vectors = events.sample_prior(rng, n)
        if layout == 2:  # a voice track through the chunk, with a pause, among the notes
            knot_t, knots = _voice_knots(rng, i * hop, hop, rate)
            times = np.concatenate([times, knot_t])
            vectors = np.concatenate([vectors, knots])
            order = np.argsort(times, kind="stable")
            times, vectors = times[order], vectors[order]
        codes = quantize.quantize(vectors, header.table)
        room = {"room": [float(np.float32(0.25 + 0.5 * i)), 0.5]} if side and i % 2 == 0 else {}
        chunks.append(container.Chunk(i, i * hop, hop, times, codes, room))
    return header, chunks


def _voice_knots(rng: np.random.Generator, start: int, hop: int, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Voice knots every 25 ms over ``[start, start + hop)``: a random-walk f0 and envelope, random voicing,
    silent for a stretch in the middle (times int64[K], vectors float64[K, 32])."""
    step = round(0.025 * rate)
    t = np.arange(start, start + hop, step, dtype=np.int64)
    k = len(t)
    v = events.voice_defaults(k)
    c = events.VOICE_INDEX
    v[:, c["pitch"]] = 50.0 + np.cumsum(rng.normal(0.0, 0.3, k))
    v[:, c["level"]] = np.where(np.abs(np.arange(k) - k // 2) < k // 8, -120.0, rng.uniform(-40.0, -15.0, k))
    v[:, c["voicing1"] : c["voicing1"] + 4] = rng.integers(0, 4, (k, 4)) / 3.0
    v[:, c["ceps1"] : c["ceps1"] + 16] = np.cumsum(rng.normal(0.0, 0.2, (k, 16)), axis=0) / np.arange(1, 17)
    v[:, c["pan"]] = np.clip(rng.normal(0.0, 0.3), -1.0, 1.0)
    return t, events.clip(v)


def expected_json(
    header: container.Header, chunks: list[container.Chunk], data: bytes, version: int
) -> dict[str, Any]:
    """The ``NAME.events.json`` content."""
    return {
        "format_version": version,
        "sha256": hashlib.sha256(data).hexdigest(),
        "header": header.to_dict(),
        "chunks": [
            {
                "index": c.index,
                "start": c.start,
                "length": c.length,
                "times": [int(t) for t in c.times],
                "codes": np.asarray(c.codes).astype(int).tolist(),
                "side": c.side,
            }
            for c in chunks
        ],
        "audio": None,
    }


def dumps(obj: Any) -> str:
    """JSON with one line per list of numbers (codes rows, times) and one key per line elsewhere."""
    text = json.dumps(obj, indent=1, ensure_ascii=False)
    number_list = re.compile(r"\[\s*([-+0-9.eE]+(?:\s*,\s*[-+0-9.eE]+)*)\s*\]")
    return (
        number_list.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
        + "\n"
    )


def encode(header: container.Header, chunks: list[container.Chunk], version: int) -> bytes:
    bio = io.BytesIO()
    container.write_file(bio, header, chunks, format_version=version)
    return bio.getvalue()


def write_audio(name: str) -> None:
    """Decode ``NAME.spev`` to a 16-bit WAV reference (quantisation 1.5e-5, far inside the tolerance) and
    record it in the JSON.  A format-2 golden's reference is its format-1 twin's WAV (the same events must
    give the same audio), which must exist already."""
    from sparsecodec import api as codec  # imported late: needs the decoder

    events_of, version = GOLDENS[name]
    spev = GOLDEN_DIR / f"{name}.spev"
    wav = GOLDEN_DIR / f"{events_of}.wav"
    if version == 1:
        codec.decode_file(spev, wav, bits="16")
    elif not wav.exists():
        raise SystemExit(f"{name}: {wav.name} is missing (the format-1 golden's reference decode)")
    meta_path = GOLDEN_DIR / f"{name}.events.json"
    meta = json.loads(meta_path.read_text())
    meta["audio"] = {"file": wav.name, **AUDIO_TOLERANCE}
    meta_path.write_text(dumps(meta))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare regenerated goldens with the stored ones")
    ap.add_argument("--audio", action="store_true", help="write reference decodes for goldens without one")
    args = ap.parse_args(argv)
    GOLDEN_DIR.mkdir(exist_ok=True)
    bad = 0
    for name, (_, version) in GOLDENS.items():
        header, chunks = build(name)
        data = encode(header, chunks, version)
        spev = GOLDEN_DIR / f"{name}.spev"
        meta = GOLDEN_DIR / f"{name}.events.json"
        if args.check:
            same = spev.exists() and spev.read_bytes() == data
            print(f"{name}: {'ok' if same else 'DIFFERS'}")
            bad += not same
            continue
        if spev.exists():
            print(f"{name}: exists (frozen), left alone")
        else:
            spev.write_bytes(data)
            meta.write_text(dumps(expected_json(header, chunks, data, version)))
            print(f"{name}: wrote {len(data)} bytes")
        if args.audio and json.loads(meta.read_text()).get("audio") is None:
            write_audio(name)
            print(f"{name}: wrote reference audio")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
