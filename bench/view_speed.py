"""``spev view`` speed: build a page for a long file and time it in headless Chromium.

Default file: 4 minutes of 20 events/s (4800 prior events, 44.1 kHz stereo, as ``bench/decode_speed.py``
writes them); ``--spev FILE`` measures a real one instead.  Prints one line and, with ``--json``, a JSON
object: page size, build time (clip rendering and the rest), page ready time, median time of 60 pans at
5 % zoom, and one whole-file redraw.  Targets (docs/view.md): ready < 2 s, pan < 16.7 ms (one frame at
60 Hz), whole-file draw < 100 ms.  Timings live here, not in the tests (shared machines are noisy).

    python -m bench.view_speed [--seconds 240] [--eps 20] [--spev FILE] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.browser import CHROMIUM, Chromium
from bench.decode_speed import synthetic_events, write_spev
from sparsecodec.tools import view

PAN_JS = (
    "(() => { const t = []; for (let k = 0; k < 60; k++) { const a = performance.now(); "
    "spevView.pan(0.4); t.push(performance.now() - a); } return t; })()"
)
WHOLE_JS = (
    "(() => { spevView.zoom(1000); const a = performance.now(); spevView.pan(0); "
    "return performance.now() - a; })()"
)


def measure(src: Path, workdir: Path) -> dict[str, Any]:
    """Build ``src``'s page in ``workdir`` and time it: sizes in bytes, times in ms (build in s)."""
    if CHROMIUM is None:
        raise RuntimeError("needs Debian's chromium (bash scripts/install.sh test installs it)")
    page = workdir / "page.html"
    t0 = time.perf_counter()
    result = view.view_file(src, page)
    build_s = time.perf_counter() - t0
    b = Chromium(CHROMIUM)
    try:
        b.open(page)
        ready_ms = float(b.js("spevView.readyMs"))
        b.js("spevView.zoom(0.05)")
        pans = [float(t) for t in b.js(PAN_JS)]
        whole_ms = float(b.js(WHOLE_JS))
    finally:
        b.close()
    return {
        "events": result.events,
        "page_mb": page.stat().st_size / 1e6,
        "clip_kbps": result.clip_kbps,
        "build_s": build_s,
        "build_parts_s": result.timings,
        "ready_ms": ready_ms,
        "pan_median_ms": float(np.median(pans)),
        "whole_draw_ms": whole_ms,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.view_speed", description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=240.0)
    ap.add_argument("--eps", type=float, default=20.0, help="events per second of the synthetic file")
    ap.add_argument("--spev", type=Path, default=None, help="measure this file instead of a synthetic one")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="spev-view-speed-") as tmp:
        work = Path(tmp)
        src = args.spev
        if src is None:
            src = work / "long.spev"
            rate = 44100
            vectors, times = synthetic_events(args.seconds, rate, args.eps, seed=7)
            write_spev(src, vectors, times, int(args.seconds * rate), rate, 2, room=False)
        try:
            fig = measure(src, work)
        except RuntimeError as e:
            print(f"bench.view_speed: {e}", file=sys.stderr)
            return 3
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in fig["build_parts_s"].items())
    print(
        f"{fig['events']} events: page {fig['page_mb']:.2f} MB, build {fig['build_s']:.1f} s ({parts}), "
        f"ready {fig['ready_ms']:.0f} ms, "
        f"pan median {fig['pan_median_ms']:.1f} ms, whole-file draw {fig['whole_draw_ms']:.1f} ms"
    )
    if args.json:
        args.json.write_text(json.dumps(fig, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
