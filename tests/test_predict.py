"""`zoo predict` on tiny models through the real pipeline: outputs per task, formats, exit codes,
blocks, lightness, plots and bundles.

The tiny classifier of the bundle tests (converted, quantized and verified once per session) gives
the classification path and the bundle; a tiny recurrent voice-activity model and a copy of the
classifier declared as a sound-event detector, converted and verified here, give the other tasks.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests import test_bundle as shared
from tests import tinymodel
from tests.conftest import ROOT, run_zoo
from tests.test_bundle import built_once, ok

# session fixtures shared with the bundle tests (one tiny pipeline run, one key pair, one signed bundle)
verified_tiny = shared.verified_tiny
keys = shared.keys
signed = shared.signed

pytestmark = pytest.mark.xdist_group("bundle")


def write_audio(path: Path, samples: np.ndarray, rate: int) -> Path:
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), samples.astype(np.float32), rate)
    return path


@pytest.fixture(scope="session")
def recordings(tmp_path_factory) -> Path:
    """A folder of recordings at other rates and formats: noise at 44.1 kHz, a tone (FLAC, 8 kHz), stereo."""
    root = tmp_path_factory.mktemp("recordings")
    rng = np.random.RandomState(3)
    write_audio(root / "noise.wav", 0.3 * rng.standard_normal(44100 * 3), 44100)
    write_audio(root / "tone.flac", 0.5 * np.sin(np.arange(8000 * 2) * 2 * np.pi * 440 / 8000), 8000)
    stereo = 0.2 * rng.standard_normal((22050 * 2, 2))
    write_audio(root / "sub" / "stereo.wav", stereo, 22050)
    (root / "notes.txt").write_text("not audio, and not picked up from a folder\n")
    return root


@pytest.fixture(scope="session")
def other_tasks(tmp_path_factory) -> shared.Verified:
    """tiny-stream (voice activity) and tiny-sed (the classifier as a sound-event detector), verified."""

    def build(root: Path) -> None:
        catalog = root / "catalog"
        model = tinymodel.make_tiny_onnx(root / "upstream" / "tiny.onnx")
        text = tinymodel.write_tiny_entry(catalog, model, name="tiny-sed").read_text()
        (catalog / "tiny-sed.yaml").write_text(
            text.replace("task: audio-classification", "task: sound-event-detection").replace(
                "clip: {seconds: 0.1, hop: 0.1, pad: zero}", "clip: {seconds: 0.1, hop: 0.05, pad: zero}"
            )
        )
        tinymodel.write_stream_entry(catalog, tinymodel.make_stateful_onnx(root / "upstream" / "stream.onnx"))
        for command in ("convert", "verify"):
            args = ("--manifests", str(catalog), "--name", "tiny-sed,tiny-stream", "-o", str(root / "out"))
            ok(run_zoo(command, *args), f"zoo {command}")

    root = built_once(tmp_path_factory, "predict-tasks", build)
    return shared.Verified(root / "catalog", root / "out")


def predict(verified: shared.Verified, name: str, *args: str):
    return run_zoo(
        "predict", "--manifests", str(verified.catalog), "--name", name, "-o", str(verified.out), *args
    )


# -- classification ------------------------------------------------------------------------------


def test_classification_top_k_is_the_mean_of_the_window_scores(verified_tiny, recordings):
    result = ok(
        predict(verified_tiny, "tiny", str(recordings), "--format", "json", "--windows", "--top-k", "5"),
        "predict",
    )
    data = result.json()
    # the default is the fastest artifact that passed verify, and the output says so
    assert data["artifact"] == "INT8" and "passed zoo verify" in data["chosen_because"]
    assert "INT8 (the fastest artifact that passed zoo verify)" in result.stderr
    files = [Path(f["file"]).name for f in data["files"]]
    assert files == ["noise.wav", "stereo.wav", "tone.flac"]  # folders searched, sorted, .txt skipped
    for entry in data["files"]:
        # with top-k = every class, each window holds every score: the clip score is their mean
        per_window: dict[str, list[float]] = {}
        for window in entry["timeline"]:
            assert len(window["top"]) == 5 and window["end"] - window["start"] == pytest.approx(0.1)
            for item in window["top"]:
                per_window.setdefault(item["label"], []).append(item["score"])
        means = {label: float(np.mean(v)) for label, v in per_window.items()}
        top = entry["top"]
        assert [t["label"] for t in top] == sorted(means, key=lambda k: -means[k])
        assert [t["score"] for t in top] == pytest.approx([means[t["label"]] for t in top], rel=1e-9)
        assert entry["windows"] == len(entry["timeline"]) == int(np.ceil(entry["seconds"] / 0.1))


def test_files_in_parallel_give_the_same_results_in_order(verified_tiny, recordings):
    one = ok(predict(verified_tiny, "tiny", str(recordings), "-f", "json", "--windows"), "-j 1").json()
    two = ok(
        predict(verified_tiny, "tiny", str(recordings), "-f", "json", "--windows", "-j", "3"), "-j 3"
    ).json()
    assert two["files"] == one["files"]


def test_table_csv_top_k_and_threshold(verified_tiny, recordings):
    noise = str(recordings / "noise.wav")
    table = ok(predict(verified_tiny, "tiny", noise, "--artifact", "onnx", "--top-k", "2"), "predict")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["file", "rank", "label", "score"] and len(lines) == 3
    assert "onnx (asked for)" in table.stderr and "x realtime" in table.stderr
    rows = list(
        csv.DictReader(io.StringIO(ok(predict(verified_tiny, "tiny", noise, "-f", "csv"), "csv").stdout))
    )
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4", "5"]
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True) and set(r["label"] for r in rows) == set(tinymodel.LABELS)
    cut = scores[1] - 1e-6
    above = list(
        csv.DictReader(
            io.StringIO(predict(verified_tiny, "tiny", noise, "-f", "csv", "--threshold", str(cut)).stdout)
        )
    )
    assert [r["label"] for r in above] == [r["label"] for r in rows[:2]]


def test_window_timeline_csv(verified_tiny, recordings):
    result = ok(
        predict(
            verified_tiny, "tiny", str(recordings / "tone.flac"), "-f", "csv", "--windows", "--top-k", "1"
        ),
        "predict",
    )
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 20 and [float(r["start"]) for r in rows[:3]] == [0.0, 0.1, 0.2]
    assert all(r["rank"] == "1" for r in rows)


def test_predict_feeds_and_window_outputs_are_verifys(verified_tiny, recordings, monkeypatch):
    """Block by block (forced small here), the feeds are those `zoo verify --audio` makes, and so are the outputs."""
    from zoo.catalog import Catalog
    from zoo.predict import audio, geometry, probe
    from zoo.predict.model import from_output
    from zoo.predict.run import window_outputs
    from zoo.streams import run_calls
    from zoo.verify.inputs import audio_inputs

    manifest = Catalog(verified_tiny.catalog).get("tiny")
    monkeypatch.setattr(audio, "BLOCK_SECONDS", 0.35)  # blocks of 3 windows: resampling across block edges
    for name in ("noise.wav", "sub/stereo.wav", "tone.flac"):
        path = recordings / name
        grid = geometry(manifest)
        blocks = list(audio.blocks(manifest, probe(path, grid.rate), grid))
        assert len(blocks) > 3
        feeds = [feed for block in blocks for feed in block.feeds]
        expected = audio_inputs(manifest, [path]).feeds[0]
        assert len(feeds) == len(expected)
        for mine, theirs in zip(feeds, expected, strict=True):
            assert mine.keys() == theirs.keys()
            assert all(np.array_equal(mine[k], theirs[k]) for k in mine)
        for kind in ("FP32", "INT8", "onnx"):
            chosen = from_output(manifest, verified_tiny.out, kind)
            runner = chosen.open()
            mine_out = [raw for _, raw, _ in window_outputs(runner, manifest, probe(path, grid.rate), grid)]
            _, verify_out = run_calls(chosen.open(), manifest, expected)
            assert np.array_equal(np.stack(mine_out), np.stack([o["output"] for o in verify_out])), kind


def test_unreadable_input_is_exit_2_naming_the_file(verified_tiny, recordings, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt nothing useful")
    result = predict(verified_tiny, "tiny", str(recordings / "noise.wav"), str(bad))
    assert result.returncode == 2 and str(bad) in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""  # nothing is reported before every file was found readable
    missing = predict(verified_tiny, "tiny", str(tmp_path / "nowhere.wav"))
    assert missing.returncode == 2 and "nowhere.wav" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    none = predict(verified_tiny, "tiny", str(empty))
    assert none.returncode == 2 and "no audio files" in none.stderr


def test_bad_options_are_exit_2(verified_tiny, recordings, tmp_path):
    noise = str(recordings / "noise.wav")
    for args, named in (
        (("--artifact", "FP64"), "--artifact"),
        (("--format", "xml"), "--format"),
        (("--format", "raven"), "--format raven"),
        (("--overlap", "0.1"), "--overlap"),
    ):
        result = predict(verified_tiny, "tiny", noise, *args)
        assert result.returncode == 2 and named in result.stderr, (args, result.stderr)
    assert run_zoo("predict", noise).returncode == 2
    nothing = run_zoo(
        "predict", "--manifests", str(verified_tiny.catalog), "--name", "tiny", "-o", str(tmp_path), noise
    )
    assert nothing.returncode == 2 and "zoo convert" in nothing.stderr


# -- detection and voice activity ---------------------------------------------------------------------


def test_detection_table_formats_and_overlap(other_tasks, recordings):
    noise = str(recordings / "noise.wav")
    data = ok(predict(other_tasks, "tiny-sed", noise, "-f", "json", "--threshold", "0.3"), "predict").json()
    assert data["task"] == "detection"
    found = data["files"][0]["detections"]
    assert found and all(d["confidence"] >= 0.3 for d in found)
    starts = sorted({d["start"] for d in found})
    assert all(round(s / 0.05, 6).is_integer() for s in starts)  # the manifest's hop of 0.05 s
    assert all(d["end"] - d["start"] == pytest.approx(0.1) for d in found)
    # --overlap 0: windows back to back
    plain = ok(
        predict(other_tasks, "tiny-sed", noise, "-f", "csv", "--threshold", "0.3", "--overlap", "0"), "csv"
    )
    rows = list(csv.DictReader(io.StringIO(plain.stdout)))
    assert list(rows[0]) == ["file", "start", "end", "label", "confidence"]
    assert rows and all(round(float(r["start"]) / 0.1, 6).is_integer() for r in rows)
    birdnet = ok(predict(other_tasks, "tiny-sed", noise, "-f", "birdnet", "--threshold", "0.3"), "birdnet")
    header = birdnet.stdout.splitlines()[0]
    assert header == "Start (s),End (s),Scientific name,Common name,Confidence,File"
    assert len(birdnet.stdout.splitlines()) == len(found) + 1
    raven = ok(predict(other_tasks, "tiny-sed", noise, "-f", "raven", "--threshold", "0.3"), "raven")
    table = [line.split("\t") for line in raven.stdout.splitlines()]
    assert table[0][:5] == ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)"]
    assert [r[0] for r in table[1:]] == [str(i) for i in range(1, len(found) + 1)]
    assert {r[10] for r in table[1:]} == {noise}
    # nothing above the threshold: a header alone, exit 0
    none = ok(predict(other_tasks, "tiny-sed", noise, "-f", "csv", "--threshold", "1.0"), "nothing")
    assert none.stdout.splitlines() == ["file,start,end,label,confidence"]


def test_voice_activity_segments_follow_the_rules(other_tasks, recordings, tmp_path):
    """The segments predict prints are the rules applied to the probabilities it computed."""
    from zoo.predict.vad import speech_segments

    rng = np.random.RandomState(0)
    signal = np.concatenate(
        [0.5 * rng.standard_normal(8000), np.zeros(8000), 0.5 * rng.standard_normal(4000)]
    )
    path = write_audio(tmp_path / "bursts.wav", signal, 8000)
    data = ok(
        predict(other_tasks, "tiny-stream", str(path), "-f", "json", "--windows", "--threshold", "0.5"), "vad"
    ).json()
    entry = data["files"][0]
    assert data["task"] == "voice-activity" and "segments" in entry
    probabilities = np.array(entry["probabilities"])
    assert len(probabilities) == -(-len(signal) // tinymodel.CHUNK)  # the last chunk zero-padded
    expected = [
        (a / 8000, b / 8000) for a, b in speech_segments(probabilities, tinymodel.CHUNK, 8000, len(signal))
    ]
    assert [(s["start"], s["end"]) for s in entry["segments"]] == pytest.approx(expected)
    silent = write_audio(tmp_path / "silence.wav", np.zeros(8000), 8000)
    quiet = ok(predict(other_tasks, "tiny-stream", str(silent), "--threshold", "0.99"), "silence")
    assert quiet.returncode == 0 and quiet.stdout.splitlines() == ["file  start  end"]


@pytest.mark.parametrize(
    "probabilities, expected",
    [
        # 0.5 threshold, 16 kHz, 512-sample chunks (32 ms): min speech 250 ms, min silence 100 ms, pad 30 ms (480)
        ([0.0] * 5 + [0.9] * 20 + [0.0] * 10, [(5 * 512 - 480, 25 * 512 + 480)]),
        # too short (8 chunks = 256 ms is not more than 250 ms? it is: 4096 > 4000) and too short (7 chunks)
        ([0.9] * 8 + [0.0] * 10, [(0, 8 * 512 + 480)]),
        ([0.0] * 3 + [0.9] * 7 + [0.0] * 10, []),
        # a dip to 0.4 (above 0.35) never ends the segment; a short silence (3 chunks < 100 ms) neither
        ([0.9] * 10 + [0.4] * 10 + [0.9] * 5 + [0.0] * 3 + [0.9] * 5 + [0.0] * 10, [(0, 33 * 512 + 480)]),
        # two segments 5 chunks apart (160 ms > 2 pads): each padded
        (
            [0.9] * 10 + [0.0] * 5 + [0.9] * 10 + [0.0] * 10,
            [(0, 10 * 512 + 480), (15 * 512 - 480, 25 * 512 + 480)],
        ),
        # open at the end: ends with the audio
        ([0.0] * 10 + [0.9] * 10, [(10 * 512 - 480, 20 * 512)]),
    ],
)
def test_vad_rules_by_hand(probabilities, expected):
    from zoo.predict.vad import speech_segments

    assert speech_segments(np.array(probabilities), 512, 16000, len(probabilities) * 512) == expected


def test_gap_narrower_than_two_pads_is_shared():
    from zoo.predict.vad import VadRules, speech_segments

    # min silence 0: a single quiet chunk splits; the 512-sample gap is < 2 x 480 and is split in the middle
    rules = VadRules(min_silence_ms=0.0, min_speech_ms=0.0)
    found = speech_segments(
        np.array([0.9] * 10 + [0.0] + [0.9] * 10 + [0.0] * 3), 512, 16000, 24 * 512, rules
    )
    assert found == [(0, 10 * 512 + 256), (11 * 512 - 256, 21 * 512 + 480)]


# -- light, plot, bundle ----------------------------------------------------------------------------


def test_predicting_with_onnx_and_ir_imports_no_training_framework(verified_tiny, other_tasks, recordings):
    script = textwrap.dedent(
        """
        import sys
        from zoo.cli import app
        for args in sys.argv[1:]:
            try:
                app(args.split("|"), standalone_mode=False)
            except SystemExit as exc:
                assert not exc.code, exc.code
        heavy = sorted(m for m in ("torch", "tensorflow", "tf_keras", "keras", "nncf") if m in sys.modules)
        print("HEAVY=" + ",".join(heavy))
        """
    )
    noise = str(recordings / "noise.wav")
    runs = []
    for verified, name, artifact in (
        (verified_tiny, "tiny", "onnx"),
        (verified_tiny, "tiny", "FP32"),
        (verified_tiny, "tiny", "INT8"),
        (other_tasks, "tiny-stream", "FP16"),
    ):
        runs.append(
            "|".join(
                ["predict", "--manifests", str(verified.catalog), "--name", name, "-o", str(verified.out)]
            )
            + f"|--artifact|{artifact}|{noise}"
        )
    proc = subprocess.run(
        [sys.executable, "-c", script, *runs], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "HEAVY=\n" in proc.stdout, proc.stdout


def _matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def test_plot_without_matplotlib_is_exit_2_before_any_work(verified_tiny, recordings, tmp_path):
    if _matplotlib():
        pytest.skip("matplotlib is installed here; test_plot_is_a_picture covers --plot")
    result = predict(verified_tiny, "tiny", str(recordings / "noise.wav"), "--plot", str(tmp_path / "p.png"))
    assert result.returncode == 2 and "matplotlib" in result.stderr and result.stdout == ""


@pytest.mark.skipif(
    not _matplotlib(), reason="matplotlib is not installed in this environment (not in constraints.txt)"
)
@pytest.mark.parametrize("name", ["tiny-sed", "tiny-stream"])
def test_plot_is_a_picture(other_tasks, recordings, tmp_path, name):
    import matplotlib.image

    target = tmp_path / "picture.png"
    ok(
        predict(
            other_tasks, name, str(recordings / "noise.wav"), "--plot", str(target), "--threshold", "0.3"
        ),
        "plot",
    )
    image = matplotlib.image.imread(str(target))
    assert image.shape[0] >= 400 and image.shape[1] >= 800
    assert float(np.std(image[..., :3])) > 0.05  # not blank


def test_bundle_made_published_and_pulled(signed, keys, recordings, verified_tiny, tmp_path):
    shelf, got = tmp_path / "shelf", tmp_path / "got"
    ok(run_zoo("publish", str(signed.tarball), "--to", str(shelf)), "publish")
    pulled = ok(run_zoo("pull", str(shelf), "--version", "1.0.0", "-o", str(got), "--json"), "pull").json()
    noise = str(recordings / "noise.wav")
    expected = ok(predict(verified_tiny, "tiny", noise, "-f", "json"), "predict from outputs").json()
    for where in (pulled["directory"], pulled["tarball"]):
        result = ok(
            run_zoo(
                "predict",
                "--bundle",
                where,
                "--model",
                "tiny",
                "--public-key",
                str(keys.public),
                noise,
                "-f",
                "json",
            ),
            "predict --bundle",
        )
        data = result.json()
        assert data["artifact"] == "INT8" and "signature checked" in data["chosen_because"]
        assert data["files"] == expected["files"]
    wrong = run_zoo("predict", "--bundle", pulled["directory"], "--public-key", str(keys.other_public), noise)
    assert wrong.returncode != 0 and "signature" in wrong.stderr.lower()
    source = run_zoo("predict", "--bundle", pulled["directory"], "--artifact", "source", noise)
    assert source.returncode == 2 and "no source model" in source.stderr
    other = run_zoo("predict", "--bundle", pulled["directory"], "--model", "birdnet-v2.4", noise)
    assert other.returncode == 2 and "tiny" in other.stderr
