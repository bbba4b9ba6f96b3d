"""Read model pickles without running them: every class a pickle names becomes an inert record.

A pickle can name any callable to run while loading. This reader never imports or calls what a
pickle names: a name on the allow-list resolves to a `Record` class made here (its instances keep
the arguments and the state the pickle gives them, nothing else), and numpy arrays, dtypes and
scalars are rebuilt by a short path that accepts numeric dtypes only. Any other name is refused
before anything happens, so a malicious file runs nothing.

The allow-list is what a pickled Lasagne network (Kahl's AED, Python 2, protocol 0) holds:
Lasagne's layer classes and nonlinearities, Theano's shared variables, types and graph objects
(a training run leaves symbolic graphs in dropout's random streams and in default updates; they
are kept as records and never interpreted), the unpicklers of Theano's two GPU back ends (mapped to
the numpy array they wrap), numpy, and a few harmless builtins. Python 2 module names are mapped
by the unpickler (copy_reg -> copyreg, __builtin__ -> builtins) before the allow-list is consulted.
"""

from __future__ import annotations

import io
import os
import pickle
from collections import OrderedDict
from collections.abc import Callable
from typing import IO, Any, ClassVar

import numpy as np

from zoo.errors import UsageError, ZooError


class UnsafePickleError(UsageError):
    """The pickle names a callable outside the allow-list (exit 2: the file is the problem)."""


