"""Build the FIXED spev dev set from allowed sources only, by a seeded, documented selection rule.

Categories (clip ids in brackets):

* ``music`` [music-00 .. music-09]: 10 s stereo 44.1 kHz excerpts of Debian music packages' ``.ogg`` files.
* ``speech`` [speech-00 .. speech-05]: espeak-ng sentences, different voices, 22050 Hz mono (espeak's rate).
* ``voice`` [voice-00 .. voice-19] (version 3, issue #18): recorded human speech, 16 kHz mono, 8-12 s each:
  Czech game dialogue from Debian ``fillets-ng-data-cs`` (GPL-2), six voices (:data:`VOICE_SPEAKERS`): 10
  female clips (two voices) and 10 male (four); each clip records its ``speaker``, ``sex`` (and how it is
  known) and median ``f0_hz``.  Short lines of one speaker are joined with 0.3 s gaps.  Training never uses
  this package.
* ``notes`` [notes-00 .. notes-07]: seeded MIDI phrases (mido; :func:`make_phrase`) on eight General MIDI
  instruments (piano, nylon guitar, marimba, string ensemble, harp, flute, violin, clarinet) rendered by
  fluidsynth with ``TimGM6mb.sf2`` (the dev-set soundfont: training never uses it), 44.1 kHz stereo, with
  their note lists as JSON ground truth (``{"program", "instrument", "renderer", "seed", "notes": [{"onset":
  s, "pitch": midi, "offset": s, "velocity": v}, ...]}``).  The phrases test transcription: onsets off any
  grid, chromatic pitches, octave leaps, re-struck notes, chords of 2-4 notes, legato lines with vibrato,
  velocities 35-120 (see :func:`make_phrase`).
* ``notes-fp`` [notes-fp-00 .. notes-fp-07]: the same eight phrases rendered by ``timidity -c
  /etc/timidity/freepats.cfg`` (Debian ``freepats``): a check that what is learnt from one soundfont
  generalises.  CHECK-ONLY: freepats renders are never trained or tuned on.  freepats lacks marimba; that
  clip plays xylophone (GM 13) instead (:data:`FREEPATS_SUBSTITUTES`).
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

Selection rule for voice (deterministic for a given package version and :data:`SEED`):

1. Candidates are the ``<level>/cs/*.ogg`` files of ``fillets-ng-data-cs`` sorted by path whose speaker
   :func:`voice_speaker` knows (by file name, level and sample rate), at most 11.6 s long, byte-identical
   copies dropped.
2. ``rng = numpy.random.default_rng(SEED + 2)``; speaker by speaker (:data:`VOICE_SPEAKERS` order), its lines
   are walked in ``rng.permutation`` order, resampled to 16 kHz mono (soxr) and trimmed of leading/trailing
   silence (-40 dB), and packed into clips: 0.2 s of silence, lines joined by 0.3 s, 0.2 s; a line that would
   take the clip past 12 s is skipped; a clip is closed at 8 s or more.  Each clip is scaled to peak -1 dBFS.

Every source file used is listed in ``bench/devset_tracks.txt``: training must exclude them.
Never used (reserved for independent evaluation): Debian ``wesnoth-*-music``, ``asterisk-core-sounds-*``,
``musescore-general-soundfont*``.

Usage: ``python -m bench.devset [--out .cache/devset] [--force | --only voice]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from sparsecodec.errors import InputError, SpevError

SEED = 20240611
"""The dev set's seed: changing it changes the dev set (and breaks comparisons with older results)."""
DEVSET_VERSION = 3
"""Bumped whenever the selection rule or the generated material changes (3: the ``voice`` clips; every other
clip is as in version 2)."""
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


@dataclass(frozen=True)
class Instrument:
    """A General MIDI instrument of the notes phrases and how :func:`make_phrase` plays it.

    ``low``/``high``: the comfortable MIDI pitch range (pitches are chromatic within it).  ``chords``: 2-4
    simultaneous notes on ~30 % of onsets.  ``legato``: a sustained melodic instrument: legato lines (the
    next note-on at, or 10-30 ms before, the previous note-off) with vibrato by pitch-wheel on long notes.
    ``decay_s``: a decaying instrument's longest audible note at ``low`` and at ``high`` (linear between):
    its notes last 50-100 % of that, so that the note-off (the truth offset) is where the sound ends.
    """

    program: int
    name: str
    low: int
    high: int
    chords: bool = False
    legato: bool = False
    decay_s: tuple[float, float] | None = None

    def max_len(self, pitch: float) -> float:
        """Longest note at ``pitch``: ``decay_s`` interpolated (decaying), else the whole phrase."""
        if self.decay_s is None:
            return PHRASE_S
        a, b = self.decay_s
        return a + (b - a) * (float(pitch) - self.low) / max(1, self.high - self.low)


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument(0, "acoustic grand piano", 43, 84, chords=True, decay_s=(1.4, 0.6)),
    Instrument(24, "nylon guitar", 40, 76, chords=True, decay_s=(1.0, 0.45)),
    Instrument(12, "marimba", 55, 84, chords=True, decay_s=(0.35, 0.2)),
    Instrument(48, "string ensemble", 48, 79, chords=True, legato=True),
    Instrument(46, "orchestral harp", 40, 84, chords=True, decay_s=(1.2, 0.6)),
    Instrument(73, "flute", 62, 93, legato=True),
    Instrument(40, "violin", 55, 88, legato=True),
    Instrument(71, "clarinet", 52, 84, legato=True),
)
"""The notes clips' instruments, clip ``i`` plays ``INSTRUMENTS[i % 8]``.  Decay caps: measured on single
held notes (velocity 100) as the time the level stays within 30 dB of its peak, the shorter of TimGM6mb
(fluidsynth) and freepats (timidity; marimba: its xylophone stand-in), rounded down."""
PHRASE_S = 9.0
TAIL_S = 1.5
PHRASE_SEED_OFFSET = 100
"""Phrase ``i`` of :func:`make_notes` is ``make_phrase(INSTRUMENTS[i % 8], seed + 100 + i)``."""
IOI_S = (0.12, 0.8)
"""Inter-onset times are uniform in this range (rounded to 1 ms): off any beat grid."""
CHORD_P, CHORD_SIZES, CHORD_SIZE_P = 0.3, (2, 3, 4), (0.4, 0.35, 0.25)
RESTRIKE_P = 0.15
"""Share of onsets that strike the previous onset's (top) pitch again."""
OCTAVE_P = 0.12
"""Share of onsets that leap an octave from the previous pitch."""
LEGATO_P = 0.7
VELOCITY = (35, 120)
VIBRATO_START_S, VIBRATO_RAMP_S, VIBRATO_MIN_NOTE_S = 0.2, 0.15, 0.45
VIBRATO_HZ, VIBRATO_CENTS = (5.0, 6.0), (20.0, 40.0)
BEND_STEP_S = 0.01
BEND_RANGE_CENTS = 200.0
"""Pitch-wheel range (set by RPN 0 in every phrase's MIDI file): ±2 semitones, the General MIDI default."""
SAME_PITCH_GAP_S = 0.02
"""A note ends at least this long before the next note of the same pitch starts (a MIDI note-off must not
cut the re-struck note)."""
TICKS_PER_S = 1000
"""The phrases' MIDI files run at 1000 ticks per second (60 bpm, 1000 ticks per beat): truth times are
whole milliseconds, exact in ticks."""

