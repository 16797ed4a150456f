"""Rate-quality plot: true kbps vs mean ViSQOL per category, spev vs Opus vs MP3 (+ the band-limit ceiling).

``python -m bench.plot bench-out/results.json [OUT.png]`` redraws it from a results file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STYLE = {
    "spev": ("tab:red", "o"),
    "opus": ("tab:blue", "s"),
    "mp3": ("tab:green", "^"),
    "codec2": ("tab:purple", "D"),
}
CATEGORIES = ("music", "speech", "voice", "notes", "notes-fp", "long")
SPEECH_MODE = ("speech", "voice")


def plot_rate_quality(summary: Sequence[dict[str, Any]], path: Path) -> None:
    """One panel per category: x = true kbps, y = mean ViSQOL; one series per codec family.

    Rows without bytes (the ceiling) are drawn as a dashed horizontal line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    cats = [c for c in CATEGORIES if any(s["category"] == c for s in summary)]
    fig, axes = plt.subplots(1, max(1, len(cats)), figsize=(4.2 * max(1, len(cats)), 3.8), squeeze=False)
    for ax, cat in zip(axes[0], cats, strict=False):
        rows = [s for s in summary if s["category"] == cat and "visqol" in s]
        for fam in sorted({s["family"] for s in rows}):
            pts = sorted(
                (s["kbps"], s["visqol"], s["codec"]) for s in rows if s["family"] == fam and "kbps" in s
            )
            if not pts:
                continue
            colour, marker = STYLE.get(fam, ("tab:gray", "x"))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, color=colour, label=fam)
            for x, y, name in pts:
                ax.annotate(name, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        for s in rows:
            if s["family"] == "ceiling":
                ax.axhline(s["visqol"], color="k", ls="--", lw=0.8, label=s["codec"])
        ax.set_title(f"{cat} ({'speech mode' if cat in SPEECH_MODE else 'audio mode'})")
        ax.set_xlabel("true kbps")
        ax.set_ylabel("ViSQOL v3 (MOS-LQO)")
        ax.set_xscale("log")
        ax.set_xticks([0.5, 1, 2, 4, 8, 16, 32])
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m bench.plot RESULTS.json [OUT.png]", file=sys.stderr)
        return 2
    src = Path(args[0])
    doc = json.loads(src.read_text())
    plot_rate_quality(doc["summary"], Path(args[1]) if len(args) > 1 else src.with_name("rate_quality.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