class Record:
    """An inert stand-in for an object of a class the pickle names: its arguments and its state."""

    pickled_module: str = ""
    pickled_name: str = ""
    args: tuple[Any, ...]
    state: Any
    items: list[Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Record:
        record = super().__new__(cls)
        record.args = args
        record.state = None
        record.items = []
        return record

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Nothing runs: the arguments were kept by __new__."""

    def __setstate__(self, state: Any) -> None:
        self.state = state

    # a pickled subclass of list or dict fills itself through these
    def append(self, item: Any) -> None:
        self.items.append(item)

    def extend(self, items: Any) -> None:
        self.items.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))

    __hash__ = object.__hash__  # Theano variables are keys of Lasagne's `params` OrderedDict

    @property
    def attrs(self) -> dict[str, Any]:
        """The instance attributes the pickle stored (BUILD's dict, with any slot state merged)."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict | type(None)):
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            return merged
        return dict(state) if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f"<pickled {self.pickled_module}.{self.pickled_name}>"


_record_classes: dict[tuple[str, str], type[Record]] = {}


def record_class(module: str, name: str) -> type[Record]:
    """The one Record subclass standing for `module.name` (a class or a function of the pickle)."""
    key = (module, name)
    if key not in _record_classes:
        _record_classes[key] = type(
            name.replace(".", "_"), (Record,), {"pickled_module": module, "pickled_name": name}
        )
    return _record_classes[key]


def pickled_name(obj: Any) -> str | None:
    """`module.name` of a record or record class, else None."""
    if isinstance(obj, type) and issubclass(obj, Record) and obj is not Record:
        return f"{obj.pickled_module}.{obj.pickled_name}"
    if isinstance(obj, Record):
        return f"{obj.pickled_module}.{obj.pickled_name}"
    return None


# -- numpy, rebuilt without numpy's pickle hooks -------------------------------------------------

_NUMERIC_KINDS = "biufc"


def _numeric_dtype(spec: Any, origin: str) -> np.dtype:
    if not isinstance(spec, str | bytes):
        raise UnsafePickleError(
            f"{origin}: refused a numpy dtype made from {type(spec).__name__}; nothing was run."
        )
    try:
        # a copy, as numpy's own pickles ask: BUILD then sets its byte order
        dtype = np.dtype(spec.decode("latin1") if isinstance(spec, bytes) else spec, copy=True)
    except TypeError as exc:
        raise ZooError(f"{origin}: a numpy dtype {spec!r} in the pickle is not readable: {exc}.") from exc
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        raise UnsafePickleError(
            f"{origin}: refused numpy dtype {dtype.str!r}: only numeric arrays are read from a model pickle "
            "(object and structured arrays can carry code); nothing was run."
        )
    return dtype


#: builtin bases a pickled class may extend (its value is kept as the record's argument)
_BASES = (object, dict, list, tuple, set, frozenset, int, float, str, bytes)
#: numpy's scalar types by name: a Theano op may hold one (Cast's constructor); kept as records
_NUMPY_TYPES = {
    "bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
}  # fmt: skip


class _NdarrayMarker(Record):
    """numpy.ndarray as named by the pickle: only an argument of _reconstruct, never called."""

    pickled_module, pickled_name = "numpy", "ndarray"


def _safe_calls(origin: str) -> dict[tuple[str, str], Any]:
    """(module, name) -> the harmless callable that stands for it."""

    def reconstruct(cls: Any, shape: Any, typecode: Any) -> np.ndarray:
        if cls is not _NdarrayMarker:
            raise UnsafePickleError(
                f"{origin}: refused numpy _reconstruct of {pickled_name(cls) or type(cls).__name__}: only plain "
                "numpy arrays are read; nothing was run."
            )
        # an empty array; BUILD then sets shape, dtype (already checked numeric) and bytes
        return np.ndarray((0,), dtype=np.uint8)

    def dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
        return _numeric_dtype(spec, origin)

    def scalar(dtype_: Any, data: Any = None) -> Any:
        if not isinstance(dtype_, np.dtype) or dtype_.kind not in _NUMERIC_KINDS:
            raise UnsafePickleError(f"{origin}: refused a numpy scalar of dtype {dtype_!r}; nothing was run.")
        raw = data.encode("latin1") if isinstance(data, str) else bytes(data or b"")
        if len(raw) != dtype_.itemsize:
            raise ZooError(
                f"{origin}: a numpy scalar holds {len(raw)} bytes, its dtype needs {dtype_.itemsize}."
            )
        return np.frombuffer(raw, dtype=dtype_)[0]

    def reconstructor(cls: Any, base: Any, state: Any) -> Record:
        # Python 2's copy_reg._reconstructor(cls, base, state): base is object, or a builtin the class extends
        plain = isinstance(cls, type) and issubclass(cls, Record) and base in _BASES
        if not plain or (base is object and state is not None):
            raise UnsafePickleError(
                f"{origin}: refused copy_reg._reconstructor({cls!r}, {base!r}, ...): only objects of allowed "
                "classes are rebuilt; nothing was run."
            )
        record: Record = cls.__new__(cls)
        if base is not object:
            record.args = () if state is None else (base(state),)
        return record

    def newobj(cls: Any, *args: Any) -> Record:
        if not (isinstance(cls, type) and issubclass(cls, Record)):
            raise UnsafePickleError(f"{origin}: refused copy_reg.__newobj__({cls!r}); nothing was run.")
        return cls.__new__(cls, *args)

    def gpu_array(npa: Any, *context: Any) -> np.ndarray:
        if not isinstance(npa, np.ndarray):
            raise ZooError(
                f"{origin}: a GPU array in the pickle wraps {type(npa).__name__}, not a numpy array."
            )
        return npa

    def latin1(text: Any, encoding: Any = "latin1") -> bytes:
        if not isinstance(text, str) or str(encoding).lower().replace("-", "") != "latin1":
            raise UnsafePickleError(f"{origin}: refused _codecs.encode with {encoding!r}; nothing was run.")
        return text.encode("latin1")

    calls: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): _NdarrayMarker,
        ("numpy", "dtype"): dtype,
        ("copyreg", "_reconstructor"): reconstructor,
        ("copyreg", "__newobj__"): newobj,
        ("builtins", "object"): object,
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
        ("builtins", "tuple"): tuple,
        ("builtins", "int"): int,
        ("builtins", "float"): float,
        ("builtins", "str"): str,
        ("builtins", "bytes"): bytes,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "slice"): slice,
        ("collections", "OrderedDict"): OrderedDict,
        ("_codecs", "encode"): latin1,
        # Theano's two GPU back ends pickle a device array as (unpickler, (numpy array, ...))
        ("theano.sandbox.cuda.type", "CudaNdarray_unpickler"): gpu_array,
        ("theano.gpuarray.type", "GpuArray_unpickler"): gpu_array,
        ("theano.sandbox.gpuarray.type", "GpuArray_unpickler"): gpu_array,
    }
    for package in ("numpy.core.multiarray", "numpy._core.multiarray"):
        calls[(package, "_reconstruct")] = reconstruct
        calls[(package, "scalar")] = scalar
    return calls


#: Lasagne classes a network pickle may hold (module, names), each kept as a record
LASAGNE_CLASSES: dict[str, tuple[str, ...]] = {
    "lasagne.layers.input": ("InputLayer",),
    "lasagne.layers.conv": ("Conv1DLayer", "Conv2DLayer", "Conv3DLayer"),
    "lasagne.layers.dnn": ("Conv2DDNNLayer", "MaxPool2DDNNLayer", "Pool2DDNNLayer", "BatchNormDNNLayer"),
    "lasagne.layers.corrmm": ("Conv2DMMLayer",),
    "lasagne.layers.dense": ("DenseLayer", "NINLayer"),
    "lasagne.layers.normalization": ("BatchNormLayer", "LocalResponseNormalization2DLayer"),
    "lasagne.layers.pool": ("MaxPool2DLayer", "Pool2DLayer", "GlobalPoolLayer", "MaxPool1DLayer", "Pool1DLayer"),
    "lasagne.layers.noise": ("DropoutLayer", "GaussianNoiseLayer"),
    "lasagne.layers.special": ("NonlinearityLayer", "BiasLayer", "ScaleLayer", "ExpressionLayer"),
    "lasagne.layers.shape": ("FlattenLayer", "ReshapeLayer", "DimshuffleLayer", "PadLayer"),
    "lasagne.nonlinearities": (
        "rectify", "linear", "identity", "softmax", "sigmoid", "tanh", "elu", "softplus", "selu",
        "LeakyRectify", "ScaledTanH", "SELU", "leaky_rectify", "very_leaky_rectify",
    ),
}  # fmt: skip


