"""The probe set: deterministic bytes, the sound each name promises, the kinds verify and quantize use."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from zoo.errors import UsageError
from zoo.probes import GRID, UNIFORM_NOISE_SEED, probe_set

STANDARD = [
    "zeros",
    "uniform-noise",
    "sine-440",
    "white-noise",
    "pink-noise",
    "chirp",
    "clicks",
    "tone-bursts",
    "am-tone",
    "fm-tone",
    "loud-sine",
    "loud-noise",
]
espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def _digest(probes) -> str:
    digest = hashlib.sha256()
    for probe in probes:
        digest.update(probe.name.encode())
        digest.update(probe.audio.tobytes())
    return digest.hexdigest()


def _by_name(probes):
    return {p.name: p.audio for p in probes}


def _peak_hz(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.shape[0])))
    return float(np.argmax(spectrum) * rate / audio.shape[0])


def test_standard_set_has_every_family_at_the_requested_rate_and_length():
    probes = probe_set(16000, 1.0)
    names = [p.name for p in probes]
    for name in STANDARD:
        assert name in names
    assert len(names) == len(set(names))
    for probe in probes:
        assert probe.audio.dtype == np.float32
        assert probe.audio.shape == (16000,)
        assert np.all(np.abs(probe.audio) <= 1.0)
        assert np.all(np.isfinite(probe.audio))


def test_same_arguments_give_the_same_bytes_in_another_process():
    here = _digest(probe_set(22050, 0.5, seed=3))
    code = (
        "import hashlib; from zoo.probes import probe_set\n"
        "d = hashlib.sha256()\n"
        "for p in probe_set(22050, 0.5, seed=3):\n"
        "    d.update(p.name.encode()); d.update(p.audio.tobytes())\n"
        "print(d.hexdigest())\n"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert here == there


def test_samples_sit_on_a_machine_independent_grid():
    for probe in probe_set(16000, 0.25):
        scaled = probe.audio.astype(np.float64) / GRID
        assert np.array_equal(scaled, np.round(scaled)), probe.name


def test_uniform_noise_is_yamnets_self_test_noise_whatever_the_seed():
    expected = np.random.RandomState(UNIFORM_NOISE_SEED).uniform(-1.0, 1.0, 16000)
    for seed in (0, 7):
        audio = _by_name(probe_set(16000, 1.0, seed=seed))["uniform-noise"]
        assert np.max(np.abs(audio - expected)) <= GRID


def test_the_seed_moves_the_random_probes_only():
    first, second = _by_name(probe_set(16000, 0.5, seed=0)), _by_name(probe_set(16000, 0.5, seed=1))
    assert not np.array_equal(first["white-noise"], second["white-noise"])
    assert not np.array_equal(first["pink-noise"], second["pink-noise"])
    assert np.array_equal(first["sine-440"], second["sine-440"])
    assert np.array_equal(first["zeros"], second["zeros"])


def test_each_probe_sounds_like_its_name():
    rate = 16000
    audio = _by_name(probe_set(rate, 1.0))
    assert not audio["zeros"].any()
    assert abs(_peak_hz(audio["sine-440"], rate) - 440) <= 2
    assert abs(_peak_hz(audio["sine-1000"], rate) - 1000) <= 2
    assert np.max(np.abs(audio["loud-sine"])) == pytest.approx(1.0, abs=1e-3)
    assert np.max(np.abs(audio["loud-noise"])) == pytest.approx(1.0)
    # pink noise: more power in the lowest octaves than in the highest
    spectrum = np.abs(np.fft.rfft(audio["pink-noise"])) ** 2
    assert spectrum[1:200].mean() > 10 * spectrum[-2000:].mean()
    # white noise: flat
    white = np.abs(np.fft.rfft(audio["white-noise"])) ** 2
    assert 0.5 < white[1:2000].mean() / white[-2000:].mean() < 2
    # the chirp sweeps upwards: its first quarter peaks lower than its last
    chirp = audio["chirp"]
    assert _peak_hz(chirp[:4000], rate) < _peak_hz(chirp[-4000:], rate)
    # clicks: a few isolated impulses
    assert np.count_nonzero(audio["clicks"]) == 10
    # tone bursts: silence between bursts
    assert np.count_nonzero(audio["tone-bursts"] == 0) > 8000


def test_tones_above_the_band_are_left_out_at_low_rates():
    names = [p.name for p in probe_set(4000, 0.5)]
    assert "sine-3000" not in names
    assert "sine-1000" in names


@espeak
def test_speech_probes_come_from_espeak_and_are_voiced():
    audio = _by_name(probe_set(16000, 2.0))
    for name in ("speech-1", "speech-2"):
        speech = audio[name]
        assert np.sqrt(np.mean(speech**2)) > 0.02
        # voiced speech: most energy between 80 Hz and 4 kHz
        spectrum = np.abs(np.fft.rfft(speech)) ** 2
        freqs = np.fft.rfftfreq(speech.shape[0], 1 / 16000)
        assert spectrum[(freqs > 80) & (freqs < 4000)].sum() > 0.8 * spectrum.sum()


@espeak
def test_speech_kind_gives_whole_streams_with_pauses():
    probes = probe_set(16000, 6.0, kind="speech")
    names = [p.name for p in probes]
    assert names == ["speech-1", "speech-2", "synthetic-stream"]
    for probe in probes:
        assert probe.audio.shape == (96000,)
    frames = probes[0].audio[: 96000 // 500 * 500].reshape(-1, 500)
    energy = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    assert (energy < 0.01).sum() >= 5, "speech streams need pauses between sentences"
    assert (energy > 0.05).sum() >= 20


def test_calibration_kind_gives_many_distinct_mixtures():
    probes = probe_set(16000, 0.5, kind="calibration", count=40)
    assert len(probes) == 40
    assert len({p.name for p in probes}) == 40
    mixtures = [p.audio for p in probes if p.name.startswith("mix-")]
    assert len(mixtures) >= 20
    assert len({a.tobytes() for a in mixtures}) == len(mixtures)
    assert _digest(probes) == _digest(probe_set(16000, 0.5, kind="calibration", count=40))


def test_count_caps_any_kind():
    assert len(probe_set(8000, 0.2, count=3)) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [((16000, 1.0, "loud"), "probe kind"), ((0, 1.0), "positive"), ((16000, 0.0), "positive")],
)
def test_bad_arguments_are_usage_errors(args, message):
    with pytest.raises(UsageError, match=message):
        probe_set(*args)


def test_probes_import_no_framework():
    code = (
        "import sys; from zoo.probes import probe_set; probe_set(8000, 0.1)\n"
        "print(','.join(m for m in ('torch', 'tensorflow', 'openvino', 'onnxruntime', 'onnx') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