FREEPATS_CFG = "/etc/timidity/freepats.cfg"
"""The check-only renderer's config (Debian ``freepats``, played by ``timidity``): never trained on."""
FREEPATS_SUBSTITUTES = {12: 13, 11: 13, 10: 9}
"""GM programs freepats lacks -> the stand-in used in ``notes-fp``: marimba and vibraphone -> xylophone,
music box -> glockenspiel.  Others fall back to the nearest program of the same GM family that it has."""
GM_NAMES = {9: "glockenspiel", 13: "xylophone"}
"""Names of the stand-in programs (the instruments' own names are in :data:`INSTRUMENTS`)."""


@dataclass
class Clip:
    """One dev-set item.  ``path``/``notes`` are relative to the dev-set directory."""

    id: str
    category: str  # "music" | "speech" | "voice" | "notes" | "notes-fp" | "long"
    path: str
    sample_rate: int
    channels: int
    duration_s: float
    source: str
    notes: str | None = None
    speaker: str | None = None
    """voice clips: the speaker (:data:`VOICE_SPEAKERS` key)."""
    sex: str | None = None
    """voice clips: ``"F"`` or ``"M"`` (the separate female / male sets of issue #18)."""
    sex_source: str | None = None
    """How ``sex`` is known: ``"character"`` (the game's script and credits) or ``"f0"`` (estimated from the
    clip's median f0, :func:`median_f0`)."""
    f0_hz: float | None = None
    """voice clips: median f0 of the clip's voiced frames (:func:`median_f0`)."""


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


# ---------------------------------------------------------------- voice: recorded human speech (issue #18)

VOICE_PACKAGE = "fillets-ng-data-cs"
"""The dev set's recorded-speech package: the Czech dialogue of Fish Fillets (ALTAR Interactive) and of its
New Generation levels.  TRAINING NEVER USES IT (training/speech_sources.txt)."""
VOICE_LICENCE = "GPL-2"
"""From ``/usr/share/doc/fillets-ng-data-cs/copyright``."""
VOICE_ROOT = Path("/usr/share/games/fillets-ng/sound")
VOICE_LANG = "cs"
VOICE_RATE = 16000
VOICE_MIN_S, VOICE_MAX_S = 8.0, 12.0
"""A voice clip lasts 8-12 s, padding included."""
VOICE_GAP_S = 0.3
"""Silence between two lines of one clip."""
VOICE_PAD_S = 0.2
"""Silence before the first and after the last line of a clip."""
VOICE_PEAK = 10 ** (-1 / 20)
"""Every voice clip is scaled to this peak (-1 dBFS): the game's files peak from -12 to +1.5 dBFS."""
VOICE_SEED_OFFSET = 2
"""The voice selection's generator is ``default_rng(seed + 2)`` (speech uses ``seed + 1``)."""
VOICE_TRIM_DB = -40.0
"""A line's leading and trailing 10 ms frames below its loudest frame by more than this are cut (30 ms
margin kept)."""
ORIGINAL_RATE, NG_RATE = 22050, 44100
"""The original ALTAR studio recordings (levels 1-70, the shared jokes, the ending) are 22050 Hz mono; the
New Generation levels (hanoi, rush, fdto, nowall, hole, keys, linux: 2010-2012, other voices) 44100 Hz."""
F0_SPLIT_HZ = 165.0
"""Sex estimate where the character's is not known: median f0 at or above this -> ``"F"``."""


@dataclass(frozen=True)
class VoiceSpeaker:
    """One voice of the ``voice`` clips.  ``sex``: the character's (None: estimated per clip from its median
    f0, :data:`F0_SPLIT_HZ`); ``n_clips``: how many clips it gets."""

    key: str
    character: str
    sex: str | None
    voiced_by: str
    n_clips: int


