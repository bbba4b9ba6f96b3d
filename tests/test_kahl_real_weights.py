"""Kahl's real AED_Example_Run_model.pkl, when it lies beside the repository; and the `schreien` self-test.

Upstream's README: `AED_test.py` on dataset/schreien_scream.wav prints "schreien 99 %". The manifest
carries that as an expectation (probe: the recording's file name). With the real file
(`../shared/weights/kahl-aed/AED_Example_Run_model.pkl`, or ZOO_KAHL_AED_PICKLE) it must load with no
difference from the manifest's network and rank `schreien` first on that recording; without it
the real-weights test is skipped, and the mechanics are checked on reference weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from converters import lasagne
from zoo.catalog import Catalog
from zoo.plugins import converter_for
from zoo.verify.inputs import audio_inputs
from zoo.verify.report import expectations

pytestmark = pytest.mark.xdist_group("lasagne")

#: the shared folder beside the repository (or beside the folder of its worktrees)
SHARED = next(
    (p / "shared" for p in Path(__file__).resolve().parents[1].parents if (p / "shared").is_dir()),
    Path(__file__).resolve().parents[1].parent / "shared",
)
REAL = Path(
    os.environ.get("ZOO_KAHL_AED_PICKLE", SHARED / "weights" / "kahl-aed" / "AED_Example_Run_model.pkl")
)
SCREAM = SHARED / "audio" / "kahl-aed" / "schreien_scream.wav"

needs_scream = pytest.mark.skipif(
    not SCREAM.is_file(), reason=f"upstream's example recording {SCREAM} is absent"
)


def _expect(manifest, source, reference_weights):
    recordings = audio_inputs(manifest, [SCREAM])
    outputs = [[source.run(call) for call in calls] for calls in recordings.feeds]
    return expectations(manifest, recordings, outputs, source.classes, reference_weights)


@needs_scream
@pytest.mark.skipif(
    not REAL.is_file(), reason=f"the real Kahl AED pickle is not beside the repository ({REAL})"
)
def test_real_pickle_loads_as_upstream_built_it_and_hears_the_scream():
    manifest = Catalog().get("kahl-aed")
    source = converter_for(manifest).load({REAL.name: REAL}, manifest)
    assert source.notes == [], source.notes  # the graph is upstream's buildModel, as the manifest says
    assert len(source.classes) == 20 and "schreien" in source.classes
    [result] = _expect(manifest, source, reference_weights=False)
    assert result["passed"], result


@needs_scream
def test_the_schreien_expectation_runs_on_the_recording_and_is_skipped_for_reference_weights(tmp_path):
    manifest = Catalog().get("kahl-aed")
    assert [(e.probe, e.label, e.top_k) for e in manifest.verify.expectations] == [
        ("schreien_scream.wav", "schreien", 1)
    ]
    path = tmp_path / "AED_Example_Run_model.pkl"
    narrow = (
        (f"conv{i}", 0, width, 3, 2 if i == 1 else 1) for i, width in enumerate((8, 8, 16, 16, 16), start=1)
    )
    path.write_bytes(
        lasagne.seeded_pickle(manifest, 1, network=lasagne.manifest_network(manifest, tuple(narrow)))
    )
    source = converter_for(manifest).load({path.name: path}, manifest)
    [skipped] = _expect(manifest, source, reference_weights=True)
    assert skipped["passed"] is None and "reference weights are random" in skipped["note"]
    [ranked] = _expect(manifest, source, reference_weights=False)  # seeded weights: the rank is arbitrary
    assert 1 <= ranked["rank"] <= 20 and ranked["passed"] == (ranked["rank"] == 1)
    assert ranked["top"][0] in source.classes
