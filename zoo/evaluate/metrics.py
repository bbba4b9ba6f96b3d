"""Accuracy figures on cases anyone can check by hand: top-k accuracy, average precision, mAP."""

from __future__ import annotations

import numpy as np


def top_k_hits(scores: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Per row: is the target among the k highest scores (ties keep the lower class index first)?"""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits: np.ndarray = (order == np.asarray(targets)[:, None]).any(axis=1)
    return hits


def top_k_accuracy(scores: np.ndarray, targets: np.ndarray, k: int) -> float:
    return float(top_k_hits(scores, targets, k).mean()) if len(targets) else float("nan")


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float | None:
    """Area under the precision-recall steps, tied scores forming one step; None without positives."""
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    total = int(positives.sum())
    if total == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    scores, positives = scores[order], positives[order]
    true_pos = np.cumsum(positives)
    # the last index of each group of equal scores is where a threshold can cut
    cuts = np.r_[np.nonzero(np.diff(scores))[0], scores.shape[0] - 1]
    precision = true_pos[cuts] / (cuts + 1)
    recall = true_pos[cuts] / total
    steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(steps * precision))


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes that have at least one positive of their average precision."""
    targets = np.asarray(targets, dtype=bool)
    found = [average_precision(scores[:, c], targets[:, c]) for c in range(targets.shape[1])]
    values = [v for v in found if v is not None]
    return float(np.mean(values)) if values else float("nan")


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    targets = np.zeros((len(labels), classes), dtype=bool)
    for row, label in enumerate(labels):
        if label >= 0:
            targets[row, label] = True
    return targets