VOICE_SPEAKERS: tuple[VoiceSpeaker, ...] = (
    VoiceSpeaker("small-fish", "the small (orange) fish, original recordings", "F", "Gabriela Pyšná", 6),
    VoiceSpeaker("big-fish", "the big (blue) fish, original recordings", "M", "Vít Musil", 5),
    VoiceSpeaker("ng-small-fish", "the small fish in the New Generation levels", "F", "uncredited (NG)", 4),
    VoiceSpeaker("ng-big-fish", "the big fish in the New Generation levels", "M", "uncredited (NG)", 2),
    VoiceSpeaker("statue", "the loudspeaker statue of level 'city'", None, "uncredited (original)", 2),
    VoiceSpeaker("viking-3", "the bearded old Viking (viking1, viking2)", "M", "uncredited (original)", 1),
)
"""20 clips, 10 female (two voices) and 10 male (four).  The fish's sexes are the characters': the Czech
script gives the small fish feminine verb forms ("jsem už někde viděla") and the big fish masculine ones; the
game's credits (images/menu/credits.png, Debian fillets-ng-data) name the original voices, Vít Musil beside
the blue fish and Gabriela Pyšná beside the orange one.  The New Generation fish are other people (other
recordings, 2010-2012; median f0 ~210 Hz and ~110 Hz against 258 Hz and 134 Hz).  Viking 3 is a bearded
warrior ("Správný viking má mít vous").  The statue has no first-person gendered line: its sex is estimated
from f0 (~135 Hz).  Which of the original cast (the credits' third voice is Jaroslav Tuček) voices the statue
and the Viking is not documented."""
STATUE_EXCLUDED = ("vit-hs-reklama2", "vit-hs-reklama4")
"""Level 'city' lines of another character (a citizen) between the statue's announcements."""


def voice_speaker(rel: str, sample_rate: int) -> str | None:
    """The :data:`VOICE_SPEAKERS` key of a ``fillets-ng-data-cs`` file (``rel``: relative to
    :data:`VOICE_ROOT`, e.g. ``"city/cs/vit-hs-lod0.ogg"``), or None (another character, or unknown).

    The game names dialogue files ``<level prefix>-<who>-<word>`` with ``m`` (malá, the small fish) or ``v``
    (velká, the big fish) as one of the dash-separated tokens: checked against the speaker ("font") that the
    game's dialogue scripts (fillets-ng-data, ``script/*/dialogs_cs.lua``) give every line: all 1352 lines so
    named are the fish the token says.  The recording (original or New Generation) is told by the rate."""
    parts = rel.split("/")
    if len(parts) < 3 or parts[-2] != VOICE_LANG or not parts[-1].endswith(".ogg"):
        return None
    level, name = "/".join(parts[:-2]), parts[-1][: -len(".ogg")]
    era = {ORIGINAL_RATE: "", NG_RATE: "ng-"}.get(int(sample_rate))
    if era is None:
        return None
    tokens = name.split("-")
    if ("m" in tokens) != ("v" in tokens):
        return f"{era}{'small' if 'm' in tokens else 'big'}-fish"
    if not era and level == "city" and name.startswith("vit-hs-") and name not in STATUE_EXCLUDED:
        return "statue"
    if not era and level in ("viking1", "viking2") and tokens[:2] in (["d1", "3"], ["dr", "3"]):
        return "viking-3"
    return None


@dataclass(frozen=True)
class VoiceLine:
    """A candidate line: ``rel`` (relative to :data:`VOICE_ROOT`) and its speaker key."""

    rel: str
    speaker: str


def list_voice_lines(root: Path = VOICE_ROOT) -> list[VoiceLine]:
    """Rule step 1: every ``<level>/cs/*.ogg`` with a known speaker, sorted by path, no longer than a clip
    allows, byte-identical copies dropped (the first path kept)."""
    _check_allowed(VOICE_PACKAGE)
    out: list[VoiceLine] = []
    seen: set[str] = set()
    for p in sorted(root.glob(f"**/{VOICE_LANG}/*.ogg"), key=lambda q: q.relative_to(root).as_posix()):
        rel = p.relative_to(root).as_posix()
        info = sf.info(str(p))
        speaker = voice_speaker(rel, info.samplerate)
        if speaker is None or info.duration > VOICE_MAX_S - 2 * VOICE_PAD_S:
            continue
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append(VoiceLine(rel, speaker))
    return out


def plan_voice_clips(
    lines: Sequence[VoiceLine],
    duration_s: Callable[[VoiceLine], float],
    seed: int = SEED,
    speakers: Sequence[VoiceSpeaker] = VOICE_SPEAKERS,
) -> list[tuple[VoiceSpeaker, list[VoiceLine]]]:
    """Rule step 2: ``rng = default_rng(seed + 2)``; for each speaker in order, its lines are walked in
    ``rng.permutation`` order and packed into clips (lines joined by :data:`VOICE_GAP_S`, padded by
    :data:`VOICE_PAD_S` at both ends): a line that would take the clip past :data:`VOICE_MAX_S` is skipped,
    a clip is closed once it reaches :data:`VOICE_MIN_S`.  ``duration_s``: a line's (trimmed) length."""
    rng = np.random.default_rng(seed + VOICE_SEED_OFFSET)
    room = VOICE_MAX_S - 2 * VOICE_PAD_S
    plan: list[tuple[VoiceSpeaker, list[VoiceLine]]] = []
    for spk in speakers:
        pool = [ln for ln in lines if ln.speaker == spk.key]
        group: list[VoiceLine] = []
        total, made = 0.0, 0
        for i in rng.permutation(len(pool)):
            if made == spk.n_clips:
                break
            line = pool[int(i)]
            d = float(duration_s(line))
            add = d + (VOICE_GAP_S if group else 0.0)
            if d <= 0.0 or total + add > room:
                continue
            group.append(line)
            total += add
            if total + 2 * VOICE_PAD_S >= VOICE_MIN_S:
                plan.append((spk, group))
                group, total, made = [], 0.0, made + 1
        if made < spk.n_clips:
            raise InputError(f"only {made} of {spk.n_clips} voice clips for {spk.key}: too few lines")
    return plan


