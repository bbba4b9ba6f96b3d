"""Host-side preprocessing (zoo/frontends/): what each manifest's `audio` section asks for."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import MANIFESTS
from zoo.catalog import Catalog
from zoo.errors import ZooError
from zoo.frontends import prepare_inputs, synthetic_feature_inputs
from zoo.frontends.image import stft_magnitude_image
from zoo.frontends.logmel import hz_to_mel, log_mel, mel_filters, mel_to_hz
from zoo.frontends.signal import resample, split_clips


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    return float(np.fft.rfftfreq(signal.size, 1 / rate)[spectrum.argmax()])


def test_resample_keeps_pitch_and_duration():
    out = resample(tone(1000.0, 48000, 1.0), 48000, 16000)
    assert out.dtype == np.float32 and out.shape == (16000,)
    assert abs(dominant_frequency(out, 16000) - 1000.0) <= 1.0
    odd = resample(tone(440.0, 22050, 1.0), 22050, 44100)  # ratio 2/1
    assert odd.shape == (44100,) and abs(dominant_frequency(odd, 44100) - 440.0) <= 1.0


def test_split_clips_overlap_and_zero_padding():
    audio = np.arange(1, 35201, dtype=np.float32)  # 2.2 s at 16 kHz
    clips = split_clips(audio, 16000, 8000, "zero")
    assert [c[0] for c in clips] == [1, 8001, 16001, 24001]
    assert all(c.shape == (16000,) for c in clips)
    assert clips[-1][11199] == 35200 and not clips[-1][11200:].any()
    short = split_clips(np.ones(100, np.float32), 16000, 8000, "zero")
    assert len(short) == 1 and short[0][:100].all() and not short[0][100:].any()
    repeated = split_clips(np.array([1, 2, 3], np.float32), 7, 7, "repeat")
    assert repeated[0].tolist() == [1, 2, 3, 1, 2, 3, 1]


def test_aclnet_clips_are_zscored_one_second_windows(catalog):
    manifest = catalog.get("aclnet")
    rng = np.random.RandomState(1)
    audio = (rng.standard_normal(35200) * 0.3 + 0.2).astype(np.float32)
    feeds = prepare_inputs(manifest, audio, 16000)
    assert len(feeds) == 4
    for feed in feeds:
        assert list(feed) == ["input"]
        x = feed["input"]
        assert x.shape == (1, 1, 1, 16000) and x.dtype == np.float32
        assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1.0) < 1e-4
    # the input rate is resampled first: 2.2 s at 48 kHz gives the same clip count
    assert len(prepare_inputs(manifest, np.repeat(audio, 3), 48000)) == 4
    silence = prepare_inputs(manifest, np.zeros(16000, np.float32), 16000)
    assert len(silence) == 1 and not silence[0]["input"].any()


def test_streaming_entry_gets_chunks_only(catalog):
    manifest = catalog.get("silero-vad")
    audio = tone(300.0, 16000, 1.0)
    feeds = prepare_inputs(manifest, audio, 16000)
    assert len(feeds) == 32  # ceil(16000 / 512)
    assert all(list(f) == ["chunk"] and f["chunk"].shape == (1, 512) for f in feeds)
    np.testing.assert_array_equal(np.concatenate([f["chunk"][0] for f in feeds])[:16000], audio)
    assert not feeds[-1]["chunk"][0, 16000 - 31 * 512 :].any()


def test_stereo_is_averaged_to_mono(catalog):
    manifest = catalog.get("aclnet")
    left = tone(440.0, 16000, 1.0)
    stereo = np.stack([left, left], axis=1)
    np.testing.assert_allclose(
        prepare_inputs(manifest, stereo, 16000)[0]["input"],
        prepare_inputs(manifest, left, 16000)[0]["input"],
        atol=1e-6,
    )


def test_slaney_mel_scale():
    assert float(hz_to_mel(1000.0)) == pytest.approx(15.0)
    assert float(hz_to_mel(200.0 / 3)) == pytest.approx(1.0)
    freqs = np.array([0.0, 50.0, 999.0, 1000.0, 4000.0, 16000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(freqs)), freqs, rtol=1e-9, atol=1e-9)
    assert float(hz_to_mel(6400.0)) == pytest.approx(15.0 + 27.0)  # log step: 27 mels per factor 6.4


def test_mel_filters_are_area_normalised_triangles():
    rate, n_fft = 32000, 2048
    filters = mel_filters(rate, n_fft, 64, 50.0, 16000.0)
    assert filters.shape == (64, 1025) and filters.dtype == np.float32
    freqs = np.linspace(0, rate / 2, 1025)
    assert not filters[:, freqs < 50.0].any()
    assert (filters >= 0).all()
    # each triangle has height 2 / (upper - lower) and so unit area in Hz; wide ones sum to ~1 per Hz bin
    bin_hz = rate / n_fft
    areas = filters.sum(axis=1) * bin_hz
    np.testing.assert_allclose(areas[20:], 1.0, rtol=0.05)
    peaks = freqs[filters.argmax(axis=1)]
    assert np.all(np.diff(peaks) >= 0)


def test_log_mel_matches_a_direct_computation():
    rate, n_fft, hop = 32000, 2048, 1024
    rng = np.random.RandomState(3)
    audio = rng.standard_normal(rate).astype(np.float32) * 0.1
    params = {
        "window": "hamming",
        "n_fft": n_fft,
        "hop": hop,
        "mel_bins": 64,
        "fmin": 50,
        "fmax": 16000,
        "log_offset": 1e-8,
    }
    got = log_mel(audio, rate, params)
    frames = 1 + (audio.size - n_fft) // hop
    assert got.shape == (frames, 64)
    window = np.hamming(n_fft)  # symmetric, as numpy makes it and upstream used
    direct = []
    for k in range(frames):
        segment = audio[k * hop : k * hop + n_fft].astype(np.float64) * window
        direct.append(np.abs(np.fft.rfft(segment)) / np.sqrt((window**2).sum()))
    expected = np.log(np.array(direct) @ mel_filters(rate, n_fft, 64, 50, 16000).T.astype(np.float64) + 1e-8)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_dcase_patches_peak_normalised_and_scaled(catalog):
    manifest = catalog.get("dcase2018-task2-vggish")
    audio = tone(1000.0, 32000, 5.0, amplitude=0.01)
    feeds = prepare_inputs(manifest, audio, 32000)
    assert len(feeds) == 2  # 155 frames -> patches at 0 and 64 (the second zero-padded)
    assert all(f["logmel"].shape == (1, 128, 64) for f in feeds)
    louder = prepare_inputs(manifest, audio * 50, 32000)
    # divided by max |x|: the same spectrum (compared linearly: far bins hold only rounding noise)
    np.testing.assert_allclose(np.exp(louder[0]["logmel"]), np.exp(feeds[0]["logmel"]), rtol=1e-3, atol=1e-7)
    mean, std = np.full(64, -5.0, np.float32), np.full(64, 2.0, np.float32)
    scaled = prepare_inputs(manifest, audio, 32000, scaler=(mean, std))
    np.testing.assert_allclose(scaled[0]["logmel"], (feeds[0]["logmel"] + 5.0) / 2.0, atol=1e-5)


def test_kahl_spectrogram_image(catalog):
    manifest = catalog.get("kahl-aed")
    params = dict(manifest.audio.features.params)
    high = stft_magnitude_image(tone(15000.0, 44100, 3.0), params)
    low = stft_magnitude_image(tone(500.0, 44100, 3.0), params)
    assert high.shape == (256, 512) and high.dtype == np.float32
    assert 0.0 <= float(high.min()) and float(high.max()) == pytest.approx(1.0)
    # row 0 is the highest frequency: a 15 kHz tone sits near the top, 500 Hz near the bottom
    assert high.mean(axis=1).argmax() < 128 < low.mean(axis=1).argmax()
    # 3 s at 44.1 kHz make 511 frames (the last completed with zeros); column 511 is padding
    assert high[:, :511].any(axis=0).all() and not high[:, 511:].any()
    assert not stft_magnitude_image(np.zeros(44100 * 3, np.float32), params).any()


def test_kahl_chunks_follow_upstream_splitting(catalog):
    manifest = catalog.get("kahl-aed")
    feeds = prepare_inputs(manifest, tone(2000.0, 44100, 3.0), 44100)
    # chunks start every second; the 2 s and 1 s tails are kept and give narrower images
    widths = [int(f["spectrogram"][0, 0].any(axis=0).sum()) for f in feeds]
    assert len(feeds) == 3 and widths[0] == 511 and widths[0] > widths[1] > widths[2] > 0
    assert all(f["spectrogram"].shape == (1, 1, 256, 512) for f in feeds)


def test_vggish_entries_need_embeddings(catalog):
    manifest = catalog.get("audioset-attention-single")
    with pytest.raises(ZooError, match="VGGish"):  # the head alone; its chain (zoo.composite) takes audio
        prepare_inputs(manifest.model_copy(update={"chain": None}), tone(440.0, 16000, 1.0), 16000)
    first = synthetic_feature_inputs(manifest, 3, seed=7)
    again = synthetic_feature_inputs(manifest, 3, seed=7)
    other = synthetic_feature_inputs(manifest, 3, seed=8)
    assert len(first) == 3
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a["embeddings"], b["embeddings"])
    assert not np.array_equal(first[0]["embeddings"], other[0]["embeddings"])
    x = first[0]["embeddings"]
    assert x.shape == (1, 10, 128) and x.dtype == np.float32
    raw = x * 128 + 128  # back to the uint8 codes
    np.testing.assert_allclose(raw, np.round(raw), atol=1e-4)
    assert raw.min() >= 0 and raw.max() <= 255 and x.std() > 0.05


def test_synthetic_inputs_for_audio_entries_go_through_the_front_end(catalog):
    manifest = catalog.get("dcase2018-task2-baseline-cnn")
    feeds = synthetic_feature_inputs(manifest, 4, seed=0)
    assert len(feeds) == 4 and all(f["logmel"].shape == (1, 128, 64) for f in feeds)


# kahl-aed's chunker is upstream's: it also keeps shorter tails (at least min_seconds long), so
# its feeds outnumber the full windows
_TAIL_KEEPING = {"stft-magnitude-image"}


@pytest.mark.unit
@pytest.mark.parametrize("path", sorted(MANIFESTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_front_end_cuts_the_windows_its_window_rule_says(path):
    """zoo predict streams long files by FrontEnd.window; feeds must cut a signal the same way."""
    from zoo.frontends import frontend_for
    from zoo.manifest import load_manifest
    from zoo.predict.audio import geometry

    manifest = load_manifest(path)
    front = frontend_for(manifest)
    if not front.takes_audio and manifest.chain is None:
        pytest.skip(f"{manifest.name} takes embeddings, not audio")
    kind = manifest.audio.features.kind if manifest.audio.features else None
    grid = geometry(manifest)
    for windows in (1, 2, 4):
        total = grid.length + (windows - 1) * grid.hop
        signal = (np.random.RandomState(windows).standard_normal(total) * 0.1).astype(np.float32)
        feeds = front.prepare(manifest, signal, manifest.audio.sample_rate)
        assert grid.count(total) == windows
        if kind in _TAIL_KEEPING:
            assert len(feeds) >= windows
        else:
            assert len(feeds) == windows, (manifest.name, total)
