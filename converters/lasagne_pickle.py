"""Write a Lasagne network as upstream's Python 2 `pickle.dump` wrote it, without Lasagne or Theano.

Upstream (AED_train.py) saves {'net': output layer, 'classes', 'run_name', 'epoch', 'im_size',
'im_dim'} with Python 2's default protocol 0. Here the layer graph is built from stand-in classes
whose module and class names are Lasagne's and Theano's, with the attributes those classes set in
their constructors (Layer: input_shape, input_layer, name, params, get_output_kwargs; the layer's
own hyperparameters; Theano shared variables with container.storage = [value]), and a dropout
layer's random streams carrying a small symbolic graph, as a training run leaves them. With
`gpu="cuda"` every value is a CudaNdarray as Theano's old GPU back end pickles it
(theano.sandbox.cuda.type.CudaNdarray_unpickler applied to the numpy array); with `gpu="gpuarray"`
as the new back end does (theano.gpuarray.type.GpuArray_unpickler(array, context name)).

Python2Pickler writes what Python 3 writes differently: byte strings (STRING, not unicode),
Python 2 module names (copy_reg, __builtin__, numpy.core), OrderedDict and set as Python 2 reduced them.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import io
import pickle
import types
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from converters.lasagne_graph import Network, Step

GPU_BACKENDS = (None, "cuda", "gpuarray")

_classes: dict[tuple[str, str], type] = {}
_functions: dict[tuple[str, str], Callable[..., Any]] = {}


def stand_in_class(module: str, name: str) -> type:
    """A class that pickles as `module.name` (never importable here, never run)."""
    key = (module, name)
    if key not in _classes:
        _classes[key] = type(name, (), {"__module__": module, "__qualname__": name})
    return _classes[key]


def stand_in_function(module: str, name: str) -> Callable[..., Any]:
    """A function that pickles as `module.name` (Lasagne's nonlinearities, Theano's conv2d)."""
    key = (module, name)
    if key not in _functions:

        def stand_in(*args: Any) -> Any:
            raise RuntimeError(f"{module}.{name} is a stand-in for pickling only")

        stand_in.__module__, stand_in.__qualname__, stand_in.__name__ = module, name, name
        _functions[key] = stand_in
    return _functions[key]


def instance(module: str, cls: str, /, **attrs: Any) -> Any:
    """An object of the stand-in class `module.cls` with these attributes."""
    kind = stand_in_class(module, cls)
    obj: Any = object.__new__(kind)
    obj.__dict__.update(attrs)
    return obj


class Py2OrderedDict:
    """collections.OrderedDict as Python 2 reduced it: (OrderedDict, ([[key, value], ...],))."""

    def __init__(self, items: list[tuple[Any, Any]]):
        self.items = items

    def __reduce__(self) -> tuple[Any, ...]:
        return (OrderedDict, ([[k, v] for k, v in self.items],))


class Py2Set:
    """set as Python 2 reduced it: (set, ([items],))."""

    def __init__(self, items: list[Any]):
        self.items = items

    def __reduce__(self) -> tuple[Any, ...]:
        return (set, (list(self.items),))


class GpuValue:
    """A device array as Theano's GPU back ends pickle one: (unpickler, (numpy array, ...))."""

    def __init__(self, array: np.ndarray, backend: str):
        self.array = array
        self.backend = backend

    def __reduce__(self) -> tuple[Any, ...]:
        if self.backend == "cuda":
            return (stand_in_function("theano.sandbox.cuda.type", "CudaNdarray_unpickler"), (self.array,))
        return (stand_in_function("theano.gpuarray.type", "GpuArray_unpickler"), (self.array, None))


