"""Shared test helpers: run the real `zoo` command, copy the catalog, and sort tests into tiers.

Tiers (markers, applied here by file so no test file has to remember them):
  unit         in-process, no CLI, no heavy framework
  integration  the CLI in-process (tests/support/cli.py) and tiny-model conversions
  e2e          real catalog models converted, quantized, verified (minutes)
  slow         e2e tests that take minutes on their own
`make test-fast` runs unit and integration; `make test` runs everything.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.cli import Result, run_in_process, run_in_subprocess, run_zoo

# fixtures http_server / shared_http_server, and the built int8 models, for every test file
pytest_plugins = ["tests.support.httpserver", "tests.int8_models"]

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"

UNIT = {
    "test_manifest.py",
    "test_fetch.py",
    "test_fetch_archives.py",
    "test_safe_pickle.py",
    "test_probes.py",
    "test_features.py",
    "test_reference_flag.py",
    "test_agreement_metrics.py",
    "test_vggish_frontend.py",
    "test_librosa_mel.py",
}
E2E = {
    "test_end_to_end_torch.py",
    "test_end_to_end_tf.py",
    "test_keras_yamnet.py",
    "test_yamnet_real_weights.py",
    "test_tflite_birdnet.py",
    "test_converters_torch.py",
    "test_lasagne.py",
    "test_kahl_real_weights.py",
    "test_quantize.py",
    "test_evaluate.py",
    "test_parity_matrix.py",
    "test_predict_real.py",
    "test_quantize_scope.py",
    "test_int8_real_audio.py",
    "test_vggish.py",
    "test_musicnn.py",
}
SLOW = {
    "test_end_to_end_torch.py",
    "test_end_to_end_tf.py",
    "test_parity_matrix.py",
    "test_predict_real.py",
    "test_int8_real_audio.py",
    "test_vggish.py",
    "test_musicnn.py",
}
# fixtures that build real models: a test using one is e2e wherever it lives
E2E_FIXTURES = {"int8", "cheap_catalog"}


def pytest_configure(config: pytest.Config) -> None:
    """The tests' tiny models are file:// sources in the temporary folder: allow it, as a user passes
    --allow-local (zoo reads no local file a catalog names otherwise); tests of that refusal unset it."""
    os.environ.setdefault("ZOO_ALLOW_LOCAL", str(Path(tempfile.gettempdir()).resolve()))


def tier(item: pytest.Item) -> str:
    name = item.path.name
    if name in E2E or E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "e2e"
    if name in UNIT:
        return "unit"
    return "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(tier(item))
        if item.path.name in SLOW:
            item.add_marker("slow")


@pytest.fixture
def zoo():
    return run_zoo


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    """A writable copy of the catalog (manifests and labels)."""
    target = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, target)
    return target


__all__ = ["MANIFESTS", "ROOT", "Result", "run_in_process", "run_in_subprocess", "run_zoo"]
