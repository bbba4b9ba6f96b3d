"""Former home of host-side preprocessing, now zoo/frontends/: these names are kept for old imports.

New code imports from zoo.frontends (prepare_inputs, synthetic_feature_inputs, frontend_for) or
from the front-end module that defines a helper.
"""

from __future__ import annotations

from zoo.frontends import prepare_inputs, synthetic_feature_inputs
from zoo.frontends.embeddings import EMBEDDING_PROFILE_SEED
from zoo.frontends.image import MIN_CHUNK_SECONDS, split_chunks_upstream, stft_magnitude_image
from zoo.frontends.logmel import hz_to_mel, log_mel, mel_filters, mel_to_hz
from zoo.frontends.signal import ZSCORE_EPS, peak_normalize, resample, split_clips, to_mono, zscore

__all__ = [
    "EMBEDDING_PROFILE_SEED",
    "MIN_CHUNK_SECONDS",
    "ZSCORE_EPS",
    "hz_to_mel",
    "log_mel",
    "mel_filters",
    "mel_to_hz",
    "peak_normalize",
    "prepare_inputs",
    "resample",
    "split_chunks_upstream",
    "split_clips",
    "stft_magnitude_image",
    "synthetic_feature_inputs",
    "to_mono",
    "zscore",
]