class _Theano:
    """Theano variables and types for one pickle (auto names count up as Theano's do)."""

    def __init__(self, gpu: str | None):
        self.gpu = gpu
        self.count = 0

    def tag(self) -> Any:
        return instance("theano.gof.utils", "scratchpad", trace=[])

    def tensor_type(self, ndim: int, dtype: str = "float32") -> Any:
        return instance(
            "theano.tensor.type", "TensorType", dtype=dtype, broadcastable=(False,) * ndim, name=None,
            numpy_dtype=np.dtype(dtype), sparse_grad=False,
        )  # fmt: skip

    def variable(self, ndim: int, name: str | None, owner: Any = None, index: Any = None) -> Any:
        self.count += 1
        return instance(
            "theano.tensor.var", "TensorVariable", type=self.tensor_type(ndim), owner=owner, index=index,
            name=name, auto_name=f"auto_{self.count}", tag=self.tag(),
        )  # fmt: skip

    def shared(self, value: np.ndarray, name: str) -> Any:
        self.count += 1
        if self.gpu == "cuda" and value.dtype == np.float32:
            module, cls = "theano.sandbox.cuda.var", "CudaNdarraySharedVariable"
            kind = instance(
                "theano.sandbox.cuda.type", "CudaNdarrayType", broadcastable=(False,) * value.ndim, name=None
            )
            stored: Any = GpuValue(value, "cuda")
        elif self.gpu == "gpuarray" and value.dtype == np.float32:
            module, cls = "theano.gpuarray.type", "GpuArraySharedVariable"
            kind = instance(
                "theano.gpuarray.type", "GpuArrayType", dtype="float32", broadcastable=(False,) * value.ndim,
                name=None, context_name=None,
            )  # fmt: skip
            stored = GpuValue(value, "gpuarray")
        else:
            module, cls = "theano.tensor.sharedvar", "TensorSharedVariable"
            kind = self.tensor_type(value.ndim, str(value.dtype))
            stored = value
        container = instance(
            "theano.gof.link", "Container", type=kind, name=name, storage=[stored], readonly=False, strict=False,
            allow_downcast=None,
        )  # fmt: skip
        return instance(
            module, cls, container=container, type=kind, owner=None, index=None, name=name,
            auto_name=f"auto_{self.count}", tag=self.tag(),
        )  # fmt: skip

    def random_streams(self, seed: int, batch_input: Any) -> Any:
        """MRG_RandomStreams after one binomial draw: its state update is a small symbolic graph."""
        rstate = np.arange(1, 7, dtype=np.int32) * (seed % 1000 + 1)
        node_rstate = self.shared(np.tile(rstate, (4, 1)), name="")
        size = self.variable(1, None)
        op = instance(
            "theano.sandbox.rng_mrg",
            "mrg_uniform",
            output_type=self.tensor_type(2),
            inplace=True,
            warned=False,
        )
        apply = instance(
            "theano.gof.graph", "Apply", op=op, inputs=[node_rstate, size], outputs=[], tag=self.tag()
        )
        new_rstate = self.variable(2, None, owner=apply, index=0)
        sample = self.variable(2, None, owner=apply, index=1)
        apply.outputs.extend([new_rstate, sample])
        node_rstate.default_update = new_rstate
        size.owner = instance(
            "theano.gof.graph",
            "Apply",
            op=instance("theano.tensor.basic", "Shape"),
            inputs=[batch_input],
            outputs=[size],
            tag=self.tag(),
        )
        return instance(
            "theano.sandbox.rng_mrg", "MRG_RandomStreams", rstate=rstate, state_updates=[(node_rstate, new_rstate, size, None)],
            default_instance_seed=seed,
        )  # fmt: skip


def _nonlinearity(name: str, arg: float | None) -> Any:
    if name == "leaky_rectify":
        return instance("lasagne.nonlinearities", "LeakyRectify", leakiness=arg)
    return stand_in_function("lasagne.nonlinearities", name)  # identity is the function `linear`


def _params(entries: list[tuple[Any, list[str]]]) -> Py2OrderedDict:
    return Py2OrderedDict([(var, Py2Set(tags)) for var, tags in entries])


def layer_graph(network: Network, gpu: str | None = None, seed: int = 0) -> Any:
    """The output layer object of *network* (steps with arrays and in_shape), as Lasagne builds it."""
    theano = _Theano(gpu)
    input_var = theano.variable(len(network.input_shape), "inputs")
    layer = instance(
        "lasagne.layers.input", "InputLayer", shape=tuple(network.input_shape), input_var=input_var, name=None,
        params=Py2OrderedDict([]),
    )  # fmt: skip
    for number, step in enumerate(network.steps):
        base = {
            "input_shape": (None, *step.in_shape),
            "input_layer": layer,
            "name": step.name,
            "get_output_kwargs": [],
        }
        layer = _layer(theano, step, base, seed + number, input_var)
    return layer


