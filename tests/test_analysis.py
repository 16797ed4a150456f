"""The analysis module on its own: STFT conventions, onsets, and the f0 of single tones."""

from __future__ import annotations

import numpy as np
import pytest

from sparsecodec.encoder import analysis
from sparsecodec.format import events

SR = 22050
PITCH = events.INDEX["pitch"]


def _tone(f0: float, amps: list[float], t0: float = 0.3, seconds: float = 2.0) -> np.ndarray:
    """Mono ``float32[n]``: harmonic ``k·f0`` at ``amps[k - 1]`` from ``t0``, decaying; peak 0.3."""
    t = np.arange(int(seconds * SR)) / SR
    env = np.where(t >= t0, np.exp(-(t - t0) * 1.5), 0.0)
    x = sum(a * np.sin(2 * np.pi * k * f0 * (t - t0)) for k, a in enumerate(amps, 1)) * env
    return np.asarray(0.3 * x / np.abs(x).max(), np.float32)


def _cents(pitch: float, hz: float) -> float:
    return 100.0 * (pitch - float(events.hz_to_pitch(hz)))


def test_resolutions_scale_with_the_rate() -> None:
    """The onset and analysis STFTs keep their durations across rates (powers of two)."""
    for rate in (22050, 44100, 48000):
        onset, anal = analysis.resolutions(rate)
        assert anal.n_fft == 4 * onset.n_fft and anal.hop * 8 == anal.n_fft and onset.hop * 4 == onset.n_fft
        assert 0.08 < anal.n_fft / rate < 0.1  # ≈93 ms analysis window
    assert analysis.resolutions(44100)[1].n_fft == 4096


@pytest.mark.parametrize("f0", [130.8, 220.0, 311.1, 440.0])
def test_f0_of_a_harmonic_tone_within_a_few_cents(f0: float) -> None:
    vec, times, scores = analysis.Analyzer(SR).propose(_tone(f0, [1.0 / k for k in range(1, 11)]), SR, 3)
    assert len(vec) == 1 and scores[0] > 0  # one onset, one event
    assert abs(_cents(vec[0, PITCH], f0)) < 5.0
    assert abs(times[0] - 0.3) < 0.01
    assert events.is_pitched(vec).all()


@pytest.mark.parametrize("f0", [130.8, 220.0, 440.0])
def test_octave_of_a_tone_with_a_weak_fundamental(f0: float) -> None:
    """A fundamental 8 dB under the second harmonic still sets the octave (not the octave above)."""
    amps = [0.2] + [1.0 / k for k in range(2, 11)]
    vec, _, _ = analysis.Analyzer(SR).propose(_tone(f0, amps), SR, 3)
    assert len(vec) == 1
    assert abs(_cents(vec[0, PITCH], f0)) < 25.0


def test_onset_found_near_a_click() -> None:
    """A click in a faint noise floor: a flux peak within half an onset window of it (frames are centred:
    the flux rises as the click enters a window), and one event within 10 ms."""
    x = (1e-4 * np.random.default_rng(0).standard_normal(2 * SR)).astype(np.float32)
    x[int(0.5 * SR)] += 0.8
    res_o = analysis.resolutions(SR)[0]
    frame_s = res_o.hop / SR
    flux = analysis.onset_flux(np.abs(analysis.stft(x, res_o)) ** 2)
    peaks = analysis.pick_onsets(flux, frame_s) * frame_s
    assert np.abs(peaks - 0.5).min() <= res_o.n_fft / 2 / SR
    assert not ((peaks > 0.1) & (np.abs(peaks - 0.5) > 0.05)).any()  # nothing else after the floor starts
    _, times, _ = analysis.Analyzer(SR).propose(x, SR, 3)
    assert len(times) == 1 and abs(times[0] - 0.5) < 0.01


def test_excluded_pitch_is_not_proposed_again() -> None:
    """``exclude`` masks a found note's harmonics at its onset: the same note is not proposed twice."""
    f0 = 220.0
    x = _tone(f0, [1.0 / k for k in range(1, 11)])
    a = analysis.Analyzer(SR)
    vec, times, _ = a.propose(x, SR, 3)
    again, _, _ = a.propose(x, SR, 3, exclude=np.array([[times[0], vec[0, PITCH]]]))
    assert not (np.abs(again[:, PITCH] - vec[0, PITCH]) < 0.5).any()


def test_silence_proposes_nothing() -> None:
    vec, times, scores = analysis.Analyzer(SR).propose(np.zeros(SR, np.float32), SR, 5)
    assert vec.shape == (0, events.N_DIMS) and times.size == scores.size == 0


