"""Framework `lasagne`: Kahl's AcousticEventDetection pickle (Theano/Lasagne, Python 2), rebuilt in PyTorch.

Upstream's AED_train.py pickles {'net': the Lasagne output layer object, 'classes', 'run_name',
'epoch', 'im_size', 'im_dim'} with Python 2's protocol 0, so the file holds the whole layer graph.
It is read by zoo.safe_pickle (every class becomes an inert record; nothing the file names is
imported or run), described from its own graph by converters/lasagne_graph.py, rebuilt by
converters/lasagne_torch.py and exported like any PyTorch model (Theano cannot run here, so that
rebuild is the reference verify compares to).

The manifest's network (converters/networks/kahl_aed.py, upstream's buildModel) is a cross-check:
a pickle whose graph differs is converted from its own description and the difference is reported.
`classes` gives the labels; `im_size` and `im_dim` must match the manifest's input.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from converters.lasagne_graph import Network, Step, describe, output_shape, with_shapes
from converters.pytorch import TorchConverter, TorchSource, TorchSourceModel, calibration_batch
from zoo.errors import UsageError
from zoo.plugins import register_converter, weights_path

if TYPE_CHECKING:
    from zoo.manifest import Manifest

#: keys of the upstream pickle
PICKLE_KEYS = ("net", "classes", "run_name", "epoch", "im_size", "im_dim")
#: which GPU back end the reference weights imitate (upstream trained on a GPU; see lasagne_pickle.py)
REFERENCE_GPU = "cuda"
_REPORTED: set[str] = set()


def _text(value: Any) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def read_pickle(path: Path, manifest: Manifest) -> dict[str, Any]:
    """The upstream pickle's content, checked against the manifest: classes, image size and depth."""
    from zoo.safe_pickle import safe_load_file

    data = safe_load_file(path)
    if not isinstance(data, dict):
        raise UsageError(
            f"{path}: expected a dict with keys {', '.join(PICKLE_KEYS)}, found {type(data).__name__}."
        )
    data = {_text(k): v for k, v in data.items()}
    missing = [k for k in ("net", "classes") if k not in data]
    if missing:
        raise UsageError(
            f"{path}: the pickle lacks {', '.join(missing)} (an AED model pickle has {', '.join(PICKLE_KEYS)})."
        )
    if not isinstance(data["classes"], list | tuple) or not all(
        isinstance(c, str | bytes) for c in data["classes"]
    ):
        raise UsageError(f"{path}: field classes: expected a list of class names.")
    data["classes"] = [_text(c) for c in data["classes"]]
    expected_classes = manifest.num_classes
    if expected_classes is not None and len(data["classes"]) != expected_classes:
        raise UsageError(
            f"{path}: field classes has {len(data['classes'])} names, but {manifest.path or manifest.name} "
            f"(outputs[0].shape) expects {expected_classes}."
        )
    shape = manifest.inputs[0].shape
    if "im_size" in data:
        size = data["im_size"]
        if not (isinstance(size, tuple | list) and len(size) == 2):
            raise UsageError(f"{path}: field im_size is {size!r}, expected (width, height).")
        if (int(size[1]), int(size[0])) != tuple(shape[-2:]):
            raise UsageError(
                f"{path}: field im_size is {size[0]} x {size[1]} (width x height), but the manifest's input "
                f"{manifest.inputs[0].name!r} is {shape}."
            )
    if "im_dim" in data and data["im_dim"] != shape[1]:
        raise UsageError(
            f"{path}: field im_dim is {data['im_dim']!r} (image channels), but the manifest's input "
            f"{manifest.inputs[0].name!r} has {shape[1]} channel(s) ({shape})."
        )
    return data