def trim_silence(
    x: np.ndarray, sr: int, floor_db: float = VOICE_TRIM_DB, margin_s: float = 0.03
) -> np.ndarray:
    """``x`` (mono) without its leading and trailing 10 ms frames quieter than ``floor_db`` below its
    loudest frame, ``margin_s`` kept on each side."""
    hop = max(1, sr // 100)
    n = x.size // hop
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (floor_db / 20))
    if loud.size == 0:
        return x[:0]
    margin = round(margin_s * sr)
    return x[max(0, loud[0] * hop - margin) : min(x.size, (loud[-1] + 1) * hop + margin)]


def median_f0(x: np.ndarray, sr: int, fmin: float = 60.0, fmax: float = 400.0) -> float:
    """Median f0 (Hz) of the voiced 40 ms frames of mono ``x`` (10 ms hop), by plain autocorrelation: a frame
    is voiced when its RMS is within 30 dB of the loudest frame and its normalised autocorrelation peaks above
    0.5 at a lag in ``[sr/fmax, sr/fmin]``.  NaN when no frame is voiced."""
    x = np.asarray(x, dtype=np.float64)
    size, hop = round(0.04 * sr), round(0.01 * sr)
    if x.size < size:
        return float("nan")
    idx = np.arange(0, x.size - size + 1, hop)[:, None] + np.arange(size)[None, :]
    frames = x[idx] * np.hanning(size)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    frames = frames[rms > rms.max() * 10 ** (-30 / 20)]
    if frames.size == 0:
        return float("nan")
    spec = np.fft.rfft(frames, n=2 * size, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :size]
    ac /= np.maximum(ac[:, :1], 1e-20)
    lo, hi = max(1, int(sr / fmax)), min(size - 1, int(np.ceil(sr / fmin)))
    lag = lo + np.argmax(ac[:, lo : hi + 1], axis=1)
    voiced = ac[np.arange(ac.shape[0]), lag] > 0.5
    return float(np.median(sr / lag[voiced])) if np.any(voiced) else float("nan")


def sex_from_f0(f0_hz: float) -> str:
    """``"F"`` at or above :data:`F0_SPLIT_HZ`, else ``"M"`` (an estimate: say so where it is used)."""
    return "F" if f0_hz >= F0_SPLIT_HZ else "M"


def clips_by_sex(clips: Sequence[Clip]) -> dict[str, list[Clip]]:
    """The voice clips split by sex: ``{"F": [...], "M": [...]}`` (the female / male sets of #18)."""
    out: dict[str, list[Clip]] = {"F": [], "M": []}
    for c in clips:
        if c.category == "voice" and c.sex in out:
            out[c.sex].append(c)
    return out


def _voice_line_audio(rel: str, root: Path = VOICE_ROOT) -> np.ndarray:
    """A line as float32 mono at :data:`VOICE_RATE`, silence trimmed (:func:`trim_silence`)."""
    from bench.metrics import resample

    audio, sr = sf.read(str(root / rel), dtype="float32", always_2d=True)
    return trim_silence(resample(audio.mean(axis=1), int(sr), VOICE_RATE), VOICE_RATE)


