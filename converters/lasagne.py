"""Framework `lasagne`: Kahl's AcousticEventDetection pickle (Theano/Lasagne, Python 2), rebuilt in PyTorch.

The published file is a Python 2 pickle of {net, classes, run_name, epoch, im_size, im_dim} whose
`net` holds the Lasagne parameter arrays in layer order (lasagne.layers.get_all_param_values). It is
read with zoo.safe_pickle (numpy arrays and plain containers only: a pickle that names any other
callable is refused before anything runs) and mapped onto converters/networks/kahl_aed.py:

- Conv2DLayer W (out, in, h, w): Lasagne convolves (flip_filters=True), torch correlates, so the
  kernel is flipped in both spatial axes;
- DenseLayer W (inputs, units) is the transpose of torch's Linear weight;
- BatchNormLayer keeps beta, gamma, mean, inv_std; the rebuild uses them as they are.

Theano cannot run here, so the reference for verification is this PyTorch rebuild; the
converter extends converters/pytorch.py's, whose exporter it reuses.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from converters.pytorch import TorchConverter, TorchSource, TorchSourceModel, build_network, seeded_network
from zoo.errors import UsageError, ZooError
from zoo.plugins import register_converter, weights_path

if TYPE_CHECKING:
    from zoo.manifest import Manifest

#: keys of the upstream pickle
PICKLE_KEYS = ("net", "classes", "run_name", "epoch", "im_size", "im_dim")
BN_PARAMS = ("beta", "gamma", "mean", "inv_std")


def parameter_layout(module: Any) -> list[tuple[str, str, tuple[int, ...]]]:
    """(torch state-dict key, how to map, Lasagne array shape) in Lasagne's parameter order."""
    state = module.state_dict()
    layout: list[tuple[str, str, tuple[int, ...]]] = []

    def bn(prefix: str) -> None:
        for param in BN_PARAMS:
            key = f"{prefix}.{param}"
            layout.append((key, "same", tuple(state[key].shape)))

    for index, (name, *_rest) in enumerate(module.CONVS, start=1):
        layout.append((f"{name}.weight", "flip", tuple(state[f"{name}.weight"].shape)))
        bn(f"bn{index}")
    for dense, norm in (("fc1", "bn6"), ("fc2", "bn7")):
        out_f, in_f = state[f"{dense}.weight"].shape
        layout.append((f"{dense}.weight", "transpose", (in_f, out_f)))
        bn(norm)
    out_f, in_f = state["fc3.weight"].shape
    layout.append(("fc3.weight", "transpose", (in_f, out_f)))
    layout.append(("fc3.bias", "same", (out_f,)))
    return layout


def to_torch(kind: str, array: np.ndarray) -> np.ndarray:
    if kind == "flip":
        return np.ascontiguousarray(array[:, :, ::-1, ::-1])
    if kind == "transpose":
        return np.ascontiguousarray(array.T)
    return np.ascontiguousarray(array)


def to_lasagne(kind: str, array: np.ndarray) -> np.ndarray:
    return to_torch(kind, array)  # flip and transpose are their own inverses


def _text(value: Any) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def read_pickle(path: Path, manifest: Manifest) -> dict[str, Any]:
    """The upstream pickle's content, checked: parameter arrays, classes, image size."""
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
    net = data["net"]
    if not isinstance(net, list | tuple) or not all(isinstance(a, np.ndarray) for a in net):
        raise UsageError(
            f"{path}: field net: expected the Lasagne parameter arrays in layer order (a list of numpy arrays), "
            f"found {type(net).__name__}."
        )
    data["classes"] = [_text(c) for c in data["classes"]]
    expected_classes = manifest.num_classes
    if expected_classes is not None and len(data["classes"]) != expected_classes:
        raise UsageError(
            f"{path}: field classes has {len(data['classes'])} names, but {manifest.path or manifest.name} "
            f"(outputs[0].shape) expects {expected_classes}."
        )
    spec = manifest.inputs[0]
    if "im_size" in data and isinstance(spec.shape[-1], int):
        width, height = (int(v) for v in data["im_size"])
        if (height, width) != (spec.shape[-2], spec.shape[-1]):
            raise UsageError(
                f"{path}: field im_size is {width} x {height} (width x height), but the manifest's input "
                f"{spec.name!r} is {spec.shape}."
            )
    return data