def _held_note(f0: float, t0: float, t1: float, seconds: float = 2.0) -> np.ndarray:
    """Mono ``float32[n]``: a sustained 10-partial tone with 5.5 Hz, ±40-cent vibrato from ``t0``, held
    without decay until ``t1`` (s), then released (T60 0.15 s)."""
    t = np.arange(int(seconds * SR)) / SR
    env = np.where(t < t0, 0.0, np.minimum((t - t0) / 0.03, 1.0))
    env = env * np.where(t > t1, 10.0 ** (-3.0 * (t - t1) / 0.15), 1.0)
    inst = f0 * 2.0 ** (0.4 / 12.0 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(inst) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 11)) * env
    return np.asarray(0.3 * x / np.abs(x).max(), np.float32)


def test_a_held_note_lasts_until_its_transcribed_end() -> None:
    """A transcribed note's event holds until the note's end (its ``duration``), and its partials, fitted
    across the vibrato, do not fall 30 dB before it: the exported note ends where the input's did."""
    from sparsecodec.synth.kernels import partials_fall_s

    t0, t1 = 0.3, 1.3
    x = _held_note(392.0, t0, t1)
    vec, times, _ = analysis.Analyzer(SR).propose_notes(x, SR, np.array([[t0, 67.0, t1]]))
    assert len(vec) == 1 and abs(times[0] - t0) < 0.02
    held = t1 - times[0]
    assert abs(vec[0, events.INDEX["duration"]] - held) < 0.05
    assert partials_fall_s(vec, 30.0, SR)[0] > held  # the sustain does not die out under the hold
    assert vec[0, events.INDEX["release"]] < 0.6  # the measured release is short, as in the input
    # without an end (onset and pitch only) the note is estimated as before: no hint, still one event
    vec2, _, _ = analysis.Analyzer(SR).propose_notes(x, SR, np.array([[t0, 67.0]]))
    assert len(vec2) == 1


def test_a_legato_note_is_held_until_the_next_one() -> None:
    """Where the next note arrives at the note-off (its partials land on this note's), the release cannot be
    measured: the note is held until the note-off all the same, with a short release."""
    t0, t1 = 0.3, 1.3
    x = _held_note(392.0, t0, t1) + 4.0 * _held_note(784.0, t1, 1.9)  # louder: a new arrival at t1
    vec, times, _ = analysis.Analyzer(SR).propose_notes(x, SR, np.array([[t0, 67.0, t1]]))
    assert len(vec) == 1
    assert abs(vec[0, events.INDEX["duration"]] - (t1 - times[0])) < 0.05
    assert vec[0, events.INDEX["release"]] < 0.6


def test_a_note_off_the_input_does_not_confirm_keeps_the_fitted_decay() -> None:
    """A plucked note decays the same across its transcribed note-off: the note-off sets ``duration`` (the
    export ends the note there) with the slowest release, and the decay stays the input's (T60 2 s)."""
    t0, off = 0.3, 0.7
    t = np.arange(int(2.5 * SR)) / SR
    env = np.where(t < t0, 0.0, np.minimum((t - t0) / 0.005, 1.0) * 10.0 ** (-3.0 * (t - t0) / 2.0))
    x = sum(np.sin(2 * np.pi * k * 330.0 * t) / k for k in range(1, 9)) * env
    x = np.asarray(0.3 * x / np.abs(x).max(), np.float32)
    vec, times, _ = analysis.Analyzer(SR).propose_notes(x, SR, np.array([[t0, 64.0, off]]))
    assert len(vec) == 1
    assert abs(vec[0, events.INDEX["duration"]] - (off - times[0])) < 0.05
    assert vec[0, events.INDEX["release"]] == pytest.approx(4.0)
    assert 1.0 < vec[0, events.INDEX["t60_low"]] < 4.0


@pytest.mark.parametrize("f0", [220.0, 330.0])
def test_transcribed_sub_octave_ghost_moves_up_an_octave(f0: float) -> None:
    """A note transcribed an octave below a tone (its odd partials absent) is proposed at the tone's pitch;
    a note at the tone's pitch, and one with a weak fundamental, stay where they are."""
    x = _tone(f0, [1.0 / k for k in range(1, 9)])
    a = analysis.Analyzer(SR)
    pitch = float(events.hz_to_pitch(f0))
    ghost, _, _ = a.propose_notes(x, SR, np.array([[0.3, pitch - 12.0]]))
    real, _, _ = a.propose_notes(x, SR, np.array([[0.3, pitch]]))
    weak, _, _ = a.propose_notes(
        _tone(f0, [0.2] + [1.0 / k for k in range(2, 9)]), SR, np.array([[0.3, pitch]])
    )
    assert abs(_cents(ghost[0, PITCH], f0)) < 25.0
    assert abs(_cents(real[0, PITCH], f0)) < 25.0
    assert abs(_cents(weak[0, PITCH], f0)) < 25.0
