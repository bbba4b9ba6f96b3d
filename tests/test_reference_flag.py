"""--reference-weights on an entry whose real weights ship on the package index keeps the real weights."""

from __future__ import annotations

from zoo import source_folder
from zoo.catalog import Catalog
from zoo.stages.source import obtain

from .conftest import MANIFESTS


def test_package_index_entries_keep_real_weights(tmp_path):
    manifest = Catalog(MANIFESTS).get("silero-vad")
    assert manifest.real_weights_offline
    sources = obtain(manifest, tmp_path / "out", reference_weights=True, cache_dir=tmp_path / "cache")
    assert sources.reference_weights is False
    assert set(sources.files) == {"silero_vad.jit"}
    again = source_folder.read_source_set(manifest, tmp_path / "out")
    assert again is not None and again.reference_weights is False


def test_bring_your_own_entries_are_not_offline():
    catalog = Catalog(MANIFESTS)
    assert not catalog.get("dcase2018-task2-vggish").real_weights_offline
    assert not catalog.get("aclnet").real_weights_offline