def lasagne_to_state_dict(module: Any, arrays: list[np.ndarray], origin: Path | str) -> dict[str, Any]:
    """Map Lasagne arrays (in order) to the rebuild's state dict; count and shapes must match."""
    import torch

    layout = parameter_layout(module)
    if len(arrays) != len(layout):
        raise UsageError(
            f"{origin}: field net has {len(arrays)} parameter arrays, the AED network needs {len(layout)} "
            "(conv W + BN beta/gamma/mean/inv_std for 5 convs and 2 dense layers, then dense W and b)."
        )
    state = {}
    for index, ((key, kind, shape), array) in enumerate(zip(layout, arrays, strict=True)):
        if tuple(array.shape) != shape:
            raise UsageError(
                f"{origin}: field net[{index}] ({key}) has shape {tuple(array.shape)}, expected {shape}."
            )
        state[key] = torch.from_numpy(to_torch(kind, np.asarray(array, dtype=np.float32)))
    return state


def state_dict_to_lasagne(module: Any) -> list[np.ndarray]:
    """The rebuild's parameters as Lasagne would list them (get_all_param_values order, float32)."""
    state = module.state_dict()
    return [
        to_lasagne(kind, state[key].detach().numpy().astype(np.float32))
        for key, kind, _shape in parameter_layout(module)
    ]


class LasagneSourceModel(TorchSourceModel):
    """The PyTorch rebuild with Kahl's weights, and the class names the pickle carries."""

    def __init__(self, module: Any, manifest: Manifest, classes: list[str]):
        super().__init__(module, manifest)
        self.classes = classes


# -- reference weights ----------------------------------------------------------------------


class Python2Pickler(pickle._Pickler):
    """Protocol 2 written as Python 2 wrote it: byte strings as STRING opcodes, numpy.core names.

    Python 3 pickles `str` as unicode and `bytes` through _codecs.encode, and numpy 2 names its
    reconstructor numpy._core; a Python 2 pickle has neither. Readers decode with encoding='latin1'.
    """

    # typeshed types _Pickler.dispatch's handlers as taking an Unpickler and omits write and memoize
    dispatch: ClassVar[dict[type, Callable[[Any, Any], None]]] = dict(pickle._Pickler.dispatch)
    write: Callable[[bytes], None]
    memoize: Callable[[Any], None]

    def save_py2_string(self, obj: Any) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)
        self.memoize(obj)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", None)
        name = name or getattr(obj, "__qualname__", None) or obj.__name__
        if module and module.startswith("numpy._core"):
            module = "numpy.core" + module[len("numpy._core") :]
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii"))
        self.memoize(obj)


def python2_pickle(obj: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def reference_classes(count: int) -> list[str]:
    """The one class name upstream confirms ("schreien") and neutral placeholders, sorted as upstream sorts."""
    if count < 1:
        raise UsageError(f"a reference AED model needs at least one class, got {count}.")
    return sorted(["schreien"] + [f"class_{i:02d}" for i in range(1, count)])


@register_converter
class LasagneConverter(TorchConverter):
    """Kahl's Lasagne pickle on the PyTorch rebuild; export and threads as for PyTorch."""

    frameworks = ("lasagne",)

    def load(self, files: dict[str, Path], manifest: Manifest) -> TorchSource:
        """Kahl's pickle on the PyTorch rebuild; the SourceModel is that rebuild (Theano is not runnable)."""
        import torch

        path = weights_path(files, manifest)
        data = read_pickle(path, manifest)
        module = build_network(manifest)
        state = lasagne_to_state_dict(module, list(data["net"]), path)
        with torch.no_grad():
            module.load_state_dict(state, strict=True)
        return LasagneSourceModel(module, manifest, data["classes"])

    def write_reference_weights(
        self, manifest: Manifest, directory: str | Path, seed: int
    ) -> dict[str, Path]:
        """A seeded AED model as the upstream Python 2 pickle {net, classes, run_name, epoch, im_size, im_dim}."""
        from zoo.atomic import write_bytes

        module = seeded_network(manifest, seed, count=8)
        network_args = manifest.network.args if manifest.network is not None else {}
        spec = manifest.inputs[0]
        entry = next((f for f in manifest.files if f.role == "weights"), None)
        name = entry.name if entry is not None else "AED_Example_Run_model.pkl"
        content = {
            "net": state_dict_to_lasagne(module),
            "classes": reference_classes(manifest.num_classes or int(network_args.get("num_classes", 20))),
            "run_name": "Example_Run",
            "epoch": 55,
            "im_size": (int(spec.shape[-1]), int(spec.shape[-2])),
            "im_dim": int(spec.shape[1]),
        }
        path = Path(directory) / name
        try:
            write_bytes(path, python2_pickle(content))
        except pickle.PicklingError as exc:
            raise ZooError(f"{path}: could not write the reference pickle: {exc}") from exc
        return {name: path}
