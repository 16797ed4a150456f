"""``spev view`` (#19): the page is built by the real decoder, self-contained and escaped; headless Chromium
(Debian's ``chromium``, driven over the DevTools protocol on a pipe: no driver, no download) loads it from
``file://`` with no network request and no console error, draws every event, plays the clicked event's own
clip (decoded here and compared with ``render()`` of that event), shows ``spev export``'s values on hover,
moves with the keyboard, and a 4-minute, 4800-event file meets the size and load-time figures.

Clip tolerance (Opus at 8-16 kbit/s against ``render_np.render`` of the event alone, both at 16 kHz): the
20 ms RMS envelope within 3 dB (median) over the frames within 40 dB of the peak, the third-octave band
levels (100 Hz-6.4 kHz, bands within 30 dB of the loudest) within 3 dB on average and 8 dB at most, and
the clip closer to its own event's render than to any other event's.  Measured: medians ≤ 2.5 dB, band
means ≤ 2.5 dB; the next-closest event is ≥ 5 dB away.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from bench.browser import CHROMIUM, Chromium
from sparsecodec.cli import cli
from sparsecodec.format import events
from sparsecodec.synth import kernels, render_np
from sparsecodec.tools import view
from sparsecodec.tools.edit import read_events
from sparsecodec.tools.export import import_file

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (bash scripts/install.sh test installs it)"
)
HOSTILE_TAG = '</script><img src=x onerror="window.pwned=1">&amp; <b>bold</b>'
HOSTILE_NAME = "song <img src=x onerror=alert(1)> & co.spev"
RATE = 22050


# ------------------------------------------------------------------------------------------ files


def song_events() -> list[dict[str, Any]]:
    """A C major scale of pitched notes with different timbres, and noise hits between them, 8 s."""
    out: list[dict[str, Any]] = []
    for k, pitch in enumerate([60, 62, 64, 65, 67, 69, 71, 72]):
        out.append(
            {
                "time": 0.25 + 0.9 * k,
                "pitch": pitch + 0.02 * k,
                "level": -14.0 - k,
                "duration": 0.3 + 0.05 * k,
                "tilt": -3.0 - 2 * k,
                "odd_even": -10.0 if k % 2 else 0.0,
                "t60_low": 1.5,
                "vibrato_depth": 20.0 * (k % 3),
                "pan": -0.5 + k / 8,
            }
        )
    for k in range(6):
        out.append(
            {
                "time": 0.7 + 1.2 * k,
                "pitch": 48.0,
                "level": -20.0,
                "noise_mix": 1.0,
                "noise_centre": 500.0 * 2**k,
                "noise_width": 1.0,
                "noise_decay": 0.15,
            }
        )
    return out


def write_song(folder: Path, name: str = HOSTILE_NAME, evs: list[dict[str, Any]] | None = None) -> Path:
    doc = {
        "header": {
            "sample_rate": RATE,
            "n_samples": 8 * RATE,
            "tags": {"title": HOSTILE_TAG, "artist": "Ünïcode ✓ \u2028 line"},
            "encoder_id": "test-view",
        },
        "events": song_events() if evs is None else evs,
    }
    src = folder / "song.json"
    src.write_text(json.dumps(doc))
    dst = folder / name
    import_file(src, dst)
    return dst


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The song, its original audio (the decode itself, for A/B), and its page built by ``spev view``."""
    folder = tmp_path_factory.mktemp("view")
    src = write_song(folder)
    header, ev = read_events(src)
    audio = render_np.render(ev.vectors, ev.times_s, header.n_samples, RATE, channels=1)
    wav = folder / "original.wav"
    sf.write(str(wav), audio.T, RATE)
    page = folder / "song.html"
    result = CliRunner().invoke(cli, ["view", str(src), "--audio", str(wav), "-o", str(page)])
    assert result.exit_code == 0, result.output
    return {
        "src": src,
        "page": page,
        "html": page.read_text(encoding="utf-8"),
        "events": ev,
        "folder": folder,
    }


def page_json(html: str, element: str) -> Any:
    match = re.search(rf'<script type="application/json" id="{element}">(.*?)</script>', html, re.S)
    assert match is not None
    return json.loads(match.group(1))


