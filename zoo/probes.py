"""Deterministic test audio: the probes every artifact is compared on.

Same arguments, same bytes, on every machine: noise comes from numpy's legacy
RandomState (its streams are fixed forever), and every synthetic signal is
rounded onto a 2**-20 grid so that last-bit differences between libm or SIMD
builds of sin/exp cannot change a single float32 sample. Speech comes from
espeak-ng when it is installed (its bytes depend on the espeak-ng version).

Kinds:
- ``standard``: one probe of each sound family at the requested length.
- ``speech``: streams for voice-activity models (speech with pauses, and a
  synthetic stream of tones, noise and silence), each ``seconds`` long.
- ``calibration``: the standard probes plus seeded random mixtures, for quantization.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from zoo.errors import UsageError

KINDS = ("standard", "speech", "calibration")
#: YAMNet's upstream self-test draws its uniform noise with this seed
UNIFORM_NOISE_SEED = 51773
GRID = 2.0**-20
SPEECH_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Seven silver swans swam silently seaward.",
    "Turn the volume down, the music is far too loud in here.",
)
CALIBRATION_COUNT = 100


@dataclass(frozen=True)
class Probe:
    """One named piece of mono float32 audio at the probe set's sample rate."""

    name: str
    audio: np.ndarray = field(repr=False)


def _finish(signal: np.ndarray) -> np.ndarray:
    """Clip to [-1, 1] and round onto the grid: machine-independent float32 samples."""
    signal = np.clip(np.asarray(signal, dtype=np.float64), -1.0, 1.0)
    return (np.round(signal / GRID) * GRID).astype(np.float32)


def _time(n: int, rate: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / rate


def sine(n: int, rate: int, freq: float, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * _time(n, rate))


def pink(n: int, rng: np.random.RandomState, rms: float = 0.1) -> np.ndarray:
    """Gaussian noise shaped to a 1/f power spectrum in the frequency domain."""
    if n == 0:
        return np.zeros(0)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    scale = np.ones(spectrum.shape[0])
    scale[1:] = 1.0 / np.sqrt(np.arange(1, spectrum.shape[0]))
    scale[0] = 0.0
    signal = np.fft.irfft(spectrum * scale, n=n)
    level = np.sqrt(np.mean(signal**2))
    return signal * (rms / level) if level > 0 else signal


def chirp(n: int, rate: int, f0: float, f1: float, amplitude: float = 0.5) -> np.ndarray:
    """Exponential sweep from f0 to f1 over the whole probe."""
    duration = max(n / rate, 1e-9)
    t = _time(n, rate)
    k = np.log(f1 / f0) / duration
    sweep: np.ndarray = amplitude * np.sin(
        2 * np.pi * f0 * (np.exp(k * t) - 1) / k
    )  # numpy's ufuncs return Any
    return sweep


def clicks(n: int, rate: int, every: float = 0.1, amplitude: float = 0.9) -> np.ndarray:
    signal = np.zeros(n)
    step = max(1, int(round(every * rate)))
    signal[step // 2 :: step] = amplitude
    return signal


def tone_bursts(n: int, rate: int, freq: float, on: float = 0.05, period: float = 0.2) -> np.ndarray:
    """Hann-windowed bursts of a tone, `on` seconds every `period` seconds."""
    signal = np.zeros(n)
    on_n, period_n = max(2, int(on * rate)), max(3, int(period * rate))
    burst = 0.6 * np.hanning(on_n) * np.sin(2 * np.pi * freq * _time(on_n, rate))
    for start in range(0, n, period_n):
        stop = min(n, start + on_n)
        signal[start:stop] = burst[: stop - start]
    return signal


def am_tone(n: int, rate: int, carrier: float, modulation: float = 4.0) -> np.ndarray:
    t = _time(n, rate)
    return 0.4 * (1 + 0.8 * np.sin(2 * np.pi * modulation * t)) * np.sin(2 * np.pi * carrier * t)


def fm_tone(n: int, rate: int, carrier: float, deviation: float, modulation: float = 5.0) -> np.ndarray:
    t = _time(n, rate)
    beta = deviation / modulation
    return 0.5 * np.sin(2 * np.pi * carrier * t + beta * np.sin(2 * np.pi * modulation * t))


def _fit(signal: np.ndarray, n: int) -> np.ndarray:
    """Cut to n samples or zero-pad at the end."""
    out = np.zeros(n)
    out[: min(n, signal.shape[0])] = signal[:n]
    return out


# -- speech -------------------------------------------------------------------------


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


@functools.lru_cache(maxsize=64)
def _espeak(text: str) -> tuple[int, bytes]:
    """(rate, 16-bit PCM bytes) spoken by espeak-ng's default English voice."""
    import wave

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        proc = subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text],
            capture_output=True,
            timeout=60,
        )
        if proc.returncode != 0 or not wav.is_file():
            raise UsageError(
                f"espeak-ng failed to speak a probe sentence: {proc.stderr.decode(errors='replace')}"
            )
        with wave.open(str(wav), "rb") as handle:
            if handle.getsampwidth() != 2 or handle.getnchannels() != 1:
                raise UsageError("espeak-ng wrote audio that is not 16-bit mono; cannot make speech probes.")
            return handle.getframerate(), handle.readframes(handle.getnframes())


