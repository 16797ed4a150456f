"""Build the FIXED spev dev set from allowed sources only, by a seeded, documented selection rule.

Categories (clip ids in brackets):

* ``music`` [music-00 .. music-09]: 10 s stereo 44.1 kHz excerpts of Debian music packages' ``.ogg`` files.
* ``speech`` [speech-00 .. speech-05]: espeak-ng sentences, different voices, 22050 Hz mono (espeak's rate).
* ``notes`` [notes-00 .. notes-07]: seeded MIDI phrases (mido) on different General MIDI instruments rendered
  by fluidsynth with ``TimGM6mb.sf2`` (the dev-set soundfont: training never uses it), 44.1 kHz stereo, with
  their note lists as JSON ground truth (``{"notes": [{"onset": s, "pitch": midi, "offset": s}, ...]}``).
* ``long``  [long-00]: one whole Debian music track of 3 to 4 minutes.

Selection rule for music (deterministic for a given package version and :data:`SEED`):

1. Candidates are every ``.ogg`` member of the music archives in :data:`MUSIC_ARCHIVES` (zip ``.pk3`` files),
   sorted by ``archive path + ":" + member``, kept if 44100 Hz stereo and at least 60 s long.
2. ``rng = numpy.random.default_rng(SEED)``.  The long track is ``rng``'s uniform pick among the candidates
   lasting 180-240 s (the shortest allowed: it keeps the benchmark fast).
3. The other candidates are shuffled by ``rng.permutation``; walking that order, up to 8 offsets per track are
   drawn with ``rng.uniform(5, duration - 15)`` (rounded to 0.1 s); the first 10 s excerpt that is not silent
   (overall RMS > -35 dBFS and at least 95 % of its 100 ms frames > -50 dBFS) becomes a clip, one per track,
   until 10 clips are taken.

Every source file used is listed in ``bench/devset_tracks.txt``: training must exclude them.
Never used (reserved for independent evaluation): Debian ``wesnoth-*-music``, ``asterisk-core-sounds-*``,
``musescore-general-soundfont*``.

Usage: ``python -m bench.devset [--out .cache/devset] [--force]``.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from sparsecodec.errors import InputError, SpevError

SEED = 20240611
"""The dev set's seed: changing it changes the dev set (and breaks comparisons with older results)."""
DEVSET_VERSION = 1
"""Bumped whenever the selection rule or the generated material changes."""
DEFAULT_DIR = Path(".cache/devset")
TRACKS_FILE = Path(__file__).with_name("devset_tracks.txt")

MUSIC_ARCHIVES: tuple[tuple[str, str], ...] = (
    ("ufoai-music", "/usr/share/games/ufoai/base/0music.pk3"),
    ("nexuiz-music", "/usr/share/games/nexuiz/data/music.pk3"),
)
"""(Debian package, zip archive holding its .ogg files)."""
SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
"""The dev-set soundfont (Debian ``timgm6mb-soundfont``); training uses ``fluid-soundfont-gm`` instead."""
FORBIDDEN = ("wesnoth", "asterisk-core-sounds", "musescore-general-soundfont")

MUSIC_RATE = 44100
CLIP_S = 10.0
LONG_MIN_S, LONG_MAX_S = 180.0, 240.0
MAX_MEMBER_BYTES = 64 << 20
"""Bound on one archive member read into memory."""

HARVARD = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well. These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls. The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck. The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us. A large size in stockings is hard to sell.",
    "The boy was there when the sun rose. A rod is used to catch pink salmon.",
)
"""IEEE 1969 "Harvard" sentences (public domain), two per speech clip."""
VOICES = ("en-us", "en-gb+f3", "en-gb-scotland+m3", "en-us+f2", "en-gb-x-rp+m5", "en-029+f4")

INSTRUMENTS: tuple[tuple[int, str, int, bool], ...] = (
    (0, "acoustic grand piano", 60, True),
    (24, "nylon guitar", 55, True),
    (12, "marimba", 67, False),
    (48, "string ensemble", 60, True),
    (46, "orchestral harp", 62, True),
    (73, "flute", 74, False),
    (56, "trumpet", 64, False),
    (11, "vibraphone", 65, False),
)
"""(GM program, name, central MIDI pitch, may play two-note chords)."""
PHRASE_S = 9.0
TAIL_S = 1.5


@dataclass
class Clip:
    """One dev-set item.  ``path``/``notes`` are relative to the dev-set directory."""

    id: str
    category: str  # "music" | "speech" | "notes" | "long"
    path: str
    sample_rate: int
    channels: int
    duration_s: float
    source: str
    notes: str | None = None


