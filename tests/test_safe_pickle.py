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
