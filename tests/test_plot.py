"""``spev plot``: the PNG is produced, non-trivial and deterministic; small-N fallbacks work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from sparsecodec.cli import cli
from sparsecodec.format import container, events
from sparsecodec.synth import render_np
from sparsecodec.tools import edit, plot

RATE = 16000


def small_file(path: Path, n: int, seconds: float = 3.0) -> Path:
    rng = np.random.default_rng(n)
    header = container.Header(
        layout_version=1,
        encoder_id="test-plot",
        weights_hash="",
        sample_rate=RATE,
        channels=1,
        n_samples=round(seconds * RATE),
        time_rate=RATE,
        hop_samples=RATE,
    )
    ev = edit.Events(events.sample_prior(rng, n), np.sort(rng.uniform(0, seconds - 0.2, n)), seconds)
    edit.write_events(path, header, ev, force=False)
    return path


def test_plot_png_with_source_is_non_trivial(runner: CliRunner, tmp_path: Path) -> None:
    import matplotlib.image

    src = small_file(tmp_path / "s.spev", 14)
    _, ev = edit.read_events(src)
    audio = render_np.render(ev.vectors, ev.times_s, 3 * RATE, RATE)
    wav = tmp_path / "s.wav"
    sf.write(str(wav), audio.T, RATE)
    out = tmp_path / "timeline.png"
    result = runner.invoke(cli, ["plot", str(src), "-o", str(out), "--source", str(wav)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(str(out))
    assert img.shape[0] > 500 and img.shape[1] >= 900  # three panels
    rgb = img[..., :3].reshape(-1, 3)
    assert rgb.std() > 0.1
    assert len(np.unique(np.round(rgb * 255).astype(int), axis=0)) > 200  # spectrogram + coloured events
    # exists → refused without --force
    again = runner.invoke(cli, ["plot", str(src), "-o", str(out)])
    assert again.exit_code == 5


@pytest.mark.parametrize("n", [0, 1, 3])
def test_plot_tiny_files_and_determinism(tmp_path: Path, n: int) -> None:
    src = small_file(tmp_path / "t.spev", n)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    plot.plot_file(src, a)
    plot.plot_file(src, b)
    assert a.stat().st_size > 5000
    assert a.read_bytes() == b.read_bytes()


def test_embedding_and_colours() -> None:
    rng = np.random.default_rng(0)
    unit = events.to_unit(events.sample_prior(rng, 8))
    y = plot.embed_1d(unit)
    assert y.shape == (8,) and y.min() == 0.0 and y.max() == 1.0
    np.testing.assert_array_equal(y, plot.embed_1d(unit))
    c = plot.colours(unit)
    assert c.shape == (8, 3) and (c >= 0.1).all() and (c <= 0.9).all()
    assert plot.embed_1d(unit[:2]).tolist() in ([0.0, 1.0], [1.0, 0.0])