@dataclass
class MusicSource:
    """A candidate music track: ``archive:member`` of Debian ``package``."""

    package: str
    archive: str
    member: str
    duration_s: float
    sample_rate: int
    channels: int

    @property
    def key(self) -> str:
        return f"{self.archive}:{self.member}"


def _check_allowed(name: str) -> None:
    low = name.lower()
    if any(f in low for f in FORBIDDEN):
        raise InputError(f"refusing a reserved evaluation source: {name}")


def _read_member(archive: str, member: str) -> bytes:
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo(member)
        if info.file_size > MAX_MEMBER_BYTES:
            raise InputError(f"{archive}:{member} is larger than {MAX_MEMBER_BYTES} bytes")
        return z.read(member)


def list_music_sources(archives: Sequence[tuple[str, str]] = MUSIC_ARCHIVES) -> list[MusicSource]:
    """Every usable ``.ogg`` of the installed music archives, sorted by ``archive:member`` (rule step 1)."""
    out: list[MusicSource] = []
    for package, archive in archives:
        _check_allowed(package)
        if not Path(archive).is_file():
            continue
        with zipfile.ZipFile(archive) as z:
            members = sorted(n for n in z.namelist() if n.lower().endswith(".ogg"))
        for m in members:
            info = sf.info(io.BytesIO(_read_member(archive, m)))
            if info.samplerate == MUSIC_RATE and info.channels == 2 and info.duration >= 60.0:
                out.append(MusicSource(package, archive, m, float(info.duration), info.samplerate, 2))
    return sorted(out, key=lambda s: s.key)


def _read_segment(src: MusicSource, start_s: float | None, dur_s: float | None) -> np.ndarray:
    """Decode ``[start_s, start_s + dur_s)`` (or the whole track) as float32[channels, samples]."""
    with sf.SoundFile(io.BytesIO(_read_member(src.archive, src.member))) as f:
        if start_s is not None:
            f.seek(round(start_s * f.samplerate))
        frames = -1 if dur_s is None else round(dur_s * f.samplerate)
        data = f.read(frames, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)


