"""MODEL_CARD.md for one model: YAML front matter a machine reads, a body a person reads.

Everything in it comes from the manifest and the verification report; the metrics
are the ones `zoo verify` measured, copied, never typed in.
"""

from __future__ import annotations

from typing import Any

import yaml

from zoo.bundle.record import ModelRecord
from zoo.manifest import Manifest
from zoo.vocab import human_size

_METRICS = ("max_abs", "max_rel", "cosine_min", "top1", "top5", "decision")
_SPDX = {"CC-BY-NC-SA-4.0": "cc-by-nc-sa-4.0", "Apache-2.0": "apache-2.0", "MIT": "mit"}


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) < 1e-3 or abs(value) >= 1e5:
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def _metric(name: str, value: Any) -> str:
    """Cosines near 1 need their digits: 0.99995 is not 1."""
    if name == "cosine_min" and isinstance(value, float):
        return f"{value:.7f}"
    return _number(value)


def front_matter(manifest: Manifest, entry: ModelRecord, bundle: dict[str, str] | None) -> dict[str, Any]:
    licence = manifest.license
    metrics = []
    for artifact in entry.artifacts:
        parity = artifact.parity
        measured = {k: v for k, v in parity.metrics.items() if k in _METRICS and v is not None}
        item = {
            "artifact": artifact.kind,
            "format": artifact.format,
            "precision": artifact.precision,
            "runtime": artifact.runtime,
            **measured,
            "passed": parity.passed,
        }
        if artifact.accuracy is not None:
            item["accuracy"] = artifact.accuracy
        quantization = artifact.quantization or {}
        if quantization.get("agreement") is not None:
            item["quantization_agreement"] = quantization["agreement"]
            item["quantization_agreement_metric"] = quantization.get("agreement_metric")
        metrics.append(item)
    data: dict[str, Any] = {
        "name": manifest.name,
        "version": manifest.version,
        "license": _SPDX.get(licence.name, licence.name.lower()),
        "license_name": licence.name,
        "license_url": licence.url,
        "commercial_use": licence.commercial_use,
        "task": manifest.task,
        "pipeline_tag": manifest.task,
        "tags": list(manifest.tags),
        "source_framework": manifest.framework,
        "formats": sorted({a.format for a in entry.artifacts}),
        "reference_weights": entry.reference_weights,
        "labels": entry.labels.count,
        "sample_rate": manifest.audio.sample_rate,
        "metrics": metrics,
    }
    if bundle:
        data["bundle"] = f"{bundle['name']}-{bundle['version']}"
    return data


def render_model_card(
    manifest: Manifest, report: dict[str, Any], entry: ModelRecord, bundle: dict[str, str] | None = None
) -> str:
    """The card's text; `entry` is the model's bundle.json record (artifacts with paths, sizes, parity),
    `report` the verification report it was made from (probes, expectations, tool versions)."""
    head = yaml.safe_dump(
        front_matter(manifest, entry, bundle), sort_keys=False, allow_unicode=True, width=100
    )
    parts = [
        f"---\n{head}---\n",
        f"# {manifest.name} {manifest.version}\n",
        manifest.description.strip() + "\n",
    ]
    parts.append(_licence(manifest))
    if entry.reference_weights:
        parts.append(
            "> **Reference weights.** These artifacts were made from seeded stand-in weights in the upstream "
            "file format, not from the published model. They exercise the pipeline; their predictions mean "
            "nothing.\n"
        )
    parts.append(_files(entry))
    parts.append(_tensors(manifest))
    parts.append(_preprocessing(manifest))
    parts.append(_labels(entry))
    parts.append(_verification(manifest, report, entry))
    parts.append(_golden(manifest, entry))
    parts.append(_provenance(manifest, report, entry))
    return "\n".join(parts)


def _licence(manifest: Manifest) -> str:
    licence = manifest.license
    lines = ["## Licence\n", f"{licence.name}" + (f" ({licence.url})" if licence.url else "") + "."]
    if not licence.commercial_use:
        lines.append(
            "\n> **Non-commercial use only.** The weights are licensed for non-commercial use; every artifact "
            "in this bundle is derived from them and carries the same licence."
        )
    if licence.notes:
        lines.append(f"\n{licence.notes}")
    if manifest.homepage:
        lines.append(
            f"\nUpstream: {manifest.homepage}" + (f"; paper: {manifest.paper}" if manifest.paper else "")
        )
    return "\n".join(lines) + "\n"


