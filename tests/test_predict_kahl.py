"""`zoo predict` on Kahl's AED as upstream's AED_test.py runs it: 3 s windows, an overlap, the window
predictions averaged, the top results above a confidence.

The weights are the seeded reference weights (the labels mean nothing); the mechanics are what is
tested: the clip-level scores are the mean of the window scores, and --reference-weights is the
same promise as for `zoo verify`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_zoo

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("predict-kahl")]


@pytest.fixture(scope="module")
def kahl(tmp_path_factory) -> tuple[Path, Path]:
    import soundfile

    root = tmp_path_factory.mktemp("kahl")
    out = root / "out"
    made = run_zoo(
        "convert", "--name", "kahl-aed", "--reference-weights", "-o", str(out), "--precisions", "FP32"
    )
    assert made.returncode == 0, made.stderr[-3000:]
    rng = np.random.RandomState(3)
    audio = root / "scream.wav"  # 5 s at 22.05 kHz: resampled to 44.1 kHz by the host front end
    soundfile.write(audio, 0.3 * rng.standard_normal(5 * 22050) * np.hanning(5 * 22050), 22050)
    return out, audio


def test_windows_are_averaged_into_the_top_results_as_upstream(kahl):
    out, audio = kahl
    base = (
        "predict",
        "--name",
        "kahl-aed",
        "--reference-weights",
        "-o",
        str(out),
        str(audio),
        "--overlap",
        "2",
    )
    windows = run_zoo(*base, "--threshold", "0", "--top-k", "20", "--format", "json")
    assert windows.returncode == 0, windows.stderr
    (per_window,) = json.loads(windows.stdout)["files"]
    starts = sorted({d["start"] for d in per_window["detections"]})
    # 3 s windows every 3 - 2 = 1 s (the manifest's clipping pads the last ones with zeros)
    assert starts[0] == 0.0 and len(starts) >= 3 and np.allclose(np.diff(starts), 1.0)
    scores: dict[str, list[float]] = {}
    for d in per_window["detections"]:
        scores.setdefault(d["label"], []).append(d["confidence"])
    assert all(len(v) == len(starts) for v in scores.values())  # every class in every window
    mean = {label: float(np.mean(v)) for label, v in scores.items()}

    averaged = run_zoo(*base, "--average", "--top-k", "5", "--threshold", "0.01", "--format", "json")
    assert averaged.returncode == 0, averaged.stderr
    assert "reference (seeded) weights" in averaged.stderr
    (clip,) = json.loads(averaged.stdout)["files"]
    top = clip["top"]
    expected = sorted(((s, label) for label, s in mean.items() if s >= 0.01), reverse=True)[:5]
    assert [t["label"] for t in top] == [label for _, label in expected]
    for t in top:
        assert t["score"] == pytest.approx(mean[t["label"]], abs=1e-6)
