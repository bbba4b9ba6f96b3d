"""VGGish's postprocessor (vggish_postprocess.py): PCA with whitening, clip to [-2, 2], 8-bit codes.

Upstream: pca_applied = eigen_vectors @ (embeddings.T - means[:, None]), transposed back;
clipped to [QUANTIZE_MIN_VAL, QUANTIZE_MAX_VAL] = [-2, 2]; (clipped + 2) * 255 / 4; then
`astype(np.uint8)`, which TRUNCATES (floor for these non-negative values): a code changes where
the value crosses an integer, and 255 is reached only at exactly +2.

zoo runs it on the host in numpy, in float64, for every runtime alike: it is 128 x 128
multiply-adds per 0.96 s, with no weights worth converting, and its truncation is an exact
function a converted graph could only imitate. Parameters come from upstream's npz
(`pca_eigen_vectors` [128, 128], `pca_means` [128]), read without pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.errors import ZooError

EIGEN_VECTORS = "pca_eigen_vectors"
MEANS = "pca_means"
QUANTIZE_MIN = -2.0
QUANTIZE_MAX = 2.0
LEVELS = 255.0
#: code units per unit of the PCA output: 255 / 4
STEP = LEVELS / (QUANTIZE_MAX - QUANTIZE_MIN)


@dataclass(frozen=True)
class PcaParams:
    """Upstream's PCA parameters: rows of `vectors` are the components."""

    vectors: np.ndarray
    means: np.ndarray

    @classmethod
    def read(cls, path: Path, size: int = 128) -> PcaParams:
        """The npz as upstream's Postprocessor reads it; a wrong key or shape names the file."""
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in (EIGEN_VECTORS, MEANS) if k not in data.files]
                if missing:
                    raise ZooError(
                        f"{path}: the PCA parameters lack {', '.join(missing)} (it has {', '.join(data.files)})."
                    )
                vectors = np.asarray(data[EIGEN_VECTORS], dtype=np.float64)
                means = np.asarray(data[MEANS], dtype=np.float64).reshape(-1)
        except (OSError, ValueError) as exc:
            raise ZooError(f"{path}: not a readable .npz of PCA parameters: {exc}") from exc
        if vectors.shape != (size, size) or means.shape != (size,):
            raise ZooError(
                f"{path}: expected {EIGEN_VECTORS} of shape ({size}, {size}) and {MEANS} of {size} values, "
                f"got {vectors.shape} and {means.shape}."
            )
        return cls(vectors, means)

    def project(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, 128) PCA outputs in float64, before clipping: (x - means) @ vectors.T."""
        data = np.asarray(embeddings, dtype=np.float64).reshape(-1, self.means.shape[0])
        projected: np.ndarray = (data - self.means) @ self.vectors.T
        return projected

    def codes(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, 128) uint8 codes, as upstream's `postprocess`."""
        return quantize(self.project(embeddings))

    def slack(self, error: np.ndarray) -> np.ndarray:
        """How far each PCA output may move when each embedding moves by at most *error* (per row).

        |delta y_j| <= sum_i |vectors[j, i]| * |delta x_i| <= ||vectors[j]||_1 * max_i |delta x_i|.
        """
        bound = np.asarray(error, dtype=np.float64).reshape(-1, 1)
        return bound * np.abs(self.vectors).sum(axis=1)[None, :]


def quantize(projected: np.ndarray) -> np.ndarray:
    """Clip to [-2, 2], scale to [0, 255], truncate to uint8 (upstream's astype)."""
    clipped = np.clip(np.asarray(projected, dtype=np.float64), QUANTIZE_MIN, QUANTIZE_MAX)
    scaled = (clipped - QUANTIZE_MIN) * STEP
    return scaled.astype(np.uint8)


def dequantize(codes: np.ndarray, offset: float, scale: float) -> np.ndarray:
    """The float input an attention head takes: (code - offset) / scale, float32."""
    return ((np.asarray(codes, dtype=np.float32) - np.float32(offset)) / np.float32(scale)).astype(np.float32)


def reachable(projected: np.ndarray, slack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lowest, highest) code a value may take when it may move by *slack* either way.

    Codes are a monotone function of the PCA output, so the codes an honest computation can give
    are exactly those between the codes of (value - slack) and (value + slack): a value far from
    every boundary has one code, a value within *slack* of a boundary two (or more, when the slack
    spans several levels).
    """
    values = np.asarray(projected, dtype=np.float64)
    return quantize(values - slack), quantize(values + slack)