def _files(entry: ModelRecord) -> str:
    rows = [
        "## Files\n",
        "| artifact | format | precision | runtime | path | size | sha256 |",
        "|---|---|---|---|---|---|---|",
    ]
    for artifact in entry.artifacts:
        rows.append(
            f"| {artifact.kind} | {artifact.format} | {artifact.precision} | {artifact.runtime or '-'} "
            f"| `{artifact.path}` | {human_size(artifact.size)} | `{artifact.sha256[:16]}…` |"
        )
    rows.append(
        f"\nGolden vectors: `{entry.golden_vectors.path}/` ({entry.golden_vectors.sets} sets). "
        f"Labels: `{entry.labels.file}`. Every file's full sha256 is in `SHA256SUMS` and `bundle.json`."
    )
    return "\n".join(rows) + "\n"


def _tensors(manifest: Manifest) -> str:
    rows = ["## Inputs and outputs\n", "| | name | shape | dtype | kind |", "|---|---|---|---|---|"]
    for direction, specs in (("input", manifest.inputs), ("output", manifest.outputs)):
        for spec in specs:
            rows.append(
                f"| {direction} | `{spec.name}` | {list(spec.shape)} | {spec.dtype} | {spec.kind or ''} |"
            )
    if manifest.primary_output:
        rows.append(f"\nThe labels describe output `{manifest.primary_output}`.")
    return "\n".join(rows) + "\n"


def _preprocessing(manifest: Manifest) -> str:
    audio = manifest.audio
    lines = [
        "## Preprocessing (on the host, before the network)\n",
        f"- mono audio at {audio.sample_rate} Hz ({audio.channels} channel{'s' if audio.channels > 1 else ''}), float32",
    ]
    normalize = {
        "none": "no normalisation",
        "zscore": "z-score each clip: (x - mean) / (std + 1e-15)",
        "peak": "divide each clip by its peak |x|",
    }[audio.normalize]
    lines.append(f"- {normalize}")
    if audio.clip:
        hop = f", hop {audio.clip.hop} s" if audio.clip.hop else ""
        lines.append(f"- clips of {audio.clip.seconds} s{hop}, last clip padded: {audio.clip.pad}")
    if audio.features:
        params = ", ".join(f"{k}={v}" for k, v in audio.features.params.items())
        lines.append(f"- features: {audio.features.kind}" + (f" ({params})" if params else ""))
    lines.append(f"- clip outputs are combined by: {audio.aggregate}")
    if audio.streaming:
        lines.append("- streaming: feed consecutive chunks and pass the state outputs back in as inputs")
    if audio.notes:
        lines.append(f"- {audio.notes}")
    return "\n".join(lines) + "\n"


def _labels(entry: ModelRecord) -> str:
    names = entry.labels.names
    shown = ", ".join(names[:10]) + (f", … ({len(names) - 10} more)" if len(names) > 10 else "")
    return f"## Labels\n\n{len(names)} classes in output order (`{entry.labels.file}`): {shown}\n"