def assemble_voice_clip(parts: Sequence[np.ndarray], sr: int = VOICE_RATE) -> np.ndarray:
    """Lines joined by :data:`VOICE_GAP_S` of silence, :data:`VOICE_PAD_S` before and after, scaled to the
    peak :data:`VOICE_PEAK`: float32[samples]."""
    gap, pad = np.zeros(round(VOICE_GAP_S * sr), np.float32), np.zeros(round(VOICE_PAD_S * sr), np.float32)
    pieces = [pad]
    for i, p in enumerate(parts):
        pieces += [gap, p] if i else [p]
    x = np.concatenate([*pieces, pad]).astype(np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return x * (VOICE_PEAK / peak) if peak > 0 else x


def make_voice(out_dir: Path, seed: int = SEED, root: Path = VOICE_ROOT) -> tuple[list[Clip], list[str]]:
    """The ``voice`` clips (16 kHz mono) and their devset_tracks.txt lines."""
    lines = list_voice_lines(root) if root.is_dir() else []
    if not lines:
        raise InputError(f"no {VOICE_PACKAGE} dialogue in {root} (run bench/setup.sh)")
    cache: dict[str, np.ndarray] = {}

    def audio(line: VoiceLine) -> np.ndarray:
        if line.rel not in cache:
            cache[line.rel] = _voice_line_audio(line.rel, root)
        return cache[line.rel]

    clips, tracks = [], []
    for i, (spk, group) in enumerate(plan_voice_clips(lines, lambda ln: audio(ln).size / VOICE_RATE, seed)):
        cid = f"voice-{i:02d}"
        x = assemble_voice_clip([audio(ln) for ln in group])
        _write(out_dir / f"{cid}.wav", x[None, :], VOICE_RATE)
        f0 = median_f0(x, VOICE_RATE)
        sex, how = (spk.sex, "character") if spk.sex else (sex_from_f0(f0), "f0")
        src = f"{VOICE_PACKAGE}: " + " + ".join(ln.rel for ln in group)
        clips.append(
            Clip(cid, "voice", f"{cid}.wav", VOICE_RATE, 1, x.size / VOICE_RATE, src, None, spk.key, sex, how,
                 round(f0, 1))
        )  # fmt: skip
        use = f"{cid}: {spk.key} ({sex} by {how}; {spk.voiced_by}), {VOICE_LICENCE}"
        tracks += [f"{VOICE_PACKAGE}\t{root}\t{ln.rel}\t{use}" for ln in group]
    return clips, tracks


@dataclass
class Phrase:
    """A generated phrase: its notes (the ground truth) and the pitch-wheel messages that make its vibrato.

    ``notes``: ``[{"onset": s, "pitch": midi, "offset": s, "velocity": 1-127}]`` sorted by onset then pitch,
    times in whole ms.  ``bends``: ``[(time_s, value)]`` with ``value`` in ``[-8192, 8191]`` (±200 cents).
    """

    notes: list[dict[str, float]]
    bends: list[tuple[float, int]]


def _ms(x: float) -> float:
    return round(float(x), 3)


def _reflect(p: int, low: int, high: int) -> int:
    while p < low or p > high:
        p = 2 * low - p if p < low else 2 * high - p
    return p


def _chord(top: int, size: int, inst: Instrument, rng: np.random.Generator) -> list[int]:
    """``size`` distinct pitches with ``top`` among them: chromatic intervals of 3-9 semitones downwards,
    upwards from the highest where the range ends."""
    pitches = [top]
    while len(pitches) < size:
        iv = int(rng.integers(3, 10))
        cand = min(pitches) - iv
        if cand < inst.low:
            cand = max(pitches) + iv
        if cand > inst.high or cand in pitches:
            break
        pitches.append(cand)
    return sorted(pitches)


def make_phrase(inst: Instrument, seed: int) -> Phrase:
    """A seeded phrase of :data:`PHRASE_S` s on ``inst``, built so that snapping to a grid or a scale cannot
    help a transcriber: onsets at uniform 0.12-0.8 s intervals (whole ms), a chromatic random walk of
    steps up to a fifth within ``inst``'s range, octave leaps (~12 %), re-struck pitches (~15 %), velocities
    35-120; chords of 2-4 notes on ~30 % of onsets where ``inst.chords``; legato lines with vibrato where
    ``inst.legato``; decaying notes no longer than they sound (:meth:`Instrument.max_len`).
    """
    rng = np.random.default_rng(seed)
    onsets = [_ms(rng.uniform(0.15, 0.4))]
    while True:
        nxt = _ms(onsets[-1] + rng.uniform(*IOI_S))
        if nxt >= PHRASE_S - 0.5:
            break
        onsets.append(nxt)
    span = inst.high - inst.low
    steps = np.array([*range(-7, 0), *range(1, 8)])
    groups: list[list[int]] = []
    tops: list[int] = []
    for k in range(len(onsets)):
        if k == 0:
            top = int(rng.integers(inst.low + span // 4, inst.high - span // 4 + 1))
        elif rng.random() < RESTRIKE_P:
            top = tops[-1]
        elif rng.random() < OCTAVE_P:
            up = tops[-1] + 12 <= inst.high and (tops[-1] - 12 < inst.low or rng.random() < 0.5)
            top = tops[-1] + 12 if up else tops[-1] - 12
        else:
            top = _reflect(tops[-1] + int(rng.choice(steps)), inst.low, inst.high)
        tops.append(top)
        size = 1
        if inst.chords and rng.random() < CHORD_P:
            size = int(rng.choice(CHORD_SIZES, p=CHORD_SIZE_P))
        groups.append(_chord(top, size, inst, rng))
    notes: list[dict[str, float]] = []
    bends: list[tuple[float, int]] = []
    for k, (on, pitches) in enumerate(zip(onsets, groups, strict=True)):
        following = onsets[k + 1] if k + 1 < len(onsets) else None
        if inst.legato:
            if following is None:
                off = min(on + rng.uniform(0.3, 0.8), PHRASE_S)
            elif tops[k + 1] != tops[k] and rng.random() < LEGATO_P:
                off = following + (0.0 if rng.random() < 1 / 3 else rng.uniform(0.010, 0.030))
            else:
                off = max(on + 0.06, following - rng.uniform(0.03, 0.15))
            offs = [_ms(off)] * len(pitches)
            end = min(off, following) if following is not None else off
            if end - on >= VIBRATO_MIN_NOTE_S:
                bends += _vibrato(on, end, rng)
        else:
            frac = rng.uniform(0.5, 1.0)
            offs = [_ms(min(on + max(0.1, frac * inst.max_len(p)), PHRASE_S)) for p in pitches]
        base = int(rng.integers(VELOCITY[0], VELOCITY[1] + 1))
        for p, off in zip(pitches, offs, strict=True):
            vel = base if len(pitches) == 1 else int(np.clip(base + rng.integers(-8, 9), *VELOCITY))
            notes.append({"onset": on, "pitch": float(p), "offset": off, "velocity": vel})
    notes.sort(key=lambda n: (n["onset"], n["pitch"]))
    by_pitch: dict[float, list[dict[str, float]]] = {}
    for n in notes:
        by_pitch.setdefault(n["pitch"], []).append(n)
    for same in by_pitch.values():  # a re-struck pitch: the earlier note ends before the next begins
        for a, b in itertools.pairwise(same):
            a["offset"] = min(a["offset"], _ms(b["onset"] - SAME_PITCH_GAP_S))
    return Phrase(notes, bends)


def _vibrato(on: float, end: float, rng: np.random.Generator) -> list[tuple[float, int]]:
    """Pitch-wheel points every 10 ms from ``on + 0.2`` s (depth ramped in over 0.15 s) to ``end``, where
    the wheel returns to 0.  Rate 5-6 Hz, depth ±20-40 cents."""
    rate, cents = rng.uniform(*VIBRATO_HZ), rng.uniform(*VIBRATO_CENTS)
    t0 = on + VIBRATO_START_S
    times = np.arange(round(t0 * 1000), round(end * 1000) - 5, round(BEND_STEP_S * 1000)) / 1000.0
    ramp = np.minimum(1.0, (times - t0) / VIBRATO_RAMP_S)
    vals = np.round(8192 * cents / BEND_RANGE_CENTS * ramp * np.sin(2 * np.pi * rate * (times - t0)))
    pts = [(_ms(t), int(np.clip(v, -8192, 8191))) for t, v in zip(times, vals, strict=True)]
    return [*pts, (_ms(end), 0)]


def _write_midi(phrase: Phrase, program: int, path: Path) -> None:
    """One track, channel 0: tempo (1000 ticks/s), program, pitch-bend range ±2 semitones, the notes and
    the pitch-wheel points.  At one tick: note-offs first, then the wheel, then note-ons."""
    import mido

    events: list[tuple[int, int, mido.Message]] = []
    for n in phrase.notes:
        p, vel = int(n["pitch"]), int(n["velocity"])
        events.append((round(n["onset"] * TICKS_PER_S), 2, mido.Message("note_on", note=p, velocity=vel)))
        events.append((round(n["offset"] * TICKS_PER_S), 0, mido.Message("note_off", note=p, velocity=0)))
    for t, value in phrase.bends:
        events.append((round(t * TICKS_PER_S), 1, mido.Message("pitchwheel", pitch=value)))
    events.sort(key=lambda e: (e[0], e[1]))
    mid = mido.MidiFile(ticks_per_beat=TICKS_PER_S)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=1_000_000, time=0))  # one beat = 1 s
    track.append(mido.Message("program_change", program=program, time=0))
    for control, value in ((101, 0), (100, 0), (6, round(BEND_RANGE_CENTS / 100)), (38, 0)):
        track.append(mido.Message("control_change", control=control, value=value, time=0))
    track.append(mido.Message("pitchwheel", pitch=0, time=0))
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=round((PHRASE_S + TAIL_S) * TICKS_PER_S) - now))
    mid.save(str(path))


