"""`zoo convert`: output layout, stamps, up-to-date checks, parallel jobs, killed runs, per-model failures.

Runs the real command on a tiny real ONNX model fetched by file:// URL, so every stage (source,
ONNX, FP32 and FP16 IR) runs for real in seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_zoo
from tests.tinymodel import make_tiny_onnx, sha256, write_tiny_entry

STAGES = ["source", "onnx", "FP32", "FP16"]


@pytest.fixture
def tiny(tmp_path):
    model = make_tiny_onnx(tmp_path / "upstream" / "tiny.onnx", seed=0)
    catalog = tmp_path / "catalog"
    write_tiny_entry(catalog, model)
    return catalog, tmp_path / "out", model


def convert(catalog: Path, out: Path, *args: str, name: str = "tiny"):
    return run_zoo(
        "convert",
        "--manifests",
        str(catalog),
        "--name",
        name,
        "-o",
        str(out),
        "--cache-dir",
        str(out.parent / "cache"),
        "--json",
        *args,
    )


def statuses(result) -> dict[str, dict[str, str]]:
    assert result.returncode == 0, result.stderr
    return {r["model"]: {s["stage"]: s["status"] for s in r["stages"]} for r in result.json()}


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def test_convert_writes_the_layout_and_a_stamp_per_stage(tiny):
    catalog, out, model = tiny
    result = convert(catalog, out)
    assert statuses(result) == {"tiny": dict.fromkeys(STAGES, "done")}
    root = out / "tiny"
    for relative in (
        "source/tiny.onnx",
        "source/SOURCES.json",
        "onnx/tiny.onnx",
        "FP32/tiny.xml",
        "FP32/tiny.bin",
        "FP16/tiny.xml",
        "FP16/tiny.bin",
    ):
        assert (root / relative).is_file(), relative
    assert sha256(root / "onnx" / "tiny.onnx") == sha256(model)  # framework onnx: the source is the model
    stamps = {stage: json.loads((root / "stamps" / f"{stage}.json").read_text()) for stage in STAGES}
    assert stamps["source"]["outputs"]["source/tiny.onnx"]["sha256"] == sha256(model)
    assert stamps["onnx"]["key"]["sources"] == {"source/tiny.onnx": sha256(model)}
    assert stamps["onnx"]["key"]["versions"]["zoo"]
    assert stamps["onnx"]["key"]["versions"]["onnxruntime"]
    assert stamps["FP16"]["key"]["from"]["onnx"]["onnx/tiny.onnx"]["sha256"] == sha256(model)
    assert stamps["FP16"]["key"]["precision"] == "FP16"
    for stamp in stamps.values():
        assert stamp["reference_weights"] is False and len(stamp["manifest_sha256"]) == 64
    assert stamps["FP32"]["outputs"]["FP32/tiny.bin"]["sha256"] == sha256(root / "FP32" / "tiny.bin")
    assert not [p for p in root.rglob(".*") if p.name != ".lock"], "no temporary files are left behind"


def test_a_rerun_with_nothing_changed_does_no_work_and_says_so(tiny):
    catalog, out, _ = tiny
    assert convert(catalog, out).returncode == 0
    before = snapshot(out / "tiny")
    again = run_zoo(
        "convert",
        "--manifests",
        str(catalog),
        "--name",
        "tiny",
        "-o",
        str(out),
        "--cache-dir",
        str(out.parent / "cache"),
    )
    assert again.returncode == 0, again.stderr
    assert "up to date, nothing to do" in again.stdout
    assert "tiny: up to date, nothing to do" in again.stderr
    assert "making it" not in again.stderr
    assert snapshot(out / "tiny") == before


def test_a_changed_manifest_redoes_only_what_depends_on_the_change(tiny):
    catalog, out, _ = tiny
    manifest = catalog / "tiny.yaml"
    assert convert(catalog, out).returncode == 0

    edit(manifest, "description: A tiny test classifier.", "description: A tiny test classifier, reworded.")
    assert statuses(convert(catalog, out))["tiny"] == dict.fromkeys(STAGES, "up to date")

    edit(manifest, "FP16: {atol: 5.0e-3, top1: 1.0}", "FP16: {atol: 6.0e-3, top1: 1.0}")  # verify only
    assert statuses(convert(catalog, out))["tiny"] == dict.fromkeys(STAGES, "up to date")

    edit(
        manifest,
        "openvino: {precisions: [FP32, FP16]}",
        "openvino: {precisions: [FP32, FP16], fp16_keep_fp32: [dense1]}",
    )
    assert statuses(convert(catalog, out))["tiny"] == {
        "source": "up to date",
        "onnx": "up to date",
        "FP32": "up to date",
        "FP16": "done",
    }

    edit(
        manifest, "sample_rate: 8000", "sample_rate: 8000\n  notes: mono only"
    )  # preprocessing goes into the IR
    assert statuses(convert(catalog, out))["tiny"] == {
        "source": "up to date",
        "onnx": "up to date",
        "FP32": "done",
        "FP16": "done",
    }

    edit(manifest, "onnx: {opset: 17, exporter: copy}", "onnx: {opset: 18, exporter: copy}")
    # the ONNX stage runs again; its copy has the same bytes, so the IRs made from it stay valid
    assert statuses(convert(catalog, out))["tiny"] == {
        "source": "up to date",
        "onnx": "done",
        "FP32": "up to date",
        "FP16": "up to date",
    }


def test_a_changed_source_redoes_everything(tiny, tmp_path):
    catalog, out, model = tiny
    assert convert(catalog, out).returncode == 0
    old_sum = sha256(model)
    make_tiny_onnx(model, seed=1)
    edit(catalog / "tiny.yaml", old_sum, sha256(model))
    assert statuses(convert(catalog, out))["tiny"] == dict.fromkeys(STAGES, "done")
    assert sha256(out / "tiny" / "onnx" / "tiny.onnx") == sha256(model)


def test_an_output_edited_or_deleted_after_the_fact_is_made_again(tiny):
    catalog, out, _ = tiny
    assert convert(catalog, out).returncode == 0
    weights = out / "tiny" / "FP16" / "tiny.bin"
    data = bytearray(weights.read_bytes())
    data[100] ^= 0xFF
    weights.write_bytes(bytes(data))
    (out / "tiny" / "FP32" / "tiny.xml").unlink()
    result = convert(catalog, out)
    assert statuses(result)["tiny"] == {
        "source": "up to date",
        "onnx": "up to date",
        "FP32": "done",
        "FP16": "done",
    }
    assert "outputs missing or modified" in result.stderr


def test_precisions_option_chooses_the_irs(tiny):
    catalog, out, _ = tiny
    assert statuses(convert(catalog, out, "--precisions", "FP32"))["tiny"] == {
        "source": "done",
        "onnx": "done",
        "FP32": "done",
    }
    assert not (out / "tiny" / "FP16").exists()
    for bad, message in (("INT8", "zoo quantize"), ("FP64", "FP32, FP16")):
        result = convert(catalog, out, "--precisions", bad)
        assert result.returncode == 2
        assert message in result.stderr and "Traceback" not in result.stderr


def test_parallel_jobs_convert_several_models_and_one_failure_does_not_stop_the_others(tmp_path):
    catalog = tmp_path / "catalog"
    for index, name in enumerate(("tiny-a", "tiny-b", "tiny-c")):
        model = make_tiny_onnx(tmp_path / name / "tiny.onnx", seed=index)
        write_tiny_entry(catalog, model, name=name)
    edit(
        catalog / "tiny-c.yaml", f"sha256: {sha256(tmp_path / 'tiny-c' / 'tiny.onnx')}", "sha256: " + "f" * 64
    )
    out = tmp_path / "out"
    result = run_zoo(
        "convert",
        "--manifests",
        str(catalog),
        "--name",
        "tiny-*",
        "-o",
        str(out),
        "-j",
        "3",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
    )
    assert result.returncode == 1
    data = {r["model"]: r for r in result.json()}
    for name in ("tiny-a", "tiny-b"):
        assert data[name]["error"] is None
        assert [s["status"] for s in data[name]["stages"]] == ["done"] * 4
        assert (out / name / "FP16" / f"{name}.xml").is_file()
    assert data["tiny-c"]["stages"][-1] == {
        **data["tiny-c"]["stages"][-1],
        "stage": "source",
        "status": "failed",
    }
    assert "tiny-c" in result.stderr and "1 of 3 models failed" in result.stderr
    assert not (out / "tiny-c" / "onnx").exists()
    # one line for the failed model (named once, with its stage), then the one-line summary
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == "zoo: error: 1 of 3 models failed."
    failed = lines[-2]
    assert failed.startswith("zoo: tiny-c: source: file tiny.onnx") and "sha256" in failed
    assert "tiny-c: tiny-c" not in failed
    assert not any(x.startswith(("zoo: tiny-a: source: file", "zoo: tiny-b: source: file")) for x in lines)


def test_entries_without_published_weights_are_skipped_under_a_pattern_and_fail_when_named(tmp_path):
    out = tmp_path / "out"
    result = run_zoo("convert", "--name", "audioset-attention-*", "-o", str(out))
    assert result.returncode == 0, result.stderr
    names = ("audioset-attention-feature", "audioset-attention-multi", "audioset-attention-single")
    for name in names:
        line = next(x for x in result.stderr.splitlines() if x.startswith(f"zoo: {name}: skipped: "))
        assert "upstream publishes no weights" in line
        assert "--weights PATH (PyTorch checkpoint" in line and "--reference-weights" in line
        assert not (out / name / "onnx").exists()
    assert "skipped: upstream publishes no weights" in result.stdout  # in the table too
    assert (
        result.stderr.strip().splitlines()[-1]
        == "zoo: 0 of 3 models done; 3 skipped (no published weights, see above)."
    )
    as_json = run_zoo("convert", "--name", "audioset-attention-*", "-o", str(out), "--json")
    assert as_json.returncode == 0 and [r["model"] for r in as_json.json()] == list(names)
    assert all("--reference-weights" in r["skipped"] for r in as_json.json())
    # named on its own, the entry is what the user asked for: a usage error with the full explanation
    named = run_zoo("convert", "--name", "audioset-attention-single", "-o", str(out))
    assert named.returncode == 2
    assert "upstream publishes no weights" in named.stderr and "--weights PATH" in named.stderr
    assert named.stderr.strip().splitlines()[-1] == "zoo: error: 1 of 1 models failed."


def _finished_files_are_whole(root: Path) -> None:
    """Every file with a final name under the model folder is complete and loadable."""
    import onnx
    import openvino as ov

    for path in root.rglob("*"):
        if path.name.startswith(".") or any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if path.suffix == ".onnx":
            onnx.checker.check_model(onnx.load(str(path)))
        elif path.suffix == ".xml":
            assert path.with_suffix(".bin").is_file(), path
            ov.Core().read_model(str(path))
        elif path.suffix == ".json":
            json.loads(path.read_text())


def test_a_killed_convert_never_leaves_a_finished_looking_file(tiny):
    """SIGKILL each stage while it works; what is left must be whole, and the next run must finish."""
    catalog, out, _ = tiny
    command = [
        sys.executable,
        "-m",
        "zoo.cli",
        "convert",
        "--manifests",
        str(catalog),
        "--name",
        "tiny",
        "-o",
        str(out),
        "--cache-dir",
        str(out.parent / "cache"),
    ]
    killed_in = []
    for stage in STAGES:
        proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        for line in proc.stderr:
            if line.startswith(f"zoo: tiny: {stage}: ") and "making it" in line:
                # at once: the tiny model's stages take milliseconds, so a wait could let the stage
                # finish and the kill land in the next one (seen on a fast, idle machine)
                os.killpg(proc.pid, signal.SIGKILL)
                killed_in.append(stage)
                break
        proc.wait()
        proc.stderr.close()
        _finished_files_are_whole(out / "tiny")
    assert killed_in == STAGES
    result = convert(catalog, out)
    assert result.returncode == 0, result.stderr
    _finished_files_are_whole(out / "tiny")
    assert not [p for p in (out / "tiny").rglob(".*") if p.name != ".lock"], (
        "partials of killed runs are cleaned"
    )
    assert statuses(convert(catalog, out))["tiny"] == dict.fromkeys(STAGES, "up to date")


def test_bad_option_combinations_are_usage_errors(tiny, tmp_path):
    catalog, out, _ = tiny
    weights = tmp_path / "mine.onnx"
    weights.write_bytes(b"x")
    result = convert(catalog, out, "--weights", str(weights), "--reference-weights")
    assert result.returncode == 2 and "--reference-weights" in result.stderr
    write_tiny_entry(catalog, tmp_path / "upstream" / "tiny.onnx", name="tiny-two")
    result = run_zoo(
        "convert",
        "--manifests",
        str(catalog),
        "--name",
        "tiny,tiny-two",
        "-o",
        str(out),
        "--weights",
        str(weights),
    )
    assert result.returncode == 2 and "exactly one" in result.stderr
    assert "Traceback" not in result.stderr
