"""`zoo evaluate`: dataset folders, accuracy and mAP on hand-computed cases, and real models end to end."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from tests.conftest import MANIFESTS
from zoo.errors import UsageError
from zoo.evaluate import (
    average_precision,
    folder_key,
    mean_average_precision,
    read_audio,
    read_dataset,
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
    """evaluate's detection uses zoo.predict.vad's segments, unpadded; here in chunk indices."""
    from zoo.predict.vad import VadRules
    from zoo.predict.vad import speech_segments as in_samples

    def speech_segments(probs, chunk_seconds, threshold):
        chunk = round(chunk_seconds * 16000)
        rules = VadRules(threshold=threshold, speech_pad_ms=0.0)
        found = in_samples(np.asarray(probs), chunk, 16000, len(probs) * chunk, rules)
        return [(a // chunk, b // chunk) for a, b in found]

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


# -- real models end to end ------------------------------------------------------------------------

import shutil  # noqa: E402
import subprocess  # noqa: E402

from tests.conftest import run_zoo  # noqa: E402
from tests.int8_models import GROUP, env, quantized, zoo_ok  # noqa: E402


def _espeak(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)  # 22050 Hz


@pytest.mark.xdist_group(GROUP)
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng makes the speech")
def test_evaluate_silero_vad_speech_against_noise(tmp_path):
    """Four files labelled speech (one of them silent, on purpose) and three that are not: 6 of 7 right."""
    out, _ = quantized("silero-vad")
    data = tmp_path / "vad"
    _espeak(data / "speech" / "one.wav", "The quick brown fox jumps over the lazy dog.")
    _espeak(data / "speech" / "two.wav", "Please call Stella and ask her to bring these things.")
    _espeak(data / "speech" / "three.wav", "Turn the volume down, the music is far too loud.")
    _write(data / "speech" / "mislabelled-silence.wav", seconds=2.0, value=0.0)
    rng = np.random.RandomState(0)
    (data / "non-speech").mkdir()
    soundfile.write(
        str(data / "non-speech" / "noise.wav"), (0.05 * rng.standard_normal(32000)).astype(np.float32), 16000
    )
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)
    soundfile.write(str(data / "non-speech" / "tone-48k.wav"), tone.astype(np.float32), 48000)
    _write(data / "non-speech" / "silence.flac", seconds=1.0, value=0.0)

    report = zoo_ok(
        "evaluate", "--name", "silero-vad", "-o", str(out), "--dataset", str(data), "--json"
    ).json()
    assert report["files"] == 7 and report["classes"] == {"speech": 4, "(negative)": 3}
    assert report["metric"] == "accuracy" and report["reference_weights"] is False
    assert list(report["results"]) == ["source", "onnx", "FP32", "FP16", "INT8"]
    for artifact, entry in report["results"].items():
        assert entry["accuracy"] == pytest.approx(6 / 7), artifact
        assert entry["detected"] == 3 and entry["positives"] == 4
        if artifact != "source":
            assert entry["agreement_source"] == 1.0

    table = zoo_ok(
        "evaluate", "--name", "silero-vad", "-o", str(out), "--dataset", str(data), "--precisions", "INT8"
    ).stdout
    assert "85.71 %" in table and "onnx" not in table and "source" not in table


@pytest.mark.xdist_group(GROUP)
def test_evaluate_aclnet_top1_top5_match_an_independent_computation(tmp_path):
    """Folders chosen from an independent run of the ONNX model: 3 top-1 hits, 1 top-5 hit, 1 miss."""
    import onnxruntime as ort
    from scipy.signal import resample_poly

    out, _ = quantized("aclnet")
    labels = [
        line.strip()
        for line in (MANIFESTS / "labels" / "aclnet_53cl.txt").read_text().splitlines()
        if line.strip()
    ]
    session = ort.InferenceSession(
        str(out / "aclnet" / "onnx" / "aclnet.onnx"), providers=["CPUExecutionProvider"]
    )
    rng = np.random.RandomState(7)
    t = np.arange(27200) / 16000
    signals = [
        (16000, 0.5 * np.sin(2 * np.pi * (200 + 800 * t) * t)),
        (16000, 0.2 * rng.standard_normal(t.size)),
        (16000, np.sign(np.sin(2 * np.pi * 3 * t)) * 0.3 * np.sin(2 * np.pi * 1500 * t)),
        (16000, 0.4 * np.sin(2 * np.pi * 100 * t) + 0.05 * rng.standard_normal(t.size)),
        (8000, 0.3 * np.sin(2 * np.pi * 700 * np.arange(13600) / 8000)),
    ]

    def expected_scores(rate, audio):
        """AclNet's host side written out: 16 kHz, 1 s clips every 0.5 s (last zero-padded), z-score, mean."""
        audio = audio.astype(np.float32)
        if rate != 16000:
            audio = resample_poly(audio.astype(np.float64), 16000 // rate, 1).astype(np.float32)
        starts = [0] + [8000 * k for k in range(1, int(np.ceil((audio.size - 16000) / 8000)) + 1)]
        rows = []
        for start in starts:
            clip = np.zeros(16000, dtype=np.float32)
            piece = audio[start : start + 16000]
            clip[: piece.size] = piece
            clip = ((clip - clip.mean()) / (clip.std() + 1e-15)).astype(np.float32)
            rows.append(session.run(None, {"input": clip.reshape(1, 1, 1, 16000)})[0][0])
        return np.mean(rows, axis=0)

    data = tmp_path / "esc"
    ranks_wanted = [0, 0, 0, 2, 52]  # top-1, top-1, top-1, third (a top-5 hit only), last (a miss)
    for index, ((rate, audio), rank) in enumerate(zip(signals, ranks_wanted, strict=True)):
        order = np.argsort(-expected_scores(rate, audio), kind="stable")
        folder = data / labels[order[rank]]
        folder.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(folder / f"clip-{index}.wav"), audio.astype(np.float32), rate, subtype="FLOAT")

    report = zoo_ok(
        "evaluate",
        "--name",
        "aclnet",
        "-o",
        str(out),
        "--dataset",
        str(data),
        "--json",
        "--precisions",
        "source,onnx,FP32",
    ).json()
    assert report["reference_weights"] is True and report["files"] == 5
    for artifact in ("source", "onnx", "FP32"):
        entry = report["results"][artifact]
        assert entry["top1"] == pytest.approx(3 / 5), artifact
        assert entry["top5"] == pytest.approx(4 / 5), artifact
        assert "mAP" not in entry  # single-label softmax: no mAP


def test_evaluate_bad_dataset_is_a_usage_error(tmp_path):
    (tmp_path / "data" / "not-a-class").mkdir(parents=True)
    _write(tmp_path / "data" / "not-a-class" / "a.wav")
    result = run_zoo(
        "evaluate",
        "--name",
        "aclnet",
        "-o",
        str(tmp_path / "out"),
        "--dataset",
        str(tmp_path / "data"),
        env=env(),
    )
    assert result.returncode == 2 and "not-a-class" in result.stderr and "Traceback" not in result.stderr
    result = run_zoo(
        "evaluate", "--name", "aclnet", "--dataset", str(tmp_path), "--precisions", "FP64", env=env()
    )
    assert result.returncode == 2 and "unknown artifact 'FP64'" in result.stderr