def _cfg_files(cfg: Path, depth: int = 0) -> list[Path]:
    """``cfg`` and the files its ``source`` lines name (recursively, at most 8 deep)."""
    out = [cfg]
    if depth >= 8:
        return out
    for line in cfg.read_text(errors="replace").splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "source":
            src = Path(words[1]) if Path(words[1]).is_absolute() else cfg.parent / words[1]
            if src.is_file():
                out += _cfg_files(src, depth + 1)
    return out


def timidity_programs(cfg: str | Path) -> set[int]:
    """The melodic GM programs a timidity config (and what it sources) maps in ``bank 0``."""
    progs: set[int] = set()
    for f in _cfg_files(Path(cfg)):
        section = None
        for line in f.read_text(errors="replace").splitlines():
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if words[0] in ("bank", "drumset"):
                section = (words[0], words[1] if len(words) > 1 else "")
            elif section == ("bank", "0") and words[0].isdigit() and len(words) >= 2:
                progs.add(int(words[0]))
    return progs


def substitute_program(program: int, available: set[int]) -> int:
    """``program`` if ``available`` has it, else :data:`FREEPATS_SUBSTITUTES`' stand-in, else the nearest
    program of the same GM family (``program // 8``) that it has; :class:`InputError` if none."""
    if program in available:
        return program
    sub = FREEPATS_SUBSTITUTES.get(program)
    if sub is not None and sub in available:
        return sub
    family = [p for p in available if p // 8 == program // 8]
    if not family:
        raise InputError(f"the timidity config has no GM program {program} nor one of its family")
    return min(family, key=lambda p: (abs(p - program), p))


def render_midi(mid: Path, wav: Path, renderer: str, soundfont: str) -> None:
    """Render ``mid`` to a 44.1 kHz WAV: ``fluidsynth`` with the ``.sf2`` ``soundfont``, or ``timidity``
    with the config ``soundfont`` (``-c``).

    timidity reads ``/etc/timidity/timidity.cfg`` even when given ``-c`` (Debian's sources FluidR3, the
    training soundfont) and plays any program the given config lacks from it, so the run is verbose
    (``-idv``) and a soundfont loaded that the given config does not name is an :class:`InputError`.  It
    also drops the silence before the first note unless told ``--preserve-silence``."""
    if renderer == "fluidsynth":
        exe = shutil.which("fluidsynth")
        if exe is None:
            raise InputError("fluidsynth is not installed (run bench/setup.sh)")
        cmd = [exe, "-ni", "-q", "-g", "0.6", "-r", str(MUSIC_RATE), "-F", str(wav), soundfont, str(mid)]
        subprocess.run(cmd, check=True, capture_output=True)
    elif renderer == "timidity":
        exe = shutil.which("timidity")
        if exe is None:
            raise InputError("timidity is not installed (run bench/setup.sh)")
        cmd = [
            exe,
            "-c",
            soundfont,
            "-idv",
            "--preserve-silence",
            "-Ow",
            "-s",
            str(MUSIC_RATE),
            "-o",
            str(wav),
            str(mid),
        ]
        log = subprocess.run(cmd, check=True, capture_output=True, text=True, errors="replace")
        named = "\n".join(f.read_text(errors="replace") for f in _cfg_files(Path(soundfont)))
        fonts = re.findall(r"Init soundfonts `([^']+)'", log.stdout + log.stderr)
        foreign = [f for f in fonts if Path(f).name not in named]
        if foreign:
            raise InputError(f"timidity played from {foreign}, which {soundfont} does not name")
    else:
        raise InputError(f"unknown renderer {renderer!r} (fluidsynth or timidity)")


def make_notes(
    out_dir: str | Path,
    n: int,
    seed: int = SEED,
    soundfont: str | None = None,
    renderer: str = "fluidsynth",
    prefix: str = "notes",
    category: str | None = None,
    instruments: Sequence[Instrument] = INSTRUMENTS,
) -> list[Clip]:
    """``n`` rendered phrases (44.1 kHz stereo, PHRASE_S + TAIL_S long) + their JSON ground truth.

    Phrase ``i`` is ``make_phrase(instruments[i % len(instruments)], seed + 100 + i)``, written as
    ``{prefix}-{i:02d}.wav`` and ``{prefix}-{i:02d}.notes.json`` (``{"program", "instrument", "renderer",
    "seed", "notes": [{"onset", "pitch", "offset", "velocity"}]}``) in ``out_dir``.  ``soundfont``: the
    ``.sf2`` for ``renderer="fluidsynth"`` (default TimGM6mb, the dev set's) or the config for
    ``renderer="timidity"`` (default freepats.cfg, whose missing programs get a stand-in:
    :func:`substitute_program`).  The dev set is ``seed=SEED`` with the defaults (``notes``) and with
    ``renderer="timidity", prefix="notes-fp"``; training renders other seeds with FluidR3 (the dev phrases'
    seeds with any other renderer or soundfont are an :class:`InputError`).  A render whose peak is below
    -40 dBFS is an :class:`InputError`.
    """
    if renderer not in ("fluidsynth", "timidity"):
        raise InputError(f"unknown renderer {renderer!r} (fluidsynth or timidity)")
    sf2 = soundfont or (SOUNDFONT if renderer == "fluidsynth" else FREEPATS_CFG)
    dev = range(SEED + PHRASE_SEED_OFFSET, SEED + PHRASE_SEED_OFFSET + len(INSTRUMENTS))
    dev_render = (renderer, sf2) in (("fluidsynth", SOUNDFONT), ("timidity", FREEPATS_CFG))
    if not dev_render and any(seed + PHRASE_SEED_OFFSET + i in dev for i in range(n)):
        raise InputError(f"phrase seeds {dev.start}..{dev.stop - 1} are the dev set's: render other seeds")
    _check_allowed(sf2)
    if not Path(sf2).is_file() or shutil.which(renderer) is None:
        raise InputError(f"{renderer} or {sf2} is missing (run bench/setup.sh)")
    available = timidity_programs(sf2) if renderer == "timidity" else set()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clips = []
    length = round((PHRASE_S + TAIL_S) * MUSIC_RATE)
    for i in range(n):
        inst = instruments[i % len(instruments)]
        program, name = inst.program, inst.name
        if available:
            program = substitute_program(inst.program, available)
            if program != inst.program:
                name = f"{GM_NAMES.get(program, f'GM {program}')} (for {inst.name})"
        phrase_seed = seed + PHRASE_SEED_OFFSET + i
        phrase = make_phrase(inst, phrase_seed)
        cid = f"{prefix}-{i:02d}"
        with tempfile.TemporaryDirectory() as tmp:
            mid, raw = Path(tmp) / "p.mid", Path(tmp) / "p.wav"
            _write_midi(phrase, program, mid)
            render_midi(mid, raw, renderer, sf2)
            audio, sr = sf.read(str(raw), dtype="float32", always_2d=True)
        if sr != MUSIC_RATE:
            raise InputError(f"{renderer} wrote {sr} Hz, expected {MUSIC_RATE}")
        audio = audio.T[:, :length]
        audio = np.pad(audio, ((0, 0), (0, length - audio.shape[1])))
        if audio.shape[0] == 1:
            audio = np.repeat(audio, 2, axis=0)
        peak = float(np.max(np.abs(audio)))
        if peak < 10 ** (-40 / 20):
            raise InputError(f"{cid}: the {renderer} render of GM {program} is silent (peak {peak:.2g})")
        lead = audio[:, : max(0, round((phrase.notes[0]["onset"] - 0.02) * MUSIC_RATE))]
        if lead.size and float(np.max(np.abs(lead))) > 0.01 * peak:  # e.g. timidity's dropped silence
            raise InputError(f"{cid}: the {renderer} render sounds before the first note-on (time shift)")
        if peak > 0.95:  # keep clear of clipping, deterministic
            audio *= 0.95 / peak
        _write(out / f"{cid}.wav", audio, MUSIC_RATE)
        how = f"{renderer} {Path(sf2).name}"
        truth = {
            "program": program,
            "instrument": name,
            "renderer": how,
            "seed": phrase_seed,
            "notes": phrase.notes,
        }
        (out / f"{cid}.notes.json").write_text(json.dumps(truth, indent=1))
        clips.append(
            Clip(
                cid,
                category or prefix,
                f"{cid}.wav",
                MUSIC_RATE,
                2,
                length / MUSIC_RATE,
                f"generated MIDI (seed {phrase_seed}), GM {program} {name}, {how}",
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
        "# Voice clips (voice-*): Debian fillets-ng-data-cs (GPL-2, its /usr/share/doc/.../copyright) is the",
        "# dev set's recorded speech: TRAINING NEVER USES fillets-ng-data-cs (any file), nor fillets-ng-data",
        "# (the same game's English and effect sounds).  Speech for training: training/speech_sources.txt",
        "# (other packages, no speaker shared with the dev set).",
        "# Also dev-set only: the soundfont /usr/share/sounds/sf2/TimGM6mb.sf2 (timgm6mb-soundfont);",
        "# train with fluid-soundfont-gm / -gs instead.  Speech clips are espeak-ng renders of the Harvard",
        "# sentences listed in bench/devset.py (HARVARD): do not train on those sentences.",
        "# Notes phrases: make_phrase seeds {a}..{b} (seed + 100 + i) are the dev set's; training and tuning",
        "# phrases (bench.devset.make_notes with FluidR3) must use other seeds.",
        "# CHECK-ONLY (never train or tune on): freepats (Debian freepats, played by timidity): notes-fp-*.",
        "# Never use wesnoth-*-music, asterisk-core-sounds-*, musescore-general-soundfont* for anything.",
        "# package\tarchive\tmember\tuse",
    ]
    a, b = seed + PHRASE_SEED_OFFSET, seed + PHRASE_SEED_OFFSET + len(INSTRUMENTS) - 1
    head = [h.format(a=a, b=b) if "{a}" in h else h for h in head]
    check_only = [
        f"timgm6mb-soundfont\t{SOUNDFONT}\t-\tnotes-00..07: the dev-set soundfont (never train on it)",
        f"freepats\t{FREEPATS_CFG}\t-\tnotes-fp-00..07: CHECK-ONLY renders (never train or tune on them)",
    ]
    path.write_text("\n".join([*head, *lines, *check_only]) + "\n")


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
    voice: bool = True,
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
    voiced, voice_lines = make_voice(out, seed) if voice else ([], [])
    clips = music + make_speech(out, n_speech, seed) + voiced + make_notes(out, n_notes, seed)
    clips += make_notes(out, n_notes, seed, renderer="timidity", prefix="notes-fp")
    save_manifest(out, clips, seed)
    if tracks_file is not None:
        write_tracks_file(lines + voice_lines, seed, tracks_file)
    return clips


CATEGORY_ORDER = ("music", "long", "speech", "voice", "notes", "notes-fp")
"""The order of the manifest's clips (as :func:`build` makes them)."""
REBUILDABLE = ("speech", "voice", "notes", "notes-fp")


def rebuild_categories(
    out_dir: str | Path,
    categories: Sequence[str],
    *,
    seed: int = SEED,
    n_speech: int = 6,
    n_notes: int = 8,
    tracks_file: Path | None = TRACKS_FILE,
) -> list[Clip]:
    """Remake only ``categories`` in a built dev set, keeping every other clip's file and manifest entry as
    they are, and stamp the manifest with the current :data:`DEVSET_VERSION`: for a version whose other
    categories are unchanged (3 over 2: only ``voice`` is new).  A full rebuild would also re-render the
    notes-fp clips, and timidity's renders of two of them (nylon guitar, flute) differ in low bits from
    run to run."""
    out = Path(out_dir)
    unknown = sorted(set(categories) - set(REBUILDABLE))
    if unknown:
        raise InputError(f"cannot rebuild {unknown} alone (one of {', '.join(REBUILDABLE)}; or --force)")
    old = load_manifest(out)
    if json.loads((out / "devset.json").read_text()).get("seed") != seed:
        raise InputError(f"{out} was built with another seed: rebuild it whole (--force)")
    clips = [c for c in old if c.category not in categories]
    voice_lines: list[str] | None = None
    for cat in dict.fromkeys(categories):
        if cat == "voice":
            made, voice_lines = make_voice(out, seed)
        elif cat == "speech":
            made = make_speech(out, n_speech, seed)
        else:
            renderer = "timidity" if cat == "notes-fp" else "fluidsynth"
            made = make_notes(out, n_notes, seed, renderer=renderer, prefix=cat)
        clips += made
    clips.sort(key=lambda c: CATEGORY_ORDER.index(c.category))  # stable: ids stay in order
    save_manifest(out, clips, seed)
    if tracks_file is not None:
        music = {pkg for pkg, _ in MUSIC_ARCHIVES}
        keep = {*music} if voice_lines is not None else {*music, VOICE_PACKAGE}
        old_lines = tracks_file.read_text().splitlines() if tracks_file.is_file() else []
        lines = [ln for ln in old_lines if not ln.startswith("#") and ln.split("\t")[0] in keep]
        write_tracks_file(lines + (voice_lines or []), seed, tracks_file)
    return clips


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.devset", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_DIR))
    ap.add_argument("--force", action="store_true", help="rebuild even if present")
    ap.add_argument(
        "--only",
        help=f"comma-separated categories ({', '.join(REBUILDABLE)}) to remake in a built dev set, keeping "
        "the other clips' files as they are (when only those changed, e.g. version 2 -> 3: --only voice)",
    )
    args = ap.parse_args(argv)
    try:
        if args.only:
            clips = rebuild_categories(args.out, [w.strip() for w in args.only.split(",") if w.strip()])
        else:
            clips = build(args.out, force=args.force)
    except (SpevError, subprocess.CalledProcessError, OSError) as e:
        print(f"bench.devset: error: {e}")
        return 3
    for c in clips:
        print(
            f"{c.id:11s} {c.category:8s} {c.duration_s:7.2f} s  {c.sample_rate} Hz x{c.channels}  {c.source}"
            + (f"  [{c.speaker}, {c.sex} by {c.sex_source}, f0 {c.f0_hz} Hz]" if c.speaker else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