def _allowed_record(module: str, name: str) -> bool:
    if name in LASAGNE_CLASSES.get(module, ()):
        return True
    if (module == "numpy" and name in _NUMPY_TYPES) or (module, name) == ("numpy.core", "_ufunc_reconstruct"):
        return True  # types and ufuncs as names only: never the real numpy objects
    # Theano's shared variables, types and symbolic graph objects: kept as records, never imported
    return module == "theano" or module.startswith("theano.")


def _array_state(state: Any, origin: str) -> tuple[Any, ...]:
    """numpy's ndarray state (version, shape, dtype, fortran, bytes), checked before numpy sees it."""
    if not (isinstance(state, tuple) and len(state) == 5):
        raise ZooError(f"{origin}: a numpy array in the pickle has a state numpy does not write.")
    version, shape, dtype, fortran, raw = state
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        raise UnsafePickleError(f"{origin}: refused a numpy array of dtype {dtype!r}; nothing was run.")
    if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise ZooError(f"{origin}: a numpy array in the pickle has shape {shape!r}.")
    raw = raw.encode("latin1") if isinstance(raw, str) else raw
    if not isinstance(raw, bytes) or len(raw) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise ZooError(f"{origin}: a numpy array of shape {shape} ({dtype}) holds the wrong number of bytes.")
    return (version, shape, dtype, bool(fortran), raw)


def _dtype_state(state: Any, origin: str) -> tuple[Any, ...]:
    """numpy's dtype state for a plain numeric dtype: (version, byte order, no subarray, names, fields, ...)."""
    if not (
        isinstance(state, tuple)
        and len(state) >= 5
        and state[0] in (3, 4)
        and state[1] in ("<", ">", "|", "=")
        and state[2:5] == (None, None, None)
    ):
        raise UnsafePickleError(
            f"{origin}: refused a numpy dtype state {state!r}: only plain numeric dtypes are read; nothing was run."
        )
    return state


class _InertUnpickler(pickle._Unpickler):
    """The pure-Python unpickler, whose BUILD step is ours: numpy objects are checked, records keep state."""

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)
    # set by pickle._Unpickler; typeshed does not declare them
    stack: list[Any]
    proto: int

    def __init__(self, stream: IO[bytes], origin: str) -> None:
        super().__init__(stream, fix_imports=True, encoding="latin1")
        self._origin = origin
        self._calls = _safe_calls(origin)

    def load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, Record):
            target.__setstate__(state)
        elif isinstance(target, np.ndarray):
            target.__setstate__(_array_state(state, self._origin))
        elif isinstance(target, np.dtype):
            target.__setstate__(_dtype_state(state, self._origin))  # type: ignore[attr-defined]
            if target.kind not in _NUMERIC_KINDS or target.fields is not None:
                raise UnsafePickleError(f"{self._origin}: refused numpy dtype {target!r}; nothing was run.")
        else:
            raise UnsafePickleError(
                f"{self._origin}: refused to set the state of a {type(target).__name__}: only records of allowed "
                "classes and numpy arrays take state; nothing was run."
            )

    dispatch[pickle.BUILD[0]] = load_build

    def find_class(self, module: str, name: str) -> Any:
        import _compat_pickle

        if self.proto < 3:  # Python 2 names (copy_reg, __builtin__) as Python 3 knows them
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in self._calls:
            return self._calls[(module, name)]
        if _allowed_record(module, name):
            return record_class(module, name)
        raise UnsafePickleError(
            f"{self._origin}: refused to load a pickle that asks for {module}.{name}: it is not on the allow-list "
            "of a model pickle (numpy arrays, plain containers, Lasagne layers, Theano variables); the file may be "
            "malicious or not a model pickle; nothing was run."
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._origin}: refused a persistent id {pid!r}; nothing was run.")


def safe_loads(data: bytes, origin: str = "pickle") -> Any:
    """Unpickle *data* into plain values, numpy arrays and inert records; run nothing it names."""
    try:
        return _InertUnpickler(io.BytesIO(data), origin).load()
    except ZooError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        IndexError,
    ) as exc:
        raise ZooError(f"{origin}: not a readable model pickle: {type(exc).__name__}: {exc}.") from exc
    except RecursionError as exc:
        raise ZooError(f"{origin}: not a readable model pickle: nested too deeply.") from exc


def safe_load_file(path: str | os.PathLike[str], origin: str | None = None) -> Any:
    with open(path, "rb") as handle:
        return safe_loads(handle.read(), origin=origin or str(path))
