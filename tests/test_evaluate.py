"""`zoo evaluate`: dataset folders, accuracy and mAP on hand-computed cases, and real models end to end."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from zoo.errors import UsageError
from zoo.evaluate import (
    average_precision,
    folder_key,
    mean_average_precision,
    read_audio,
    read_dataset,
    speech_segments,
    top_k_accuracy,
)

# -- metrics on cases worked out by hand -------------------------------------------------------


def test_top_k_accuracy_by_hand():
    scores = np.array(
        [
            [0.1, 0.7, 0.2],  # target 1: top-1 hit
            [0.5, 0.3, 0.2],  # target 2: rank 3, miss at k=1 and k=2
            [0.2, 0.2, 0.6],  # target 0: rank 2 (tie with class 1, lower index first)
            [0.3, 0.3, 0.4],  # target 1: rank 3 (tie with class 0 goes to class 0)
        ]
    )
    targets = np.array([1, 2, 0, 1])
    assert top_k_accuracy(scores, targets, 1) == pytest.approx(1 / 4)
    assert top_k_accuracy(scores, targets, 2) == pytest.approx(2 / 4)
    assert top_k_accuracy(scores, targets, 3) == pytest.approx(1.0)


def test_average_precision_by_hand():
    # ranks 1..4 with positives at ranks 1 and 3: AP = (1/1 + 2/3) / 2
    assert average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
    # the same ranking given in another order; then both positives first
    assert average_precision([0.7, 0.6, 0.9, 0.8], [1, 0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([0.7, 0.6, 0.9, 0.8], [0, 0, 1, 1]) == pytest.approx(1.0)
    # a tie between a positive and a negative is one step at precision 1/2
    assert average_precision([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    assert average_precision([0.5, 0.5], [0, 0]) is None


def test_mean_average_precision_skips_classes_without_positives():
    scores = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.1], [0.6, 0.7, 0.2]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0]], dtype=bool)
    # class 0: positive ranked 1st -> AP 1; class 1: positives ranked 1st and 2nd -> AP 1
    assert mean_average_precision(scores, targets) == pytest.approx(1.0)
    targets[2] = [1, 0, 0]
    # class 0: scores 0.9 (pos), 0.6 (pos) -> 1; class 1: 0.8 (pos) first -> 1
    assert mean_average_precision(scores, targets) == pytest.approx(1.0)
    targets[2] = [0, 0, 1]
    # class 2: its positive (0.2) ranks 2nd of 3 -> AP 1/2; classes 0 and 1: 1 -> mean 5/6
    assert mean_average_precision(scores, targets) == pytest.approx((1 + 1 + 0.5) / 3)


def test_speech_segments_follow_upstream_rules():
    chunk = 512 / 16000  # 32 ms: 250 ms of speech is 8 chunks, 100 ms of silence 4 chunks
    assert speech_segments(np.r_[np.zeros(5), np.ones(7), np.zeros(10)], chunk, 0.5) == []
    assert speech_segments(np.r_[np.zeros(5), np.ones(8), np.zeros(10)], chunk, 0.5) == [(5, 13)]
    # a dip to 0.4 is above the lower threshold (0.35): the segment goes on
    probs = np.r_[np.ones(4), [0.4] * 6, np.ones(4), np.zeros(6)]
    assert speech_segments(probs, chunk, 0.5) == [(0, 14)]
    # speech running to the end of the file counts
    assert speech_segments(np.r_[np.zeros(3), np.ones(9)], chunk, 0.5) == [(3, 12)]


# -- dataset folders -------------------------------------------------------------------------------


def _write(path, seconds=0.5, rate=16000, value=0.1):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.full(int(seconds * rate), value, dtype=np.float32), rate)


def test_read_dataset_matches_folders_to_labels(tmp_path):
    classes = ["dog", "chirping_birds", "Gunshot"]
    _write(tmp_path / "dog" / "a.wav")
    _write(tmp_path / "Chirping birds" / "b.flac")
    _write(tmp_path / "gunshot" / "c.wav")
    (tmp_path / "gunshot" / "notes.txt").write_text("not audio")
    found = read_dataset(tmp_path, classes)
    assert [(f.path.name, f.label) for f in found.files] == [("b.flac", 1), ("a.wav", 0), ("c.wav", 2)]
    assert folder_key("Chirping birds") == folder_key("chirping_birds")


def test_read_dataset_refuses_unknown_folder(tmp_path):
    _write(tmp_path / "dgo" / "a.wav")
    with pytest.raises(UsageError, match=r"subfolder 'dgo' is not a class name.*Did you mean 'dog'"):
        read_dataset(tmp_path, ["dog", "cat"])


def test_read_dataset_detector_negative_folder(tmp_path):
    _write(tmp_path / "speech" / "a.wav")
    _write(tmp_path / "non-speech" / "b.wav")
    found = read_dataset(tmp_path, ["speech"], detector=True)
    assert [f.label for f in found.files] == [-1, 0]
    with pytest.raises(UsageError, match="negative folder named 'non-speech'"):
        (tmp_path / "other").mkdir()
        read_dataset(tmp_path, ["speech"], detector=True)


def test_read_dataset_needs_audio(tmp_path):
    (tmp_path / "dog").mkdir()
    with pytest.raises(UsageError, match="no audio files"):
        read_dataset(tmp_path, ["dog"])
    with pytest.raises(UsageError, match="not a folder"):
        read_dataset(tmp_path / "missing", ["dog"])


def test_read_audio_mixes_channels_down(tmp_path):
    stereo = np.stack([np.full(100, 0.5), np.full(100, -0.25)], axis=1).astype(np.float32)
    soundfile.write(str(tmp_path / "s.wav"), stereo, 8000, subtype="FLOAT")
    audio, rate = read_audio(tmp_path / "s.wav")
    assert rate == 8000 and audio.shape == (100,)
    np.testing.assert_allclose(audio, 0.125)
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really")
    with pytest.raises(Exception, match="cannot read this audio file"):
        read_audio(tmp_path / "bad.wav")