def _verification(manifest: Manifest, report: dict[str, Any], entry: ModelRecord) -> str:
    probes = report.get("probes") or {}
    lines = [
        "## Verification\n",
        f"Each artifact was run on {probes.get('count', '?')} deterministic probe signals"
        + (f" ({probes['calls']} calls, state carried from call to call)" if probes.get("streaming") else "")
        + f" and compared with the "
        f"source framework ({manifest.framework}) on the same inputs; tolerances come from the manifest. "
        f"Measured by `zoo verify` on {report.get('created', '?')}.\n",
        "| artifact | runtime | max abs | max rel | cosine min | top-1 | top-5 | decision | passed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for artifact in entry.artifacts:
        parity = artifact.parity
        metrics = parity.metrics
        runtime = artifact.runtime or "-"
        if parity.hint:
            runtime += f" ({parity.hint})"
        lines.append(
            f"| {artifact.kind} | {runtime} | "
            + " | ".join(_metric(k, metrics.get(k)) for k in _METRICS)
            + f" | {_number(parity.passed)} |"
        )
        default = parity.default_precision or {}
        if default.get("metrics"):
            measured = ", ".join(
                f"{k.replace('_', ' ')} {_number(default['metrics'][k])}"
                for k in _METRICS
                if default["metrics"].get(k) is not None
            )
            precision = default.get("precision") or "default"
            notes.append(
                f"- {artifact.kind} at the OpenVINO CPU plugin's default precision ({precision} on the machine "
                f"that verified it; bf16 on CPUs that have it): {measured}. Reported, not judged."
            )
        if artifact.accuracy is not None:
            notes.append(f"- {artifact.kind} accuracy: {artifact.accuracy}")
        quantization = artifact.quantization or {}
        if quantization.get("agreement") is not None:
            line = (
                f"- {artifact.kind}: NNCF {quantization.get('mode', '')} quantization "
                f"({quantization.get('preset')}, {quantization.get('subset_size')} calibration items from "
                f"{quantization.get('calibration')}); {quantization.get('agreement_metric')} with FP32 "
                f"{_number(quantization['agreement'])}"
            )
            control = quantization.get("accuracy_control")
            if control:
                line += (
                    f"; accuracy control on {control.get('metric')}: FP32 {_number(control.get('fp32'))}, "
                    f"INT8 {_number(control.get('int8'))}"
                )
            notes.append(line)
    expectations = report.get("expectations") or []
    if expectations:
        notes.append("\nUpstream self-tests:")
        for item in expectations:
            notes.append(
                f'- probe `{item.get("probe")}` -> "{item.get("label")}" ranked {item.get("rank", "?")}: '
                f"{'passed' if item.get('passed') else 'FAILED'}"
            )
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def _golden(manifest: Manifest, entry: ModelRecord) -> str:
    onnx = next((a for a in entry.artifacts if a.kind == "onnx"), None)
    model_path = onnx.path if onnx else entry.artifacts[0].path
    golden = entry.golden_vectors.path
    inputs = ", ".join(f"`{s.name}`" for s in manifest.inputs)
    return (
        "## Checking an artifact with the golden vectors\n\n"
        f"`{golden}/test_data_set_N/` holds inputs (`input_K.pb`: {inputs}) and the "
        "reference outputs the source framework produced (`output_K.pb`) as ONNX TensorProto files, the layout "
        "of the ONNX model zoo. Run from the bundle's folder:\n\n"
        "```python\n"
        "import glob, numpy as np, onnx, onnxruntime as ort\n"
        "from onnx import numpy_helper\n\n"
        "def load(path):\n"
        "    tensor = onnx.TensorProto()\n"
        "    tensor.ParseFromString(open(path, 'rb').read())\n"
        "    return tensor.name, numpy_helper.to_array(tensor)\n\n"
        f"session = ort.InferenceSession('{model_path}')\n"
        f"for folder in sorted(glob.glob('{golden}/test_data_set_*')):\n"
        "    feeds = dict(load(p) for p in sorted(glob.glob(folder + '/input_*.pb')))\n"
        "    expected = dict(load(p) for p in sorted(glob.glob(folder + '/output_*.pb')))\n"
        "    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))\n"
        "    for name, want in expected.items():\n"
        "        print(folder, name, float(np.max(np.abs(got[name] - want))))\n"
        "```\n\n"
        "Compare the printed differences with the tolerances in the verification table. "
        "`zoo bundle verify` checks every file's size, sha256 and the signature.\n"
    )


def _provenance(manifest: Manifest, report: dict[str, Any], entry: ModelRecord) -> str:
    lines = [
        "## Provenance\n",
        f"- manifest `{manifest.name}` {manifest.version}, sha256 `{entry.manifest_sha256}`",
    ]
    for name, digest in sorted(entry.sources.items()):
        lines.append(f"- source `{name}`: sha256 `{digest}`")
    tools = report.get("versions") or {}
    if tools:
        lines.append("- made with " + ", ".join(f"{k} {v}" for k, v in tools.items()))
    return "\n".join(lines) + "\n"