# ---------------------------------------------------------------------------------- clip analysis


def reference(ev: Any, k: int, n: int, rate: int = view.CLIP_RATE) -> np.ndarray:
    """``render()`` of event ``k`` alone (time-sorted order), over a clip's span: the decoder's own output."""
    order = np.argsort(ev.times_s, kind="stable")
    v, t = ev.vectors[order], ev.times_s[order]
    seeds = kernels.event_seeds(t)
    start = max(float(t[k]) - view.CLIP_PRE_S, 0.0)
    side = ev.side_at(float(t[k])) or None  # its chunk's room
    y = render_np.render(
        v[k : k + 1], t[k : k + 1], n, rate, side=side, channels=1, start_s=start, seeds=seeds[k : k + 1]
    )
    return np.asarray(y[0], dtype=np.float64)


def envelope_db(y: np.ndarray, rate: int = view.CLIP_RATE) -> np.ndarray:
    win, hop = rate // 50, rate // 100
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, (0, win)), win)[::hop]
    return np.asarray(10 * np.log10((frames**2).mean(axis=1) + 1e-20))


def bands_db(y: np.ndarray, rate: int = view.CLIP_RATE) -> np.ndarray:
    """Mean power in third-octave bands from 100 Hz up to 0.45 × rate (dB)."""
    n = 512 * (rate // view.CLIP_RATE)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, (0, n)), n)[:: n // 4] * np.hanning(n)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0)
    f = np.fft.rfftfreq(n, 1 / rate)
    edges = 100 * 2 ** (np.arange(3 * np.log2(0.45 * rate / 100) + 1) / 3)
    return np.array(
        [10 * np.log10(power[(f >= a) & (f < b)].sum() + 1e-20) for a, b in itertools.pairwise(edges)]
    )


def band_distance(a: np.ndarray, b: np.ndarray) -> float:
    keep = (a > a.max() - 30) | (b > b.max() - 30)
    return float(np.abs(a - b)[keep].mean())


def check_clip(ogg: bytes, ev: Any, k: int) -> dict[str, float]:
    """Decode clip ``k`` and compare it with ``render()`` of event ``k`` (the tolerances of the docstring)."""
    data, rate = sf.read(io.BytesIO(ogg), dtype="float64")
    order = np.argsort(ev.times_s, kind="stable")
    bright = bool(view.bright(ev.vectors[order][k])[0])
    assert rate == (view.BRIGHT_RATE if bright else view.CLIP_RATE)
    assert 0 < len(data) <= view.CLIP_MAX_S * rate + 1
    ref = reference(ev, k, len(data), rate)
    e_clip, e_ref = envelope_db(data, rate), envelope_db(ref, rate)
    loud = e_ref > e_ref.max() - 40
    env_median = float(np.median(np.abs(e_clip - e_ref)[loud]))
    b_clip, b_ref = bands_db(data, rate), bands_db(ref, rate)
    keep = b_ref > b_ref.max() - 30
    band_mean = float(np.abs(b_clip - b_ref)[keep].mean())
    band_max = float(np.abs(b_clip - b_ref)[keep].max())
    assert env_median <= 3.0, env_median
    assert band_mean <= 3.0 and band_max <= 8.0, (band_mean, band_max)
    others = [
        band_distance(b_clip, bands_db(reference(ev, j, len(data), rate), rate)) for j in range(len(ev))
    ]
    assert int(np.argmin(others)) == k, others  # this event's sound, not a neighbour's
    return {"env_median": env_median, "band_mean": band_mean, "band_max": band_max}


# ------------------------------------------------------------------------------------ build tests


def test_page_is_self_contained_and_escaped(song: dict[str, Any]) -> None:
    html = song["html"]
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
    assert csp is not None and "default-src 'none'" in csp.group(1) and "unsafe" not in csp.group(1)
    assert "connect-src" not in csp.group(1)  # falls back to 'none'
    assert not re.search(r"https?://|//cdn|<link|\bsrc=\"|<iframe", html.replace("http-equiv", ""))
    assert "<img" not in html and "</script><img" not in html  # the hostile tag and name stay inert
    assert "<title>song &lt;img src=x onerror=alert(1)&gt; &amp; co.spev — spev view</title>" in html
    data = page_json(html, "spev-data")
    assert data["info"]["tags"]["title"] == HOSTILE_TAG  # the text itself survives, as text
    assert data["info"]["file"] == HOSTILE_NAME
    assert data["n"] == 14 and data["projection"] == "t-SNE"
    assert len(html.encode()) < view.MAX_PAGE_BYTES


def test_every_clip_is_that_events_render(song: dict[str, Any]) -> None:
    html, ev = song["html"], song["events"]
    clips = page_json(html, "spev-clips")
    heads = [base64.b64decode(h) for h in clips["heads"]]
    assert len(clips["clips"]) == len(ev) == 14  # every event playable
    assert len(heads) == 2  # 16 kHz clips, and 48 kHz ones for the bright events (noise at 8 and 16 kHz)
    for k, body in enumerate(clips["clips"]):
        check_clip(heads[clips["head_of"][k]] + base64.b64decode(body), ev, k)


def test_clips_keep_the_room_of_their_chunk() -> None:
    """The golden stereo file with a room: each clip is its event's dry + wet share of the decode."""
    src = Path(__file__).parent.parent / "formats" / "golden" / "stereo_room.spev"
    page, result = view.build_page(src)
    _, ev = read_events(src)
    assert result.events == len(ev) > 0 and any(side.get("room") for _, side in ev.sides)
    clips = page_json(page.decode(), "spev-clips")
    heads = [base64.b64decode(h) for h in clips["heads"]]
    for k, body in enumerate(clips["clips"]):
        check_clip(heads[clips["head_of"][k]] + base64.b64decode(body), ev, k)


def test_page_values_are_exports_values(song: dict[str, Any], runner: CliRunner) -> None:
    data = page_json(song["html"], "spev-data")
    out = runner.invoke(cli, ["export", str(song["src"])])
    assert out.exit_code == 0
    exported = json.loads(out.stdout)["events"]
    index = np.frombuffer(base64.b64decode(data["index"]), dtype="<u2").reshape(-1, events.N_DIMS)
    for i, rec in enumerate(exported):
        assert data["times"][i] == rec["time"]
        for j, name in enumerate(events.NAMES):
            assert data["values"][j][index[i, j]] == rec["params"][name]


def test_ogg_split_is_a_valid_stream() -> None:
    y = (0.3 * np.sin(np.arange(8000) * 0.2)).astype(np.float32)
    ogg = view.encode_opus(y, 16000, 12.0)
    head, body = view.split_ogg_opus(ogg)
    again, _ = view.split_ogg_opus(view.encode_opus(y[:4000], 16000, 12.0))
    assert head == again  # one header for every clip
    data, rate = sf.read(io.BytesIO(head + body), dtype="float32")
    assert rate == 16000 and len(data) == len(y)
    assert view.ogg_crc(b"OggS") == 0x5FB0A94F  # the Ogg polynomial (not zlib's crc32)


def test_clip_bit_rate_fits_the_budget() -> None:
    assert view.clip_kbps(10.0, 2.0, 20, 14e6) == 16.0
    assert 12.0 < view.clip_kbps(4800.0, 100.0, 4800, 11e6) < 13.0
    assert view.clip_kbps(40000.0, 0.0, 40000, 9e6) == 10.0  # the floor; the page cap then decides


def test_bright_events_get_full_band_clips() -> None:
    v = events.defaults(4)
    c = events.INDEX
    v[:, c["noise_mix"]] = [0.0, 1.0, 1.0, 0.6]
    v[:, c["noise_centre"]] = [16000.0, 2000.0, 12000.0, 12000.0]
    v[:, c["noise_width"]] = 1.0
    assert view.bright(v).tolist() == [False, False, True, True]
    v[0, c["pitch"]] = 119.0  # 7.9 kHz fundamental
    assert view.bright(v)[0]


def test_too_many_events_are_refused_before_any_work(tmp_path: Path, runner: CliRunner) -> None:
    from conftest import make_spev

    src = make_spev(tmp_path / "dense.spev", seconds=60.0, rate=8000, per_chunk=400)  # 24000 events
    result = runner.invoke(cli, ["view", str(src)])
    assert result.exit_code == 4 and "cap" in result.stderr and "--keep 0:" in result.stderr
    assert not (tmp_path / "dense.html").exists()


def test_cli_outputs_and_errors(tmp_path: Path, runner: CliRunner) -> None:
    src = write_song(tmp_path, "a.spev")
    result = runner.invoke(cli, ["view", str(src)])
    assert result.exit_code == 0, result.output
    page = tmp_path / "a.html"
    assert page.exists() and "14 events" in result.stderr
    before = page.read_bytes()
    again = runner.invoke(cli, ["view", str(src)])
    assert again.exit_code == 5 and "exists" in again.stderr and page.read_bytes() == before
    assert runner.invoke(cli, ["view", str(src), "--force"]).exit_code == 0
    bad = runner.invoke(cli, ["view", str(src), "-o", str(tmp_path / "a.png")])
    assert bad.exit_code == 2 and ".html" in bad.stderr
    missing = runner.invoke(cli, ["view", str(src), "--audio", str(tmp_path / "nope.wav"), "-o", "b.html"])
    assert missing.exit_code == 3 and "nope.wav" in missing.stderr


def test_open_without_a_display_says_so(tmp_path: Path, runner: CliRunner, monkeypatch: Any) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    src = write_song(tmp_path, "a.spev")
    result = runner.invoke(cli, ["view", str(src), "--open"])
    assert result.exit_code == 0 and "no browser to open here" in result.stderr
    assert "file://" in result.stderr


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not-spev"])
def test_damaged_file_is_one_clear_line(tmp_path: Path, runner: CliRunner, damage: str) -> None:
    src = write_song(tmp_path, "a.spev")
    data = bytearray(src.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped":
        data[len(data) // 2] ^= 0xFF
    else:
        data = bytearray(b"RIFF" + bytes(200))
    src.write_bytes(bytes(data))
    result = runner.invoke(cli, ["view", str(src)])
    assert result.exit_code == 4, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spev: error:") and "a.spev" in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "a.html").exists() and not list(tmp_path.glob(".a.html*"))


def test_zero_events_gives_a_page_that_says_so(tmp_path: Path, runner: CliRunner) -> None:
    src = write_song(tmp_path, "empty.spev", evs=[])
    result = runner.invoke(cli, ["view", str(src)])
    assert result.exit_code == 0, result.output
    assert "no events" in result.stderr
    data = page_json((tmp_path / "empty.html").read_text(), "spev-data")
    assert data["n"] == 0 and page_json((tmp_path / "empty.html").read_text(), "spev-clips")["clips"] == []


# ---------------------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (bash scripts/install.sh test installs it)")
    b = Chromium(CHROMIUM)
    try:
        yield b
    finally:
        b.close()


def clean(b: Chromium) -> None:
    """No console error or warning, no page error, no network request."""
    assert b.console_errors() == []
    assert b.js("spevView.errors") == []
    assert b.network_requests() == []


def isolated_event(
    b: Chromium, pitched: bool | None = None, among: np.ndarray | None = None
) -> tuple[int, float, float]:
    """``(id, x, y)`` of the drawn point farthest from every other (so a click on it can mean only it);
    ``among``: ``bool[n]`` over event ids, the ones it may be."""
    pts = np.array(b.js("spevView.points()"), dtype=np.float64)
    xy = pts[:, 1:]
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)) + np.eye(len(xy)) * 1e9
    gap = d.min(axis=1)
    ids = pts[:, 0].astype(int)
    if pitched is not None:
        flags = b.js("spevView.pitchedFlags()")
        gap = np.where(np.array(flags, bool)[ids] == pitched, gap, -1)
    if among is not None:
        gap = np.where(among[ids], gap, -1)
    k = int(np.argmax(gap))
    assert gap[k] > 12  # farther than the 10 px pick radius
    return int(pts[k, 0]), float(pts[k, 1]), float(pts[k, 2])


@needs_chromium
def test_page_loads_offline_and_draws_every_event(browser: Chromium, song: dict[str, Any]) -> None:
    b = browser
    b.open(song["page"])
    assert b.js("spevView.n") == b.js("spevView.drawn") == len(song["events"]) == 14
    assert b.js("document.title") == HOSTILE_NAME + " — spev view"
    assert b.js("document.querySelectorAll('img').length") == 0 and b.js("window.pwned") is None
    side = b.js("document.getElementById('side').innerText")
    assert HOSTILE_TAG in side and "22050 Hz, mono" in side and "test-view" in side and "kbps" in side
    assert "t-SNE" in b.js("document.getElementById('ynote').textContent")
    assert b.js("document.querySelectorAll('#specs canvas').length") == 2  # input and decode
    for mode in ("pitch", "level", "projection"):
        b.js(f"spevView.setMode('{mode}', 'kind')")
        assert b.js("spevView.drawn") == 14
    clean(b)


@needs_chromium
def test_click_plays_the_events_own_clip(browser: Chromium, song: dict[str, Any]) -> None:
    b = browser
    b.open(song["page"])
    for pitched in (True, False):
        k, x, y = isolated_event(b, pitched)
        before = b.js("spevView.played")
        b.click(x, y)
        b.wait(f"spevView.played > {before}")
        assert b.js("spevView.lastPlayed") == k
        assert b.js("spevView.audioState()") == "running"
        ogg = base64.b64decode(b.js(f"spevView.clipBase64({k})"))  # the very bytes the page decoded
        check_clip(ogg, song["events"], k)
    clean(b)


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


@needs_chromium
def test_hover_shows_the_exported_values_in_units(browser: Chromium, song: dict[str, Any]) -> None:
    b = browser
    b.open(song["page"])
    exported = json.loads(CliRunner().invoke(cli, ["export", str(song["src"])]).stdout)["events"]
    units = {d["name"]: d["unit"] for d in events.describe()}
    for pitched in (True, False):
        k, x, y = isolated_event(b, pitched)
        b.mouse("mouseMoved", x, y)
        b.wait("!document.getElementById('tip').hidden")
        assert b.js("document.querySelector('#tip .head').dataset.event") == str(k)
        cells = b.js(
            "Array.from(document.querySelectorAll('#tip td.value')).map(td => "
            "[td.dataset.dim, td.textContent, td.nextElementSibling.textContent])"
        )
        assert len(cells) == events.N_DIMS
        for name, text, unit in cells:
            want = exported[k]["params"][name]
            assert unit == units[name]
            assert abs(_number(text) - want) <= 5e-5 * abs(want) + 1e-12, (name, text, want)
        pitch = next(c for c in cells if c[0] == "pitch")
        assert pitch[2] == "MIDI" and abs(_number(pitch[1]) - exported[k]["params"]["pitch"]) < 1e-3
        if exported[k]["pitch"] is not None:
            head = b.js("document.querySelector('#tip .head').textContent")
            assert f"{exported[k]['f0_hz']:.5g}" in head.replace(" Hz", "")  # f0 in Hz too
        b.mouse("mouseMoved", 2, 2)
    clean(b)


@needs_chromium
def test_keyboard_moves_between_events_and_plays(browser: Chromium, song: dict[str, Any]) -> None:
    b = browser
    b.open(song["page"])
    b.js("document.getElementById('timeline').focus()")
    b.key("ArrowRight", "ArrowRight", 39)
    assert b.js("spevView.selected") == 0
    b.key("ArrowRight", "ArrowRight", 39)
    b.key("ArrowRight", "ArrowRight", 39)
    b.key("ArrowLeft", "ArrowLeft", 37)
    assert b.js("spevView.selected") == 1 and b.js("spevView.tipEvent") == 1
    assert b.js("document.getElementById('status').textContent").startswith("event #1 ")
    b.key(" ", "Space", 32)
    b.wait("spevView.lastPlayed === 1")
    b.key("End", "End", 35)
    assert b.js("spevView.selected") == 13
    b.key(" ", "Space", 32, shift=True)  # the full decode from that event
    b.wait("!spevView.players[0].paused")
    t = song["events"].times_s.max()
    assert abs(b.js("spevView.players[0].currentTime") - t) < 0.5
    clean(b)


@needs_chromium
def test_shift_click_plays_the_full_decode_from_there_and_ab(browser: Chromium, song: dict[str, Any]) -> None:
    b = browser
    b.open(song["page"])
    times = np.sort(song["events"].times_s)
    # an event 3 s before the end at least: the decode must still be playing when A/B is pressed (a slow
    # machine takes a while between the clicks; a decode that has ended gives the original from its end)
    k, x, y = isolated_event(b, among=times < song["events"].duration_s - 3.0)
    t = float(times[k])
    b.click(x, y, shift=True)
    b.wait("!spevView.players[0].paused")
    assert b.js("spevView.fullPlays") == 1 and abs(b.js("spevView.players[0].currentTime") - t) < 0.5
    # the original, at the same time: a real click (a user gesture, as a listener's is; a script's .click()
    # is not one, and Chromium refuses play() without a recent gesture once the shift-click's has expired)
    r = b.js(
        "(() => { const r = document.getElementById('abswitch').getBoundingClientRect();"
        " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
    )
    b.click(float(r[0]), float(r[1]))
    b.wait("!spevView.players[1].paused && spevView.players[0].paused")
    assert abs(b.js("spevView.players[1].currentTime") - t) < 1.0
    b.js("document.getElementById('stop').click()")
    clean(b)


@needs_chromium
def test_screenshot(browser: Chromium, song: dict[str, Any], tmp_path: Path) -> None:
    """A screenshot with a tooltip open (``SPEV_VIEW_SCREENSHOT=FILE.png`` keeps a copy)."""
    b = browser
    b.open(song["page"])
    _, x, y = isolated_event(b, True)
    b.mouse("mouseMoved", x, y)
    b.wait("!document.getElementById('tip').hidden")
    png = b.screenshot()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    (tmp_path / "view.png").write_bytes(png)
    keep = os.environ.get("SPEV_VIEW_SCREENSHOT")
    if keep:
        Path(keep).write_bytes(png)
    clean(b)


@needs_chromium
def test_zero_event_page_says_so(browser: Chromium, tmp_path: Path) -> None:
    src = write_song(tmp_path, "empty.spev", evs=[])
    page = tmp_path / "empty.html"
    view.view_file(src, page)
    b = browser
    b.open(page)
    assert b.js("spevView.n") == 0 and b.js("spevView.drawn") == 0
    assert "no events" in b.js("document.getElementById('empty').textContent")
    assert b.js("document.getElementById('empty').hidden") is False
    b.js("document.getElementById('timeline').focus()")
    b.key("ArrowRight", "ArrowRight", 39)
    b.key(" ", "Space", 32)
    clean(b)


@pytest.mark.slow
@needs_chromium
def test_four_minute_song_page(browser: Chromium, tmp_path: Path) -> None:
    """4 minutes at 20 events/s (4800 events, 44.1 kHz stereo): page < 15 MB, every event drawn, pans and a
    whole-file zoom work, a click plays.  Timings (ready, pan, build) are measured by bench/view_speed.py."""
    from conftest import make_spev

    src = make_spev(tmp_path / "long.spev", seconds=240.0, rate=44100, channels=2, per_chunk=20)
    page = tmp_path / "long.html"
    result = view.view_file(src, page)
    assert result.events == 4800 and page.stat().st_size < view.MAX_PAGE_BYTES
    assert result.projection == "PCA"
    b = browser
    b.open(page)
    assert b.js("spevView.drawn") == 4800
    b.js("spevView.zoom(0.05)")
    b.js("(() => { for (let k = 0; k < 60; k++) spevView.pan(0.4); })()")
    b.js("spevView.zoom(1000); spevView.pan(0)")
    assert b.js("spevView.drawn") > 0
    k, x, y = isolated_event(b)
    b.click(x, y)
    b.wait("spevView.lastPlayed !== null")
    assert b.js("spevView.lastPlayed") == k and b.js("spevView.audioState()") == "running"
    clean(b)
