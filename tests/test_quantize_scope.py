"""The INT8 recipe's structural front end: found by walking a real converted graph, not by names.

YAMNet's IR is the case that broke name patterns: OpenVINO names the STFT magnitude ops
`Power_*`, `ReduceSum_*`, `Sqrt_*`, outside `log_mel_features/`. The set is checked against the
graph itself (every op between the waveform and the log-mel output, none after the first
convolution) and against what NNCF really does with it (no quantizer on a front-end op).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import MANIFESTS, run_zoo

pytestmark = pytest.mark.xdist_group("tf-yamnet")


@pytest.fixture(scope="module")
def yamnet_ir(tmp_path_factory) -> Path:
    """YAMNet (seeded reference weights) converted to an FP32 IR by the real pipeline."""
    out = tmp_path_factory.mktemp("yamnet-scope")
    result = run_zoo(
        "convert", "--name", "yamnet", "--reference-weights", "--precisions", "FP32", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "yamnet" / "FP32" / "yamnet.xml"


def _descendants(start) -> set[str]:
    seen: set[str] = set()
    pending = [start]
    while pending:
        op = pending.pop()
        for output in op.outputs():
            for target in output.get_target_inputs():
                node = target.get_node()
                if node.get_friendly_name() not in seen:
                    seen.add(node.get_friendly_name())
                    pending.append(node)
    return seen


def test_yamnet_front_end_found_by_structure(yamnet_ir):
    import openvino as ov

    from converters.spectral import FOLDED_TAG
    from zoo.manifest import load_manifest
    from zoo.quantize.scope import front_end_ops, ignored_scope

    manifest = load_manifest(MANIFESTS / "yamnet.yaml")
    model = ov.Core().read_model(str(yamnet_ir))
    ops = {op.get_friendly_name(): op for op in model.get_ordered_ops()}
    found = front_end_ops(model, manifest)
    assert len(found) == len(set(found))
    kinds = {ops[name].get_type_name() for name in found}
    # the STFT (converters.spectral: two Gathers of the waveform around each frame's middle, their
    # sum and difference, a MatMul each for the cosine and sine halves), its magnitude (squared,
    # added, square-rooted), the mel matrix and the log: every such op of the model is front end
    halves = {n for n, op in ops.items() if op.get_type_name() == "MatMul" and "/band_limited/" in n}
    assert len(halves) == 2 and halves <= set(found)
    assert not {n for n in ops if n.endswith(FOLDED_TAG)}  # no strided convolution left
    gathers = {n for n, op in ops.items() if op.get_type_name() == "Gather" and "/band_limited/" in n}
    assert len(gathers) == 2 and gathers <= set(found)  # (the patches' Gather is after the boundary)
    for kind in ("Subtract", "Multiply", "Sqrt", "Log"):
        every = {n for n, op in ops.items() if op.get_type_name() == kind}
        assert every and every <= set(found), (kind, every - set(found))
    # ops a name pattern misses are found too (the reshape the STFT reads the waveform by)
    renamed = [n for n in found if "log_mel_features" not in n]
    assert {ops[n].get_type_name() for n in renamed} >= {"Reshape"}, renamed
    assert all(
        n in found for n in ops if "log_mel_features/stft" in n and ops[n].get_type_name() != "Constant"
    )
    assert "MatMul" in kinds and not kinds & {"GroupConvolution", "Parameter", "Constant"}
    assert not [n for n in found if ops[n].get_type_name() == "Convolution"]
    # nothing of the backbone: no op after the network's first convolution, nor the classifier's MatMul
    first = next(
        op
        for op in model.get_ordered_ops()
        if op.get_type_name() == "Convolution" and not op.get_friendly_name().endswith(FOLDED_TAG)
    )
    assert not _descendants(first) & set(found)
    assert "yamnet_frames/logits/MatMul" in ops and "yamnet_frames/logits/MatMul" not in found
    assert set(found) <= set(ignored_scope(manifest, model).names)


def test_nncf_leaves_the_front_end_unquantized(yamnet_ir):
    import nncf
    import openvino as ov

    from zoo.manifest import load_manifest
    from zoo.quantize.nncf_run import count_quantizers, recipe
    from zoo.quantize.scope import front_end_ops

    manifest = load_manifest(MANIFESTS / "yamnet.yaml")
    model = ov.Core().read_model(str(yamnet_ir))
    front = set(front_end_ops(model, manifest))
    rng = np.random.RandomState(0)
    items = [{"waveform": (0.1 * rng.standard_normal(15600)).astype(np.float32)} for _ in range(4)]
    quantized = nncf.quantize(model, nncf.Dataset(items), subset_size=len(items), **recipe(manifest, model))
    assert count_quantizers(quantized) > 20  # the backbone is quantized
    for op in quantized.get_ordered_ops():
        if op.get_type_name() != "FakeQuantize":
            continue
        feeds = {t.get_node().get_friendly_name() for t in op.output(0).get_target_inputs()}
        assert not feeds & front, (op.get_friendly_name(), feeds & front)


def test_a_boundary_the_graph_lacks_is_exit_2_naming_the_field(yamnet_ir, tmp_path):
    import shutil

    import yaml

    catalog = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, catalog)
    path = catalog / "yamnet.yaml"
    data = yaml.safe_load(path.read_text())
    data["quantize"]["front_end"] = {"boundary": ["log_mel_spectrum"]}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = yamnet_ir.parents[2]
    result = run_zoo(
        "quantize", "--name", "yamnet", "--manifests", str(catalog), "-o", str(out), "--subset-size", "4"
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "quantize.front_end.boundary" in result.stderr and "'log_mel_spectrum'" in result.stderr
    assert "log_mel_spectrogram" in result.stderr  # the similar name it has
    assert "Traceback" not in result.stderr
    assert not (out / "yamnet" / "INT8").exists()


def test_the_same_front_end_in_the_onnx_export(yamnet_ir):
    """The QDQ ONNX path walks the ONNX graph from the same boundary tensor."""
    import onnx

    from zoo.manifest import load_manifest
    from zoo.quantize.scope import ignored_scope, onnx_front_end_nodes

    manifest = load_manifest(MANIFESTS / "yamnet.yaml")
    model = onnx.load(str(yamnet_ir.parents[1] / "onnx" / "yamnet.onnx"))
    found = onnx_front_end_nodes(model, manifest)
    kinds = {n.op_type for n in model.graph.node if n.name in found}
    assert {"MatMul", "Log"} <= kinds and "Conv" not in kinds
    producer = {o: n.name for n in model.graph.node for o in n.output}
    assert producer["log_mel_spectrogram"] in found
    assert set(found) <= set(ignored_scope(manifest, model, onnx=True).names)


def test_edge_layers_kept_in_float_by_position(yamnet_ir):
    """quantize.float_first_layers / float_last_layers count weighted layers after the front end."""
    import nncf
    import openvino as ov

    from converters.spectral import FOLDED_TAG
    from zoo.manifest import load_manifest
    from zoo.quantize.nncf_run import quantized_ops, recipe
    from zoo.quantize.scope import edge_layers

    manifest = load_manifest(MANIFESTS / "yamnet.yaml")
    model = ov.Core().read_model(str(yamnet_ir))
    settings = manifest.quantize.model_copy(update={"float_first_layers": 2, "float_last_layers": 1})
    edged = manifest.model_copy(update={"quantize": settings})
    found = edge_layers(model, edged)
    weighted = [
        op
        for op in model.get_ordered_ops()
        if op.get_type_name() in ("Convolution", "GroupConvolution", "MatMul")
        and not op.get_friendly_name().endswith(FOLDED_TAG)
        and "log_mel_features" not in op.get_friendly_name()
    ]
    # the first convolution, the first depthwise one, and the classifier's MatMul
    assert found == [
        weighted[0].get_friendly_name(),
        weighted[1].get_friendly_name(),
        "yamnet_frames/logits/MatMul",
    ]
    assert [op.get_type_name() for op in weighted[:2]] == ["Convolution", "GroupConvolution"]
    rng = np.random.RandomState(0)
    items = [{"waveform": (0.1 * rng.standard_normal(15600)).astype(np.float32)} for _ in range(4)]
    quantized = nncf.quantize(model, nncf.Dataset(items), subset_size=len(items), **recipe(edged, model))
    fed = quantized_ops(quantized)
    assert not fed & set(found), fed & set(found)
    assert weighted[2].get_friendly_name() in fed  # the layers after them are quantized


def test_the_same_edge_layers_in_the_onnx_export(yamnet_ir):
    import onnx

    from zoo.manifest import load_manifest
    from zoo.quantize.scope import ignored_scope, onnx_edge_layers

    manifest = load_manifest(MANIFESTS / "yamnet.yaml")
    settings = manifest.quantize.model_copy(update={"float_first_layers": 1, "float_last_layers": 1})
    edged = manifest.model_copy(update={"quantize": settings})
    model = onnx.load(str(yamnet_ir.parents[1] / "onnx" / "yamnet.onnx"))
    found = onnx_edge_layers(model, edged)
    kinds = {n.name: n.op_type for n in model.graph.node}
    assert len(found) == 2 and kinds[found[0]] == "Conv" and kinds[found[1]] in ("MatMul", "Gemm"), found
    assert set(found) <= set(ignored_scope(edged, model, onnx=True).names)