def _not_silent(x: np.ndarray, sr: int) -> bool:
    """Overall RMS > -35 dBFS and >= 95 % of 100 ms frames above -50 dBFS (mono downmix)."""
    mono = x.mean(axis=0)
    if np.sqrt(np.mean(mono**2) + 1e-20) < 10 ** (-35 / 20):
        return False
    hop = sr // 10
    n = mono.size // hop
    if n == 0:
        return False
    frames = np.sqrt(np.mean(mono[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-20)
    return bool(np.mean(frames > 10 ** (-50 / 20)) >= 0.95)


def select_music(
    sources: Sequence[MusicSource], n_clips: int, seed: int = SEED
) -> tuple[list[tuple[MusicSource, float]], MusicSource | None]:
    """Apply rule steps 2-3: ``([(track, offset_s)] * n_clips, long_track)``."""
    rng = np.random.default_rng(seed)
    longs = [s for s in sources if LONG_MIN_S <= s.duration_s <= LONG_MAX_S]
    long_track = longs[int(rng.integers(len(longs)))] if longs else None
    rest = [s for s in sources if s is not long_track]
    picks: list[tuple[MusicSource, float]] = []
    for i in rng.permutation(len(rest)):
        if len(picks) >= n_clips:
            break
        src = rest[int(i)]
        for _ in range(8):
            off = round(float(rng.uniform(5.0, src.duration_s - 15.0)), 1)
            if _not_silent(_read_segment(src, off, CLIP_S), src.sample_rate):
                picks.append((src, off))
                break
    return picks, long_track


def _write(path: Path, audio: np.ndarray, sr: int) -> None:
    sf.write(str(path), np.clip(audio.T, -1.0, 1.0), sr, subtype="PCM_16")


def make_speech(out_dir: Path, n: int, seed: int = SEED) -> list[Clip]:
    """``n`` espeak-ng clips: voice ``VOICES[i]``, sentences ``HARVARD[i]``, seeded speed and pitch."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise InputError("espeak-ng is not installed (run bench/setup.sh)")
    rng = np.random.default_rng(seed + 1)
    clips = []
    for i in range(n):
        voice, text = VOICES[i % len(VOICES)], HARVARD[i % len(HARVARD)]
        speed, pitch = int(rng.integers(140, 181)), int(rng.integers(30, 71))
        rel = f"speech-{i:02d}.wav"
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "s.wav"
            subprocess.run(
                [espeak, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
                check=True,
                capture_output=True,
            )
            audio, sr = sf.read(str(raw), dtype="float32", always_2d=True)
        _write(out_dir / rel, audio.T, sr)
        clips.append(
            Clip(
                f"speech-{i:02d}",
                "speech",
                rel,
                int(sr),
                1,
                audio.shape[0] / sr,
                f"espeak-ng -v {voice} -s {speed} -p {pitch}: {text}",
            )
        )
    return clips


def make_phrase(program: int, centre: int, chords: bool, seed: int) -> list[dict[str, float]]:
    """A seeded phrase of ~2 notes/s over :data:`PHRASE_S` s on a major scale: [{onset, pitch, offset}]."""
    rng = np.random.default_rng(seed)
    root = centre + int(rng.integers(-5, 6))
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12, 14, 16])
    notes: list[dict[str, float]] = []
    t = 0.25
    while t < PHRASE_S - 0.5:
        dur = float(rng.choice([0.25, 0.5, 0.75, 1.0]))
        step = int(rng.choice(scale))
        pitches = [root - 7 + step]
        if chords and rng.random() < 0.3:
            pitches.append(pitches[0] + int(rng.choice([3, 4, 7])))
        for p in pitches:
            notes.append(
                {"onset": round(t, 4), "pitch": float(p), "offset": round(min(t + dur, PHRASE_S), 4)}
            )
        t += float(rng.choice([0.25, 0.5, 0.5, 0.75]))
    return notes


def _write_midi(notes: list[dict[str, float]], program: int, path: Path) -> None:
    import mido

    tpb, tempo = 480, 500000  # 120 bpm: one beat = 0.5 s, so seconds * 960 = ticks
    events: list[tuple[int, int, mido.Message]] = []
    for n in notes:
        vel = 70 + (int(n["pitch"]) * 7) % 40  # deterministic velocity variety
        events.append(
            (round(n["onset"] * 960), 1, mido.Message("note_on", note=int(n["pitch"]), velocity=vel))
        )
        events.append(
            (round(n["offset"] * 960), 0, mido.Message("note_off", note=int(n["pitch"]), velocity=0))
        )
    events.sort(key=lambda e: (e[0], e[1]))
    mid = mido.MidiFile(ticks_per_beat=tpb)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    track.append(mido.Message("program_change", program=program, time=0))
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=round((PHRASE_S + TAIL_S) * 960) - now))
    mid.save(str(path))


def make_notes(out_dir: Path, n: int, seed: int = SEED, soundfont: str = SOUNDFONT) -> list[Clip]:
    """``n`` fluidsynth-rendered phrases (44.1 kHz stereo, PHRASE_S + TAIL_S long) + JSON note lists."""
    fluidsynth = shutil.which("fluidsynth")
    if fluidsynth is None or not Path(soundfont).is_file():
        raise InputError("fluidsynth or the TimGM6mb soundfont is missing (run bench/setup.sh)")
    _check_allowed(soundfont)
    clips = []
    length = round((PHRASE_S + TAIL_S) * MUSIC_RATE)
    for i in range(n):
        program, name, centre, chords = INSTRUMENTS[i % len(INSTRUMENTS)]
        notes = make_phrase(program, centre, chords, seed + 100 + i)
        cid = f"notes-{i:02d}"
        with tempfile.TemporaryDirectory() as tmp:
            mid, raw = Path(tmp) / "p.mid", Path(tmp) / "p.wav"
            _write_midi(notes, program, mid)
            subprocess.run(
                [
                    fluidsynth,
                    "-ni",
                    "-q",
                    "-g",
                    "0.6",
                    "-r",
                    str(MUSIC_RATE),
                    "-F",
                    str(raw),
                    soundfont,
                    str(mid),
                ],
                check=True,
                capture_output=True,
            )
            audio, _ = sf.read(str(raw), dtype="float32", always_2d=True)
        audio = audio.T[:, :length]
        audio = np.pad(audio, ((0, 0), (0, length - audio.shape[1])))
        peak = float(np.max(np.abs(audio)))
        if peak > 0.95:  # keep clear of clipping, deterministic
            audio *= 0.95 / peak
        _write(out_dir / f"{cid}.wav", audio, MUSIC_RATE)
        truth = {"program": program, "instrument": name, "notes": notes}
        (out_dir / f"{cid}.notes.json").write_text(json.dumps(truth, indent=1))
        clips.append(
            Clip(
                cid,
                "notes",
                f"{cid}.wav",
                MUSIC_RATE,
                2,
                length / MUSIC_RATE,
                f"generated MIDI (seed {seed + 100 + i}), GM {program} {name}, TimGM6mb.sf2",
                f"{cid}.notes.json",
            )
        )
    return clips


def make_music(out_dir: Path, n: int, long_track: bool, seed: int = SEED) -> tuple[list[Clip], list[str]]:
    """Music clips + optional long track, and the devset_tracks.txt lines for them."""
    sources = list_music_sources()
    if not sources:
        raise InputError("no Debian music archives found (run bench/setup.sh)")
    picks, long_src = select_music(sources, n, seed)
    clips, lines = [], []
    for i, (src, off) in enumerate(picks):
        cid = f"music-{i:02d}"
        audio = _read_segment(src, off, CLIP_S)
        _write(out_dir / f"{cid}.wav", audio, MUSIC_RATE)
        clips.append(Clip(cid, "music", f"{cid}.wav", MUSIC_RATE, 2, audio.shape[1] / MUSIC_RATE, src.key))
        lines.append(f"{src.package}\t{src.archive}\t{src.member}\t{cid}: 10 s from {off:.1f} s")
    if long_track and long_src is not None:
        audio = _read_segment(long_src, None, None)
        _write(out_dir / "long-00.wav", audio, MUSIC_RATE)
        clips.append(
            Clip("long-00", "long", "long-00.wav", MUSIC_RATE, 2, audio.shape[1] / MUSIC_RATE, long_src.key)
        )
        lines.append(f"{long_src.package}\t{long_src.archive}\t{long_src.member}\tlong-00: whole track")
    return clips, lines


def write_tracks_file(lines: list[str], seed: int, path: Path = TRACKS_FILE) -> None:
    """Write ``bench/devset_tracks.txt``: every source file the dev set uses (training must exclude them)."""
    head = [
        f"# Source files used by the spev dev set (bench/devset.py, seed {seed}, version {DEVSET_VERSION}).",
        "# TRAINING MUST EXCLUDE EVERY FILE LISTED HERE (match package + member).",
        "# Also dev-set only: the soundfont /usr/share/sounds/sf2/TimGM6mb.sf2 (timgm6mb-soundfont);",
        "# train with fluid-soundfont-gm / -gs instead.  Speech clips are espeak-ng renders of the Harvard",
        "# sentences listed in bench/devset.py (HARVARD): do not train on those sentences.",
        "# Never use wesnoth-*-music, asterisk-core-sounds-*, musescore-general-soundfont* for anything.",
        "# package\tarchive\tmember\tuse",
    ]
    path.write_text("\n".join([*head, *lines]) + "\n")


def load_manifest(out_dir: str | Path = DEFAULT_DIR) -> list[Clip]:
    """Read ``devset.json`` of a built dev set (or of a hand-made one, e.g. in tests)."""
    p = Path(out_dir) / "devset.json"
    if not p.is_file():
        raise InputError(f"no dev set at {out_dir} (run: python -m bench.devset --out {out_dir})")
    if p.stat().st_size > 1 << 20:
        raise InputError(f"{p} is implausibly large")
    data = json.loads(p.read_text())
    return [Clip(**c) for c in data["clips"]]


def save_manifest(out_dir: Path, clips: list[Clip], seed: int) -> None:
    data = {"version": DEVSET_VERSION, "seed": seed, "clips": [asdict(c) for c in clips]}
    (out_dir / "devset.json").write_text(json.dumps(data, indent=1))


def build(
    out_dir: str | Path = DEFAULT_DIR,
    *,
    seed: int = SEED,
    n_music: int = 10,
    n_speech: int = 6,
    n_notes: int = 8,
    long_track: bool = True,
    force: bool = False,
    tracks_file: Path | None = TRACKS_FILE,
) -> list[Clip]:
    """Build (or reuse, when already built with the same version and seed) the dev set in ``out_dir``."""
    out = Path(out_dir)
    man = out / "devset.json"
    if man.is_file() and not force:
        data = json.loads(man.read_text())
        if data.get("version") == DEVSET_VERSION and data.get("seed") == seed:
            clips = load_manifest(out)
            if all((out / c.path).is_file() for c in clips):
                return clips
    out.mkdir(parents=True, exist_ok=True)
    music, lines = make_music(out, n_music, long_track, seed)
    clips = music + make_speech(out, n_speech, seed) + make_notes(out, n_notes, seed)
    save_manifest(out, clips, seed)
    if tracks_file is not None:
        write_tracks_file(lines, seed, tracks_file)
    return clips


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.devset", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_DIR))
    ap.add_argument("--force", action="store_true", help="rebuild even if present")
    args = ap.parse_args(argv)
    try:
        clips = build(args.out, force=args.force)
    except (SpevError, subprocess.CalledProcessError, OSError) as e:
        print(f"bench.devset: error: {e}")
        return 3
    for c in clips:
        print(
            f"{c.id:10s} {c.category:7s} {c.duration_s:7.2f} s  {c.sample_rate} Hz x{c.channels}  {c.source}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