def _layer(theano: _Theano, step: Step, base: dict[str, Any], seed: int, input_var: Any) -> Any:
    p, arrays = step.params, step.arrays
    shared = {key: theano.shared(value, key) for key, value in arrays.items()}
    module, _, cls = step.layer.rpartition(".")
    if step.kind == "conv":
        same = all(k % 2 == 1 and pd == k // 2 for k, pd in zip(p["kernel"], p["padding"], strict=True))
        return instance(
            module, cls, **base, params=_params([(shared["W"], ["trainable", "regularizable"])] + ([(shared["b"], ["trainable"])] if "b" in shared else [])),
            nonlinearity=_nonlinearity(p["activation"], p["activation_arg"]), n=2, num_filters=p["out_channels"],
            filter_size=tuple(p["kernel"]), flip_filters=p["flip_filters"], stride=tuple(p["stride"]), untie_biases=False,
            pad="same" if same else tuple(p["padding"]), W=shared["W"], b=shared.get("b"),
            convolution=stand_in_function("theano.tensor.nnet", "conv2d"),
        )  # fmt: skip
    if step.kind == "batchnorm":
        tags = {"beta": ["trainable"], "gamma": ["trainable", "regularizable"], "mean": [], "inv_std": []}
        ndim = len(step.in_shape) + 1
        return instance(
            module, cls, **base, params=_params([(shared[k], tags[k]) for k in tags if k in shared]),
            axes=(0, *range(2, ndim)), epsilon=p["epsilon"], alpha=0.1,
            **{k: shared.get(k) for k in ("beta", "gamma", "mean", "inv_std")},
        )  # fmt: skip
    if step.kind == "pool":
        return instance(
            module, cls, **base, params=Py2OrderedDict([]), pool_size=tuple(p["size"]), stride=tuple(p["stride"]),
            pad=tuple(p["padding"]), ignore_border=True, mode=p["mode"],
        )  # fmt: skip
    if step.kind == "dense":
        return instance(
            module, cls, **base, params=_params([(shared["W"], ["trainable", "regularizable"])] + ([(shared["b"], ["trainable"])] if "b" in shared else [])),
            nonlinearity=_nonlinearity(p["activation"], p["activation_arg"]), num_units=p["out_features"],
            num_leading_axes=1, W=shared["W"], b=shared.get("b"),
        )  # fmt: skip
    if step.kind == "dropout":
        return instance(
            module, cls, **base, params=Py2OrderedDict([]), p=p["p"], rescale=True, shared_axes=(),
            _srng=theano.random_streams(seed, input_var),
        )  # fmt: skip
    return instance(
        module,
        cls,
        **base,
        params=Py2OrderedDict([]),
        nonlinearity=_nonlinearity(p["activation"], p["activation_arg"]),
    )


class Python2Pickler(pickle._Pickler):
    """Pickles as Python 2 wrote them: byte strings as STRING opcodes, Python 2 module names."""

    # typeshed types _Pickler.dispatch's handlers as taking an Unpickler and omits write and memoize
    dispatch: ClassVar[dict[type, Callable[[Any, Any], None]]] = dict(pickle._Pickler.dispatch)
    write: Callable[[bytes], None]
    memoize: Callable[[Any], None]
    proto: int

    def save_py2_string(self, obj: Any) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if self.proto == 0:  # S'...' with Python 2's escapes
            self.write(pickle.STRING + b"'" + codecs.escape_encode(data)[0] + b"'\n")
        elif len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)
        self.memoize(obj)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", None) or "__main__"
        name = name or getattr(obj, "__qualname__", None) or obj.__name__
        if module.startswith("numpy._core"):
            module = "numpy.core" + module[len("numpy._core") :]
        if (module, name) in _compat_pickle.REVERSE_NAME_MAPPING:
            module, name = _compat_pickle.REVERSE_NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.REVERSE_IMPORT_MAPPING:
            module = _compat_pickle.REVERSE_IMPORT_MAPPING[module]
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii"))
        self.memoize(obj)

    dispatch[types.FunctionType] = save_global


def python2_pickle(obj: Any, protocol: int = 0) -> bytes:
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=protocol).dump(obj)
    return buffer.getvalue()


def upstream_pickle(network: Network, classes: list[str], im_size: tuple[int, int], im_dim: int,
                    gpu: str | None = None, run_name: str = "Example_Run", epoch: int = 55) -> bytes:  # fmt: skip
    """AED_train.py's saveModel: {'net', 'classes', 'run_name', 'epoch', 'im_size', 'im_dim'}, protocol 0."""
    if gpu not in GPU_BACKENDS:
        raise ValueError(f"gpu must be one of {GPU_BACKENDS}, got {gpu!r}")
    data = {
        "net": layer_graph(network, gpu),
        "classes": list(classes),
        "run_name": run_name,
        "epoch": epoch,
        "im_size": tuple(im_size),
        "im_dim": im_dim,
    }
    return python2_pickle(data, protocol=0)
