"""Rebuilt networks: parameter counts from MODELS.md exactly, output shapes, AclNet's layer table."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from converters.networks import build, network_class, parameter_count
from converters.networks.aclnet import (
    AclNet,
    export_onnx_bytes,
    fold_batchnorm,
    folded_parameter_count,
    layer_shapes,
)
from converters.networks.kahl_aed import LasagneBatchNorm
from zoo.catalog import Catalog
from zoo.errors import UsageError

#: published parameter counts (MODELS.md); counted as trainable parameters of the rebuild
PUBLISHED = [
    ("dcase2018", "vggish", {}, 4_707_177),
    ("dcase2018", "baseline_cnn", {}, 4_325_353),
    ("audioset_attention", "decision_level_single_attention", {}, 3_314_974),
    ("audioset_attention", "decision_level_multi_attention", {}, 3_870_959),
    ("audioset_attention", "feature_level_attention", {}, 4_876_047),
    ("kahl_aed", None, {"num_classes": 20}, 23_456_724),
    ("silero_vad", None, {}, 243_585),
]

#: AclNet's layer table (MODELS.md): output C x H x W at L = 16000
ACLNET_TABLE = [
    ("low_level.conv1", (64, 1, 1000)),
    ("low_level.conv2", (128, 1, 500)),
    ("low_level.pool", (128, 1, 100)),
    ("transpose", (1, 128, 100)),
    ("high_level.conv3", (1, 128, 100)),
    ("high_level.conv4", (64, 130, 102)),
    ("high_level.pool4", (64, 65, 51)),
    ("high_level.sep5a", (128, 67, 53)),
    ("high_level.sep5b", (128, 69, 55)),
    ("high_level.pool5", (128, 34, 27)),
    ("high_level.sep6a", (256, 36, 29)),
    ("high_level.sep6b", (256, 38, 31)),
    ("high_level.pool6", (256, 19, 15)),
    ("high_level.sep7a", (512, 21, 17)),
    ("high_level.sep7b", (512, 23, 19)),
    ("high_level.pool7", (512, 11, 9)),
    ("high_level.sep8a", (1024, 13, 11)),
    ("high_level.sep8b", (1024, 15, 13)),
    ("high_level.pool8", (1024, 7, 6)),
    ("conv_out", (512, 7, 6)),
]

ENTRIES = [
    "aclnet",
    "dcase2018-task2-vggish",
    "dcase2018-task2-baseline-cnn",
    "audioset-attention-single",
    "audioset-attention-multi",
    "audioset-attention-feature",
    "kahl-aed",
    "silero-vad",
]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


@pytest.mark.parametrize(("name", "variant", "args", "expected"), PUBLISHED)
def test_parameter_counts_match_published(name, variant, args, expected):
    assert parameter_count(network_class(name, variant)(**args)) == expected


def test_kahl_bn_statistics_add_6016_values():
    model = network_class("kahl_aed")(num_classes=20)
    stats = sum(
        m.mean.numel() + m.inv_std.numel() for m in model.modules() if isinstance(m, LasagneBatchNorm)
    )
    assert stats == 6016


def test_aclnet_count_with_batch_norm_folded():
    """Published 2,716,991 counts each conv's weight plus one bias per output channel (BN folded in);
    the trainable model (conv without bias + BN gamma/beta) has 2,723,968."""
    model = AclNet(53).eval()
    assert parameter_count(model) == 2_723_968
    assert folded_parameter_count(model) == 2_716_991


def test_aclnet_fold_keeps_outputs():
    model = randomised_aclnet()
    x = torch.randn(2, 1, 1, 16000)
    with torch.no_grad():
        np.testing.assert_allclose(fold_batchnorm(model)(x).numpy(), model(x).numpy(), atol=1e-6)


def test_aclnet_layer_table():
    assert layer_shapes(AclNet(53).eval()) == ACLNET_TABLE


def randomised_aclnet() -> AclNet:
    """AclNet with non-trivial batch norms (untrained ones fold to identical biases, which export dedups)."""
    torch.manual_seed(0)
    model = AclNet(53).eval()
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.1, 0.1)
    return model


def test_aclnet_onnx_export_holds_exactly_the_published_parameters():
    data = export_onnx_bytes(fold_batchnorm(randomised_aclnet()), "input", "output")
    model = onnx.load_from_string(data)
    weights = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert weights == 2_716_991
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Conv") == 21 and "BatchNormalization" not in ops
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == [
        "output"
    ]


@pytest.mark.parametrize("entry", ENTRIES)
def test_manifest_network_builds_with_the_declared_interface(catalog, entry):
    manifest = catalog.get(entry)
    model = build(manifest.network)
    counted = folded_parameter_count(model) if entry == "aclnet" else parameter_count(model)
    assert counted == manifest.parameters
    inputs = [torch.zeros(spec.shape) for spec in manifest.inputs]
    inputs[0] = torch.randn(manifest.inputs[0].shape) * 0.5
    with torch.no_grad():
        out = model(*inputs)
    out = out if isinstance(out, tuple) else (out,)
    assert [tuple(o.shape) for o in out] == [tuple(spec.shape) for spec in manifest.outputs]
    main = out[0]
    kind = manifest.outputs[0].kind
    if kind == "log-probabilities":
        np.testing.assert_allclose(main.exp().sum(dim=-1).numpy(), 1.0, rtol=1e-5)
    elif kind == "probabilities":
        assert float(main.min()) >= 0.0 and float(main.max()) <= 1.0
        if entry in ("aclnet", "kahl-aed"):  # softmax heads
            np.testing.assert_allclose(main.sum(dim=-1).numpy(), 1.0, rtol=1e-5)


def test_build_refuses_unknown_args_and_variants():
    from zoo.manifest import Network

    with pytest.raises(UsageError, match="network.args: hidden_layers"):
        build(Network(name="dcase2018", variant="vggish", args={"hidden_layers": 3}))
    with pytest.raises(UsageError, match="network.variant"):
        build(Network(name="dcase2018", variant="resnet", args={}))
    with pytest.raises(UsageError, match="network.name"):
        build(Network(name="yamnet_torch", args={}))


def test_kahl_multi_label_head_is_sigmoid():
    model = network_class("kahl_aed")(num_classes=5, multi_label=True).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, 256, 512))
    assert out.shape == (1, 5) and abs(float(out.sum()) - 1.0) > 1e-3


def test_lasagne_batch_norm_formula():
    layer = LasagneBatchNorm(3)
    rng = np.random.RandomState(0)
    mean, inv_std, gamma, beta = (rng.uniform(0.5, 2, 3).astype(np.float32) for _ in range(4))
    with torch.no_grad():
        layer.mean.copy_(torch.from_numpy(mean))
        layer.inv_std.copy_(torch.from_numpy(inv_std))
        layer.gamma.copy_(torch.from_numpy(gamma))
        layer.beta.copy_(torch.from_numpy(beta))
        x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
        got = layer(torch.from_numpy(x)).numpy()
    shape = (1, 3, 1, 1)
    expected = (x - mean.reshape(shape)) * (gamma * inv_std).reshape(shape) + beta.reshape(shape)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_attention_weights_keep_their_relative_accuracy_in_the_onnx_export(tmp_path):
    """The single-attention head divides sigmoid weights by their sum, so tiny weights need relative
    accuracy; the export writes the sigmoid so ONNX Runtime keeps it (its Sigmoid op does not).

    Logits from -20 to -10 (weights 2e-9 to 4.5e-5, the clamp at 1e-7 in between): the exported
    head must match PyTorch within float32 rounding of a 10-term normalised sum, 1e-5 relative.
    """
    import onnxruntime as ort

    from converters.networks.audioset_attention import Attention

    torch.manual_seed(0)
    block = Attention(4, 3, att_activation="sigmoid", cla_activation="sigmoid").eval()
    with torch.no_grad():  # attention logits = the first input channel, over the region in question
        block.att.weight.zero_()
        block.att.bias.zero_()
        block.att.weight[:, 0, 0, 0] = 1.0
    x = torch.zeros(1, 4, 10, 1)
    x[0, 0, :, 0] = torch.linspace(-20.0, -10.0, 10)
    x[0, 1:, :, 0] = torch.randn(3, 10)
    path = tmp_path / "attention.onnx"
    torch.onnx.export(
        block, (x,), str(path), input_names=["x"], output_names=["y"], opset_version=17, dynamo=False
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    exported = session.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        expected = block.double()(x.double()).numpy()
    np.testing.assert_allclose(exported, expected, rtol=1e-5, atol=0)
