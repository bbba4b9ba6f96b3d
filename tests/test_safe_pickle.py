"""The restricted unpickler reads numpy arrays and containers and runs nothing else."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from zoo.safe_pickle import UnsafePickleError, safe_loads


def test_reads_arrays_and_containers_protocol_2():
    data = {
        "net": [np.arange(6, dtype=np.float32).reshape(2, 3), np.float32(1.5)],
        "classes": ["a", "b"],
        "epoch": 3,
    }
    loaded = safe_loads(pickle.dumps(data, protocol=2))
    assert loaded["classes"] == ["a", "b"] and loaded["epoch"] == 3
    np.testing.assert_array_equal(loaded["net"][0], data["net"][0])


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_refuses_callables_and_runs_nothing(tmp_path):
    marker = str(tmp_path / "pwned")
    payload = pickle.dumps({"net": [_Evil(marker)]}, protocol=2)
    with pytest.raises(UnsafePickleError, match=r"posix\.mkdir|os\.mkdir"):
        safe_loads(payload, origin="evil.pkl")
    assert not os.path.exists(marker)


def test_python_2_protocol_0_containers_and_arrays():
    """What a Python 2 pickle.dump holds: byte strings, sets and OrderedDicts as Python 2 reduced them, arrays."""
    from collections import OrderedDict

    from converters.lasagne_pickle import Py2OrderedDict, Py2Set, python2_pickle

    big_endian = np.arange(6, dtype=">f4").reshape(2, 3)
    data = {
        "tags": Py2Set(["trainable", "regularizable"]),
        "params": Py2OrderedDict([("W", 1), ("b", 2)]),
        "arrays": [big_endian, np.arange(4, dtype=np.int32), np.float64(0.25)],
        "shape": (None, 1, 256, 512),
    }
    raw = python2_pickle(data)
    assert raw[:1] == b"(" and b"c__builtin__\nset\n" in raw and b"ccollections\nOrderedDict\n" in raw
    loaded = safe_loads(raw, "py2.pkl")
    assert loaded["tags"] == {"trainable", "regularizable"}
    assert loaded["params"] == OrderedDict([("W", 1), ("b", 2)]) and loaded["shape"] == (None, 1, 256, 512)
    np.testing.assert_array_equal(loaded["arrays"][0], big_endian)
    assert loaded["arrays"][0].dtype.kind == "f" and loaded["arrays"][2] == 0.25


def test_gpu_arrays_of_both_theano_back_ends_are_their_numpy_arrays():
    from converters.lasagne_pickle import GpuValue, python2_pickle

    value = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    raw = python2_pickle([GpuValue(value, "cuda"), GpuValue(value, "gpuarray")])
    assert b"ctheano.sandbox.cuda.type\nCudaNdarray_unpickler\n" in raw
    assert b"ctheano.gpuarray.type\nGpuArray_unpickler\n" in raw
    for loaded in safe_loads(raw, "gpu.pkl"):
        assert type(loaded) is np.ndarray
        np.testing.assert_array_equal(loaded, value)


def test_object_arrays_and_state_on_plain_objects_are_refused():
    objects = pickle.dumps(np.array([1, None], dtype=object), protocol=2)
    with pytest.raises(UnsafePickleError, match=r"refused numpy dtype '\|O'"):
        safe_loads(objects, origin="objects.pkl")
    # a set given state by BUILD: Python would set attributes on it; nothing but records takes state here
    with pytest.raises(UnsafePickleError, match="refused to set the state of a set"):
        safe_loads(b"c__builtin__\nset\n((ltR(db.", origin="state.pkl")


def test_theano_names_are_records_never_imported_or_called(tmp_path):
    """A Theano-named callable applied to arguments stays a record of them: nothing is imported or run."""
    marker = tmp_path / "ran"
    raw = f"ctheano.compile.function_module\n_constructor_Function\n(S'touch {marker}'\ntR.".encode()
    loaded = safe_loads(raw, origin="theano.pkl")
    assert repr(loaded) == "<pickled theano.compile.function_module._constructor_Function>"
    assert loaded.args == (f"touch {marker}",) and not marker.exists()
    import sys

    assert "theano" not in sys.modules


def test_classes_outside_the_allow_list_name_class_and_file_and_exit_2():
    raw = b"clasagne.layers.recurrent\nLSTMLayer\n)R."
    with pytest.raises(
        UnsafePickleError, match=r"evil\.pkl: refused .* asks for lasagne\.layers\.recurrent\.LSTMLayer"
    ) as caught:
        safe_loads(raw, origin="evil.pkl")
    assert caught.value.exit_code == 2
    with pytest.raises(UnsafePickleError, match=r"asks for subprocess\.Popen"):
        safe_loads(b"csubprocess\nPopen\n(S'id'\ntR.", origin="evil.pkl")


def test_theano_graph_objects_extending_builtins_and_naming_numpy_types_are_records():
    """Python 2 pickles a tuple subclass through copy_reg._reconstructor(cls, tuple, value); ops may hold numpy types."""
    raw = (
        b"ccopy_reg\n_reconstructor\n(ctheano.tensor.var\nTensorConstantSignature\nc__builtin__\ntuple\n"
        b"(I1\nI2\nttR(dS'ctor'\ncnumpy\nfloat32\nsb."
    )
    loaded = safe_loads(raw, origin="graph.pkl")
    assert repr(loaded) == "<pickled theano.tensor.var.TensorConstantSignature>" and loaded.args == ((1, 2),)
    assert repr(loaded.attrs["ctor"]) == "<class 'zoo.safe_pickle.float32'>"  # a record class, not numpy's
    with pytest.raises(UnsafePickleError, match=r"refused copy_reg._reconstructor"):
        safe_loads(
            b"ccopy_reg\n_reconstructor\n(ctheano.x\nY\nc__builtin__\nobject\nI1\ntR.", origin="bad.pkl"
        )