def speech(text: str, rate: int) -> np.ndarray:
    """A sentence spoken by espeak-ng, resampled to *rate*, peak 0.7."""
    from scipy.signal import resample_poly

    source_rate, pcm = _espeak(text)
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    if source_rate != rate:
        ratio = Fraction(rate, source_rate)
        audio = resample_poly(audio, ratio.numerator, ratio.denominator)
    peak = np.max(np.abs(audio)) if audio.size else 0.0
    return audio * (0.7 / peak) if peak > 0 else audio


# -- probe sets -----------------------------------------------------------------------


def _standard(rate: int, n: int, seed: int) -> list[Probe]:
    rng = np.random.RandomState(seed)
    nyquist = rate / 2
    top = 0.45 * rate
    found: list[tuple[str, np.ndarray]] = [
        ("zeros", np.zeros(n)),
        ("uniform-noise", np.random.RandomState(UNIFORM_NOISE_SEED).uniform(-1.0, 1.0, n)),
        ("sine-440", sine(n, rate, 440.0)),
        ("white-noise", 0.1 * rng.standard_normal(n)),
        ("pink-noise", pink(n, rng)),
    ]
    for freq in (100.0, 1000.0, 3000.0):
        if freq < top:
            found.append((f"sine-{int(freq)}", sine(n, rate, freq, amplitude=0.3)))
    carrier = min(1000.0, nyquist / 4)
    found += [
        ("chirp", chirp(n, rate, 50.0, top)),
        ("clicks", clicks(n, rate)),
        ("tone-bursts", tone_bursts(n, rate, carrier)),
        ("am-tone", am_tone(n, rate, carrier)),
        ("fm-tone", fm_tone(n, rate, carrier, deviation=carrier * 0.3)),
        ("loud-sine", sine(n, rate, 220.0, amplitude=1.0)),
        ("loud-noise", np.clip(0.6 * rng.standard_normal(n), -1.0, 1.0)),
    ]
    if espeak_available():
        for index, text in enumerate(SPEECH_TEXTS[:2], start=1):
            found.append((f"speech-{index}", _fit(speech(text, rate), n)))
    return [Probe(name, _finish(signal)) for name, signal in found]


def _speech_streams(rate: int, n: int, seed: int) -> list[Probe]:
    """Streams for voice-activity models: sentences with pauses, and a synthetic mixture."""
    rng = np.random.RandomState(seed)
    probes = []
    if espeak_available():
        for index, offset in enumerate((0, 2), start=1):
            parts: list[np.ndarray] = []
            total, turn = 0, 0
            while total < n:
                gap = int(rate * (0.3 + 0.4 * rng.rand()))
                parts.append(0.003 * rng.standard_normal(gap))
                parts.append(speech(SPEECH_TEXTS[(offset + turn) % len(SPEECH_TEXTS)], rate))
                total += gap + parts[-1].shape[0]
                turn += 1
            probes.append(Probe(f"speech-{index}", _finish(_fit(np.concatenate(parts), n))))
    segment = max(1, n // 6)
    pieces = [
        np.zeros(segment),
        0.1 * rng.standard_normal(segment),
        sine(segment, rate, 440.0),
        pink(segment, rng, rms=0.2),
        chirp(segment, rate, 100.0, 0.45 * rate),
        tone_bursts(segment, rate, 1000.0),
    ]
    probes.append(Probe("synthetic-stream", _finish(_fit(np.concatenate(pieces), n))))
    return probes


def _calibration(rate: int, n: int, seed: int, count: int) -> list[Probe]:
    """The standard probes, then seeded mixtures of tones, noise, sweeps, clicks and speech."""
    probes = _standard(rate, n, seed)
    rng = np.random.RandomState(seed + 1)
    top = 0.45 * rate
    has_speech = espeak_available()
    index = 0
    while len(probes) < count:
        index += 1
        signal = np.zeros(n)
        for _ in range(rng.randint(1, 4)):
            choice = rng.randint(0, 6 if has_speech else 5)
            level = 10 ** rng.uniform(-1.5, 0)
            if choice == 0:
                part = sine(n, rate, rng.uniform(50, top))
            elif choice == 1:
                part = rng.standard_normal(n) * 0.3
            elif choice == 2:
                part = pink(n, rng, rms=0.3)
            elif choice == 3:
                part = chirp(n, rate, rng.uniform(30, 300), rng.uniform(0.1, 0.45) * rate)
            elif choice == 4:
                part = clicks(n, rate, every=rng.uniform(0.02, 0.3))
            else:
                spoken = speech(SPEECH_TEXTS[rng.randint(len(SPEECH_TEXTS))], rate)
                start = rng.randint(0, max(1, spoken.shape[0] - n))
                part = _fit(spoken[start:], n)
            signal += level * part
        probes.append(Probe(f"mix-{index}", _finish(signal)))
    return probes[:count]


def probe_set(
    sample_rate: int, seconds: float, kind: str = "standard", seed: int = 0, *, count: int | None = None
) -> list[Probe]:
    """The deterministic probes of one kind at *sample_rate*, each *seconds* long.

    *count* caps the number of probes (calibration sets default to 100).
    """
    if kind not in KINDS:
        raise UsageError(f"probe kind must be one of {', '.join(KINDS)}, got {kind!r}.")
    if sample_rate <= 0 or seconds <= 0:
        raise UsageError(f"probes need a positive sample rate and length, got {sample_rate} Hz, {seconds} s.")
    n = int(round(seconds * sample_rate))
    if kind == "standard":
        probes = _standard(sample_rate, n, seed)
    elif kind == "speech":
        probes = _speech_streams(sample_rate, n, seed)
    else:
        probes = _calibration(sample_rate, n, seed, count or CALIBRATION_COUNT)
    return probes[:count] if count else probes
