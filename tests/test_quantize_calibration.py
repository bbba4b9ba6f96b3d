"""Calibration audio: --calibration folders (repeatable) and the manifest's calibration mix.

Everything here fails or finishes before a model is converted, so the tests are quick.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import MANIFESTS, run_zoo


def _write_wav(path: Path, seconds: float, seed: int, rate: int = 16000) -> None:
    import soundfile

    rng = np.random.RandomState(seed)
    soundfile.write(str(path), (0.1 * rng.standard_normal(int(seconds * rate))).astype(np.float32), rate)


def _catalog(tmp_path: Path, name: str, **quantize) -> Path:
    catalog = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, catalog)
    path = catalog / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    data["quantize"].update(quantize)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return catalog


def test_a_bad_calibration_folder_is_exit_2_naming_it(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    _write_wav(good / "a.wav", 1.0, 0)
    missing = tmp_path / "no-such-folder"
    out = tmp_path / "out"
    result = run_zoo(
        "quantize",
        "--name",
        "silero-vad",
        "-o",
        str(out),
        "--calibration",
        str(good),
        "--calibration",
        str(missing),
    )
    assert result.returncode == 2 and f"--calibration {missing}" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not out.exists()


def test_a_manifest_mix_folder_that_is_absent_is_exit_2_naming_the_field(tmp_path):
    catalog = _catalog(tmp_path, "silero-vad", calibration=["probes:speech", "recordings/absent"])
    out = tmp_path / "out"
    result = run_zoo("quantize", "--name", "silero-vad", "--manifests", str(catalog), "-o", str(out))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "quantize.calibration[1]" in result.stderr and "recordings/absent" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_manifest_checks_its_recipe_and_agreement_fields(tmp_path):
    from zoo.errors import ManifestError
    from zoo.manifest import load_manifest

    catalog = _catalog(tmp_path, "yamnet", calibration=["probes:noise"])
    with pytest.raises(ManifestError, match=r"quantize\.calibration.*probes:noise"):
        load_manifest(catalog / "yamnet.yaml")
    path = catalog / "yamnet.yaml"
    data = yaml.safe_load((MANIFESTS / "yamnet.yaml").read_text())
    del data["verify"]["agreement"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ManifestError, match=r"top1_confident needs verify\.agreement\.confident"):
        load_manifest(path)


def test_calibration_mix_reads_folders_and_probes_and_digests_them(tmp_path):
    from zoo.manifest import load_manifest
    from zoo.quantize.calibration import calibration_samples
    from zoo.quantize.options import QuantizeOptions

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    (second / "deeper").mkdir(parents=True)
    _write_wav(first / "a.wav", 2.0, 1)
    _write_wav(second / "deeper" / "b.wav", 1.0, 2, rate=22050)  # resampled like verify --audio
    (second / "notes.txt").write_text("not audio")
    manifest = load_manifest(MANIFESTS / "yamnet.yaml")
    options = QuantizeOptions(out=tmp_path / "out", calibration=[first, second])
    samples, how, digest, parts = calibration_samples(manifest, options, 300)
    assert [s.name for s in samples] == ["a.wav", "deeper/b.wav"]
    # 2 s at 0.48 s hops: clips start at 0, .48, .96, 1.44 (the last one padded); 1 s: 0, .48
    assert [len(s.feeds) for s in samples] == [4, 2]
    assert all(f["waveform"].shape == (15600,) for s in samples for f in s.feeds)
    assert [p["folder"] for p in parts] == [str(first), str(second)] and how.count("files from") == 2
    again = calibration_samples(manifest, options, 300)
    assert again[2] == digest
    _write_wav(first / "a.wav", 2.0, 3)  # same name, other content: another digest
    assert calibration_samples(manifest, options, 300)[2] != digest

    mixed = QuantizeOptions(out=tmp_path / "out")
    catalog = _catalog(tmp_path, "yamnet", calibration=["probes:calibration", str(first)])
    samples, how, _, parts = calibration_samples(load_manifest(catalog / "yamnet.yaml"), mixed, 300)
    assert len(parts) == 2 and parts[0]["probes"] == "probes:calibration" and parts[1]["folder"] == str(first)
    assert len(samples) == 300 + 1 and samples[-1].name == "a.wav"