def manifest_network(
    manifest: Manifest, convs: tuple[tuple[str, int, int, int, int], ...] | None = None
) -> Network:
    """The manifest's network (upstream's buildModel) as a description without arrays yet.

    Every conv and hidden dense layer wrapped in batch_norm (no bias, identity nonlinearity, then
    BatchNormLayer and a rectify NonlinearityLayer), 2x2 max-pool after each conv, dropout 0.5.
    """
    from converters.networks.kahl_aed import LASAGNE_BN_EPS, KahlAED

    args = manifest.network.args if manifest.network is not None else {}
    classes = int(args.get("num_classes", manifest.num_classes or 20))
    head = "sigmoid" if args.get("multi_label") else "softmax"
    shape = manifest.inputs[0].shape
    steps: list[Step] = []

    def zeros(*dims: int) -> np.ndarray:
        return np.zeros(dims, dtype=np.float32)

    def batch_norm(features: int) -> None:
        arrays = {
            "beta": zeros(features),
            "gamma": zeros(features),
            "mean": zeros(features),
            "inv_std": zeros(features),
        }
        steps.append(
            Step(
                "batchnorm",
                "lasagne.layers.normalization.BatchNormLayer",
                None,
                {"features": features, "epsilon": LASAGNE_BN_EPS},
                arrays,
            )
        )
        steps.append(
            Step(
                "activation",
                "lasagne.layers.special.NonlinearityLayer",
                None,
                {"activation": "rectify", "activation_arg": None},
            )
        )

    channels = int(shape[1])
    for _name, _cin, cout, kernel, stride in convs or KahlAED.CONVS:
        params = {
            "in_channels": channels, "out_channels": cout, "kernel": (kernel, kernel), "stride": (stride, stride),
            "padding": (kernel // 2, kernel // 2), "dilation": (1, 1), "flip_filters": True, "activation": "linear",
            "activation_arg": None,
        }  # fmt: skip
        steps.append(
            Step(
                "conv",
                "lasagne.layers.conv.Conv2DLayer",
                None,
                params,
                {"W": zeros(cout, channels, kernel, kernel)},
            )
        )
        batch_norm(cout)
        steps.append(
            Step(
                "pool",
                "lasagne.layers.pool.MaxPool2DLayer",
                None,
                {"mode": "max", "size": (2, 2), "stride": (2, 2), "padding": (0, 0)},
            )
        )
        channels = cout
    network = with_shapes(Network((None, *(int(d) for d in shape[1:])), steps))
    features = int(np.prod(output_shape(steps[-1], steps[-1].in_shape)))
    for units, last in ((512, False), (512, False), (classes, True)):
        params = {"in_features": features, "out_features": units, "flatten": steps[-1].kind == "pool",
                  "activation": head if last else "linear", "activation_arg": None}  # fmt: skip
        arrays = {"W": zeros(features, units), **({"b": zeros(units)} if last else {})}
        steps.append(Step("dense", "lasagne.layers.dense.DenseLayer", None, params, arrays))
        if not last:
            batch_norm(units)
            steps.append(Step("dropout", "lasagne.layers.noise.DropoutLayer", None, {"p": 0.5}))
        features = units
    return with_shapes(network)


def cross_check(network: Network, manifest: Manifest, origin: str) -> list[str]:
    """Differences between the pickle's graph and the manifest's network (empty when they agree)."""
    expected = manifest_network(manifest)
    label = manifest.network.name if manifest.network is not None else "none"
    ours = [(s.kind, {k: v for k, v in s.params.items() if k != "flatten"}) for s in network.steps]
    theirs = [(s.kind, {k: v for k, v in s.params.items() if k != "flatten"}) for s in expected.steps]
    if ours == theirs and network.input_shape == expected.input_shape:
        return []
    index = next(
        (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), min(len(ours), len(theirs))
    )
    pickled = network.steps[index].summary() if index < len(network.steps) else "the end of the network"
    listed = expected.steps[index].summary() if index < len(expected.steps) else "the end of the network"
    count = {
        n: sum(s.kind == "conv" for s in net.steps)
        for n, net in (("pickle", network), ("manifest", expected))
    }
    params = {
        n: sum(int(np.prod(shape)) for _k, shape in net.parameters())
        for n, net in (("pickle", network), ("manifest", expected))
    }
    return [
        f"{origin}: the pickle's network differs from the manifest's (network {label}): layer {index + 2} is "
        f"{pickled} in the pickle, {listed} in the manifest; {count['pickle']} convolutions "
        f"({count['manifest']} in the manifest), {params['pickle']:,} stored values ({params['manifest']:,}). "
        "Converted from the pickle's own description."
    ]


class LasagneSourceModel(TorchSourceModel):
    """The PyTorch rebuild of the pickled graph, the class names it carries, and what the cross-check found."""

    def __init__(
        self, module: Any, manifest: Manifest, classes: list[str], network: Network, notes: list[str]
    ):
        super().__init__(module, manifest)
        self.classes = classes
        self.network = network
        self.notes = notes


def reference_classes(count: int) -> list[str]:
    """The one class name upstream confirms ("schreien") and neutral placeholders, sorted as upstream sorts."""
    if count < 1:
        raise UsageError(f"a reference AED model needs at least one class, got {count}.")
    return sorted(["schreien"] + [f"class_{i:02d}" for i in range(1, count)])


def seeded_pickle(
    manifest: Manifest, seed: int, network: Network | None = None, gpu: str | None = REFERENCE_GPU
) -> bytes:
    """A seeded network (the manifest's unless *network* is given) as upstream's pickle."""
    from converters.lasagne_pickle import upstream_pickle
    from converters.lasagne_torch import LasagneNet, store_arrays
    from converters.networks.seeding import calibrate_batchnorm, scale_final_layer, seeded_init

    network = network or manifest_network(manifest)
    module = LasagneNet(network)
    seeded_init(module, seed)
    batch = calibration_batch(manifest, 8, seed + 1)
    calibrate_batchnorm(module, batch)
    scale_final_layer(module, module.final_layer, batch, target_mean=-4.0 if module.multi_label else None)
    store_arrays(module.eval(), network)
    shape = manifest.inputs[0].shape
    classes = reference_classes(manifest.num_classes or int(network.steps[-1].params["out_features"]))
    return upstream_pickle(network, classes, (int(shape[-1]), int(shape[-2])), int(shape[1]), gpu=gpu)


@register_converter
class LasagneConverter(TorchConverter):
    """Kahl's Lasagne pickle on a PyTorch rebuild of its own graph; export and threads as for PyTorch."""

    frameworks = ("lasagne",)

    def load(self, files: dict[str, Path], manifest: Manifest) -> TorchSource:
        """The pickled graph rebuilt in PyTorch (Theano is not runnable); a differing graph is reported."""
        from converters.lasagne_torch import build

        path = weights_path(files, manifest)
        data = read_pickle(path, manifest)
        network = describe(data["net"], str(path))
        expected = tuple(manifest.inputs[0].shape[1:])
        if tuple(network.input_shape[1:]) != expected:
            raise UsageError(
                f"{path}: field net: the InputLayer takes {network.input_shape}, but the manifest's input "
                f"{manifest.inputs[0].name!r} is {manifest.inputs[0].shape}."
            )
        units = network.steps[-1].params.get("out_features") if network.steps else None
        if units != len(data["classes"]):
            raise UsageError(
                f"{path}: field net: the output layer has {units} units but field classes names {len(data['classes'])}."
            )
        notes = cross_check(network, manifest, str(path))
        for note in notes:
            if note not in _REPORTED:  # once per process, however often the stages load the model
                _REPORTED.add(note)
                sys.stderr.write(f"zoo: warning: {note}\n")
        return LasagneSourceModel(build(network), manifest, data["classes"], network, notes)

    def write_reference_weights(
        self, manifest: Manifest, directory: str | Path, seed: int
    ) -> dict[str, Path]:
        """A seeded AED model as upstream's protocol-0 pickle of the whole layer graph (CudaNdarray values)."""
        from zoo.atomic import write_bytes

        entry = next((f for f in manifest.files if f.role == "weights"), None)
        name = entry.name if entry is not None else "AED_Example_Run_model.pkl"
        path = Path(directory) / name
        write_bytes(path, seeded_pickle(manifest, seed))
        return {name: path}
