"""Read pickles without running them: numpy arrays and plain containers only.

A pickle can name any callable to run while loading. Upstream model pickles
(Kahl's AED, Python 2) only need numpy's array reconstruction; everything else
is refused before it is looked up, so a malicious file runs nothing.
"""

from __future__ import annotations

import io
import os
import pickle
from typing import IO, Any

from zoo.errors import ZooError

#: (module, name) pairs a model pickle may reference; Python 2 names are mapped by fix_imports
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # Python 3 writes bytes in protocol 2 as _codecs.encode(str, "latin1")
}


class UnsafePickleError(ZooError):
    """The pickle asks for a callable outside the allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, stream: IO[bytes], origin: str) -> None:
        super().__init__(stream, fix_imports=True, encoding="latin1")
        self._origin = origin

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            if module.startswith("numpy"):
                import numpy  # noqa: F401 - the allowed names live in numpy

            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self._origin}: refused to load a pickle that asks for {module}.{name}: only numpy arrays "
            "and plain containers are allowed (the file may be malicious or not a model pickle); nothing was run."
        )


def safe_loads(data: bytes, origin: str = "pickle") -> Any:
    """Unpickle *data* allowing numpy arrays and plain containers only."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), origin).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
        raise ZooError(f"{origin}: not a readable model pickle: {type(exc).__name__}: {exc}.") from exc


def safe_load_file(path: str | os.PathLike[str], origin: str | None = None) -> Any:
    with open(path, "rb") as handle:
        return safe_loads(handle.read(), origin=origin or str(path))
