"""Agreement on unlabelled audio, window by window, against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import MANIFESTS
from zoo.verify.metrics import compare, judge, scores_of, visible_top5, window_agreement

# three windows of four classes: the reference, and a candidate that differs in chosen places
REFERENCE = np.array(
    [
        [0.90, 0.05, 0.02, 0.01],  # confident, class 0
        [0.20, 0.25, 0.10, 0.00],  # not confident (top 0.25)
        [0.10, 0.10, 0.60, 0.55],  # confident, class 2; two detections at 0.5
    ]
)
CANDIDATE = np.array(
    [
        [0.80, 0.10, 0.02, 0.01],  # same top-1, same detections {0}
        [0.30, 0.20, 0.10, 0.00],  # top-1 moves (0 instead of 1): not a confident window
        [0.10, 0.10, 0.58, 0.45],  # same top-1; class 3 falls under 0.5: detections differ
    ]
)


def test_window_agreement_by_hand():
    found = window_agreement(REFERENCE, CANDIDATE, confident=0.5, detect=0.5)
    assert found["windows"] == 3
    assert found["confident_windows"] == 2  # windows 0 and 2
    assert found["top1_confident"] == 1.0  # both keep their top class; window 1's move is not counted
    assert found["detection"] == pytest.approx(2 / 3)  # window 2's {2, 3} became {2}
    assert found["detected_windows"] == 2
    # |differences|: 0.10 + 0.05 | 0.10 + 0.05 | 0.02 + 0.10, over 12 scores
    assert found["mean_abs_score"] == pytest.approx(0.42 / 12)


def test_no_confident_window_measures_nothing_and_fails_nothing():
    found = window_agreement(REFERENCE[1:2], CANDIDATE[1:2], confident=0.5)
    assert found["confident_windows"] == 0 and found["top1_confident"] is None
    assert judge(found, {"top1_confident": 0.99}) == []
    assert judge({"top1_confident": 0.5, "confident_windows": 2}, {"top1_confident": 0.99})[0]["metric"] == (
        "top1_confident"
    )


def test_visible_top5_by_hand():
    reference = np.array([[0.9] + [1e-20] * 7, [0.4, 0.3, 0.2, 0.1, 0.05, 0.0, 0.0, 0.0]])
    # window 0: only class 0 is visible in both, the order of the ~0 scores is noise -> 1
    # window 1 (floor 0.1): reference {0, 1, 2, 3}, candidate {0, 1, 2, 5} -> 3 / 4
    candidate = np.array([[0.8] + [1e-30, 1e-10, 0, 0, 0, 0, 0], [0.4, 0.3, 0.2, 0.05, 0.0, 0.15, 0.0, 0.0]])
    assert visible_top5(reference, candidate, 0.1) == pytest.approx((1 + 0.75) / 2)
    # nothing visible in either: full agreement
    assert visible_top5(np.zeros((1, 6)), np.full((1, 6), 1e-3), 0.1) == 1.0
    # a class visible in one model only counts against
    assert visible_top5(np.array([[0.5, 0.0]]), np.array([[0.5, 0.2]]), 0.1) == 0.5


def test_scores_of_logits():
    logits = np.array([[0.0, 2.0, -800.0]])
    np.testing.assert_allclose(scores_of(logits, "sigmoid"), [[0.5, 1 / (1 + np.exp(-2.0)), 0.0]])
    soft = scores_of(np.array([[0.0, np.log(3.0)]]), "softmax")
    np.testing.assert_allclose(soft, [[0.25, 0.75]])
    assert np.array_equal(scores_of(logits, "as-is"), logits)


def test_compare_adds_window_metrics_through_the_activation():
    logits = np.log(REFERENCE.clip(1e-6) / (1 - REFERENCE.clip(1e-6)))
    other = np.log(CANDIDATE.clip(1e-6) / (1 - CANDIDATE.clip(1e-6)))
    # two files: the first with windows 0-1 (two calls), the second with window 2
    reference = [[logits[0:1], logits[1:2]], [logits[2:3]]]
    candidate = [[other[0:1], other[1:2]], [other[2:3]]]
    found = compare(reference, candidate, agreement={"scores": "sigmoid", "confident": 0.5, "detect": 0.5})
    assert found["windows"] == 3 and found["confident_windows"] == 2
    assert found["top1_confident"] == 1.0 and found["detection"] == pytest.approx(2 / 3)
    assert found["top1"] == pytest.approx(2 / 3)  # window 1's top class moved
    assert found["mean_abs_score"] == pytest.approx(0.42 / 12, abs=1e-5)
    plain = compare(reference, candidate)
    assert "top1_confident" not in plain and plain["top1"] == found["top1"]


def test_call_agreement_needs_every_rule(tmp_path):
    """Quantize's per-window value: top-5 overlap where the confident top-1 and the detections agree."""
    from zoo.manifest import load_manifest
    from zoo.quantize.metric import call_agreement

    manifest = load_manifest(MANIFESTS / "birdnet-v2.4.yaml")  # sigmoid scores, confident 0.5, detect 0.5
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    classes = manifest.num_classes
    base = np.full(classes, logit(1e-4))
    ref, same, moved, extra = base.copy(), base.copy(), base.copy(), base.copy()
    ref[[0, 1, 2, 3, 4]] = logit(np.array([0.9, 0.3, 0.2, 0.1, 0.05]))
    same[[0, 1, 2, 3, 5]] = logit(np.array([0.85, 0.3, 0.2, 0.1, 0.06]))  # 4 of 5 shared
    moved[[0, 1]] = logit(np.array([0.4, 0.6]))  # the confident top-1 moved (and the detection)
    extra[[0, 1]] = logit(np.array([0.9, 0.55]))  # a second detection
    name = manifest.main_output.name
    reference = [{name: ref[None]}] * 3
    values = call_agreement(
        manifest, reference, [{name: same[None]}, {name: moved[None]}, {name: extra[None]}]
    )
    assert values == [pytest.approx(0.8), 0.0, 0.0]


def test_evaluate_reports_window_agreement():
    """`zoo evaluate`'s per-window figures: the clips of every file, as verify counts them."""
    from zoo.evaluate.predict import FileResult, window_figures
    from zoo.manifest import load_manifest

    yamnet = load_manifest(MANIFESTS / "yamnet.yaml")  # scores as they are, confident 0.3
    ref = [FileResult(REFERENCE[:2].mean(0), REFERENCE[:2]), FileResult(REFERENCE[2], REFERENCE[2:])]
    got = [FileResult(CANDIDATE[:2].mean(0), CANDIDATE[:2]), FileResult(CANDIDATE[2], CANDIDATE[2:])]
    found = window_figures(yamnet, ref, got)
    # confident at 0.3: windows 0 and 2 (window 1's top is 0.25); both keep their top class
    assert found["windows"] == 3 and found["confident_windows"] == 2 and found["top1_confident"] == 1.0
    assert "detection" not in found
    silero = load_manifest(MANIFESTS / "silero-vad.yaml")  # threshold 0.5
    chunks = np.array([[0.1], [0.6], [0.49], [0.9]])
    moved = np.array([[0.2], [0.4], [0.51], [0.95]])
    found = window_figures(silero, [FileResult(chunks.max(0), chunks)], [FileResult(moved.max(0), moved)])
    assert found["decision"] == 0.5 and found["mean_abs_score"] == pytest.approx(
        (0.1 + 0.2 + 0.02 + 0.05) / 4
    )
