"""VGGish's host side: the log-mel examples against a plain reading of mel_features' definitions,
the postprocessor against upstream's formula, and the composite's manifest checks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import MANIFESTS
from zoo.catalog import Catalog
from zoo.composite.postprocess import PcaParams, dequantize, quantize, reachable
from zoo.composite.runner import resolve, window_geometry, with_stages
from zoo.errors import ManifestError, ZooError
from zoo.frontends import prepare_inputs
from zoo.frontends.vggish import EXAMPLE_SAMPLES, examples, htk_mel, log_mel, mel_matrix, periodic_hann

# -- an independent, literal reading of mel_features.py / vggish_input.py -------------------------


def plain_frame(data: np.ndarray, length: int, hop: int) -> np.ndarray:
    count = 1 + int(math.floor((len(data) - length) / hop))
    return np.array([data[i * hop : i * hop + length] for i in range(count)])


def plain_hann(length: int) -> np.ndarray:
    return np.array([0.5 - 0.5 * math.cos(2 * math.pi * n / length) for n in range(length)])


def plain_mel(hz: float) -> float:
    return 1127.0 * math.log(1.0 + hz / 700.0)


def plain_matrix(bands: int, bins: int, rate: int, low: float, high: float) -> np.ndarray:
    bin_hz = [rate / 2 * k / (bins - 1) for k in range(bins)]
    lo, hi = plain_mel(low), plain_mel(high)
    edges = [lo + (hi - lo) * i / (bands + 1) for i in range(bands + 2)]
    matrix = np.zeros((bins, bands))
    for band in range(bands):
        left, centre, right = edges[band : band + 3]
        for k in range(1, bins):  # the DC bin keeps a zero weight
            m = plain_mel(bin_hz[k])
            matrix[k, band] = max(0.0, min((m - left) / (centre - left), (right - m) / (right - centre)))
    return matrix


def plain_examples(signal: np.ndarray) -> np.ndarray:
    rate = 16000
    window = int(round(rate * 0.025))
    hop = int(round(rate * 0.010))
    fft = 2 ** int(math.ceil(math.log(window) / math.log(2.0)))
    frames = plain_frame(np.asarray(signal, np.float64), window, hop)
    spectrum = np.abs(np.fft.rfft(frames * plain_hann(window), fft))
    logged = np.log(spectrum @ plain_matrix(64, fft // 2 + 1, rate, 125.0, 7500.0) + 0.01)
    per_example = int(round(0.96 / 0.010))
    return plain_frame(logged, per_example, per_example)


def test_the_front_end_is_mel_features_literally_read():
    rng = np.random.RandomState(3)
    t = np.arange(3 * 16000) / 16000
    signal = (0.3 * np.sin(2 * np.pi * 1000 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    ours = examples(signal)
    theirs = plain_examples(signal.astype(np.float64))
    assert ours.shape == theirs.shape == (3, 96, 64)  # 298 frames: three whole examples, the tail dropped
    np.testing.assert_allclose(ours, theirs, atol=2e-5, rtol=0)  # float32 examples of float64 values
    np.testing.assert_allclose(mel_matrix(), plain_matrix(64, 257, 16000, 125.0, 7500.0), atol=1e-12)


def test_window_scale_and_bands_are_upstreams_not_the_usual_ones():
    assert np.allclose(periodic_hann(400), plain_hann(400))
    assert not np.allclose(periodic_hann(400), np.hanning(400))  # numpy's is symmetric
    assert htk_mel(700.0) == pytest.approx(1127.0 * math.log(2.0))
    matrix = mel_matrix()
    assert matrix.shape == (257, 64) and not matrix[0].any()  # HTK leaves the DC bin out
    assert matrix.max() <= 1.0 and (matrix.max(axis=0) > 0.5).all()  # triangles, no area normalisation
    lowest = np.nonzero(matrix[:, 0])[0]
    assert lowest.min() * 16000 / 512 > 125.0 and np.nonzero(matrix[:, -1])[0].max() * 16000 / 512 < 7500.0


def test_examples_cover_096_seconds_each_and_short_audio_gives_one():
    assert examples(np.zeros(EXAMPLE_SAMPLES, np.float32)).shape == (1, 96, 64)
    assert examples(np.zeros(100, np.float32)).shape == (1, 96, 64)  # upstream: no example at all
    assert examples(np.zeros(2 * 15360 + 240, np.float32)).shape == (2, 96, 64)
    assert examples(np.zeros(2 * 15360 + 239, np.float32)).shape == (1, 96, 64)
    silent = log_mel(np.zeros(400))
    assert np.allclose(silent, math.log(0.01))


def test_the_vggish_entry_feeds_one_example_per_call_at_16_khz():
    manifest = Catalog(MANIFESTS).get("vggish")
    feeds = prepare_inputs(manifest, np.zeros(32000, np.float32), 16000)
    assert len(feeds) == 2 and feeds[0]["input_features"].shape == (1, 96, 64)
    resampled = prepare_inputs(manifest, np.zeros(44100, np.float32), 44100)
    assert len(resampled) == 1


# -- the postprocessor --------------------------------------------------------------------------


def plain_postprocess(embeddings: np.ndarray, vectors: np.ndarray, means: np.ndarray) -> np.ndarray:
    """vggish_postprocess.Postprocessor.postprocess as written upstream (transposes and all)."""
    applied = np.dot(vectors, (embeddings.T - means.reshape(-1, 1))).T
    clipped = np.clip(applied, -2.0, 2.0)
    return ((clipped - -2.0) * (255.0 / (2.0 - -2.0))).astype(np.uint8)


def write_pca(path: Path, seed: int = 0, **override: np.ndarray) -> Path:
    rng = np.random.RandomState(seed)
    arrays = {
        "pca_eigen_vectors": rng.standard_normal((128, 128)) * 0.1,
        "pca_means": rng.standard_normal(128),
    }
    arrays.update(override)
    np.savez(path, **arrays)
    return path


def test_postprocess_is_upstreams_pca_clip_and_truncation(tmp_path):
    path = write_pca(tmp_path / "vggish_pca_params.npz")
    params = PcaParams.read(path)
    embeddings = np.random.RandomState(1).standard_normal((7, 128)) * 3
    with np.load(path) as data:
        expected = plain_postprocess(embeddings, data["pca_eigen_vectors"], data["pca_means"])
    codes = params.codes(embeddings)
    assert codes.dtype == np.uint8 and np.array_equal(codes, expected)
    assert (codes == 0).any() and (codes == 255).any()  # clipped at both ends
    # astype truncates: 0.999 of a level is still the level below, and only +2 reaches 255
    assert quantize(np.array([-2.0 + 0.999 * 4 / 255, 2.0 - 1e-9, 2.0, 9.0])).tolist() == [0, 254, 255, 255]
    assert dequantize(np.array([0, 128, 255]), 128, 128).tolist() == [-1.0, 0.0, 127 / 128]


def test_reachable_codes_widen_only_near_a_level_boundary():
    step = 4 / 255
    values = np.array([-2.0 + 10.5 * step, -2.0 + 10 * step + 1e-7, 3.0])
    low, high = reachable(values, np.full(3, 1e-6))
    assert low.tolist() == [10, 9, 255] and high.tolist() == [10, 10, 255]


def test_pca_parameters_are_checked_and_read_without_pickle(tmp_path):
    with pytest.raises(ZooError, match="lack pca_means"):
        np.savez(tmp_path / "a.npz", pca_eigen_vectors=np.eye(128))
        PcaParams.read(tmp_path / "a.npz")
    with pytest.raises(ZooError, match=r"shape \(128, 128\)"):
        PcaParams.read(write_pca(tmp_path / "b.npz", pca_eigen_vectors=np.eye(64)))
    np.savez(tmp_path / "c.npz", pca_eigen_vectors=np.array([object()]), pca_means=np.zeros(128))
    with pytest.raises(ZooError, match="not a readable"):
        PcaParams.read(tmp_path / "c.npz")


# -- the composite's manifest ------------------------------------------------------------------


def test_the_attention_heads_chain_vggish_and_its_postprocessor():
    catalog = Catalog(MANIFESTS)
    for name in ("audioset-attention-feature", "audioset-attention-single", "audioset-attention-multi"):
        head = catalog.get(name)
        stages = resolve(head, catalog)
        assert stages.embedder.name == "vggish" and head.chain is not None and head.chain.frames == 10
        length, hop = window_geometry(head)
        assert (length, hop) == (959 * 160 + 400, 9600 * 16)  # ten examples, windows back to back
    chosen = with_stages(
        [catalog.get("audioset-attention-single"), catalog.get("audioset-attention-multi")], catalog
    )
    assert [m.name for m in chosen] == ["vggish", "audioset-attention-single", "audioset-attention-multi"]


def _edited(catalog_copy: Path, name: str, change) -> Catalog:
    path = catalog_copy / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return Catalog(catalog_copy)


def test_a_chain_that_does_not_fit_is_a_manifest_error(catalog_copy):
    def unknown(data):
        data["chain"]["embedder"] = "no-such-entry"

    catalog = _edited(catalog_copy, "audioset-attention-single", unknown)
    with pytest.raises(ManifestError, match="field chain.embedder"):
        resolve(catalog.get("audioset-attention-single"), catalog)

    def parameters(data):
        data["chain"]["parameters"] = "pca.npz"

    catalog = _edited(catalog_copy, "audioset-attention-multi", parameters)
    with pytest.raises(ManifestError, match="field chain.parameters: 'pca.npz' is not a file of vggish"):
        resolve(catalog.get("audioset-attention-multi"), catalog)

    def frames(data):
        data["chain"]["frames"] = 8

    catalog = _edited(catalog_copy, "audioset-attention-feature", frames)
    with pytest.raises(ManifestError, match="field chain.frames"):
        resolve(catalog.get("audioset-attention-feature"), catalog)

    def misplaced(data):
        data["chain"] = {
            "embedder": "vggish",
            "postprocess": "vggish-pca-uint8",
            "parameters": "x",
            "frames": 1,
        }

    with pytest.raises(ManifestError, match="audio.features.kind must be vggish-embeddings"):
        _edited(catalog_copy, "yamnet", misplaced).get("yamnet")
