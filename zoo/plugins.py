"""The plugin contract: what a source-framework converter and a rebuilt network must provide.

A converter is one module under converters/ holding a `Converter` subclass decorated with
`@register_converter`; the registry finds it by iterating that package, so zoo never names a
converter module. A rebuilt network is a class in converters/networks/<name>.py decorated with
`@register_network(name, variant, framework)`; a network named N lives in the module named N,
so the files a model's exports depend on are known without importing torch or TensorFlow.
Frameworks are imported inside converter methods, never at module level.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np

from zoo.errors import ManifestError, UsageError, ZooError

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.numerics.float64 import Float64Model

#: the package whose modules are the converters, and the one holding the rebuilt networks
CONVERTERS_PACKAGE = "converters"
NETWORKS_PACKAGE = "converters.networks"
#: modules of that package that declare no network (shared seeding, a weights converter)
NETWORK_HELPERS = ("seeding", "yamnet_tflite")
NETWORK_FRAMEWORKS = ("torch", "keras", "tf1")


class SourceModel(Protocol):
    """A model in its original framework, run on named numpy inputs."""

    input_names: list[str]
    output_names: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


S = TypeVar("S", bound=SourceModel)


class Converter(ABC, Generic[S]):
    """Everything zoo asks of one source framework: load, export to ONNX, seeded reference weights.

    ``files`` maps manifest file names (or "weights" for a user's --weights file) to local paths;
    S is the converter's own source-model class (what `load` returns and the exports take).
    """

    #: manifest `framework` values this converter serves
    frameworks: ClassVar[tuple[str, ...]] = ()
    #: True when OpenVINO reads the source model directly (`to_openvino`) instead of the ONNX export
    direct_ir: ClassVar[bool] = False

    @abstractmethod
    def load(self, files: dict[str, Path], manifest: Manifest) -> S:
        """The model running in its ORIGINAL framework: the reference every artifact is checked against."""

    @abstractmethod
    def export_onnx(self, source: S, path: str | Path, manifest: Manifest) -> None:
        """One self-contained .onnx file whose input and output names and shapes are the manifest's."""

    def write_reference_weights(
        self, manifest: Manifest, directory: str | Path, seed: int
    ) -> dict[str, Path]:
        """Seeded weights in the upstream file format and layout, keyed like ``files``."""
        raise UsageError(
            f"{manifest.name}: the {manifest.framework} converter writes no reference weights; "
            "run without --reference-weights."
        )

    def to_openvino(self, source: S, files: dict[str, Path], manifest: Manifest) -> Any:
        """An openvino.Model read from the source format (only when `direct_ir` is True)."""
        raise UsageError(
            f"{manifest.name}: the {manifest.framework} converter has no direct OpenVINO path; "
            "the IR is made from the ONNX export."
        )

    def set_threads(self, threads: int) -> bool:
        """Limit the source framework to *threads* threads; False when it keeps its own choice."""
        return False

    def float64_model(
        self, source: S, manifest: Manifest, onnx_path: Path | None, weights: str = "float32"
    ) -> Float64Model:
        """The same model evaluated in float64: the yardstick of the source's own float32 error.

        Frameworks without a float64 path of their own use the exported ONNX graph made float64
        (zoo.numerics.OnnxFloat64); converters with a better path override this.
        """
        from zoo.numerics.float64 import OnnxFloat64

        if onnx_path is None:
            raise ZooError(
                f"{manifest.name}: {manifest.framework} has no float64 path of its own; "
                "its float64 evaluation needs the exported ONNX file."
            )
        return OnnxFloat64(onnx_path, weights=weights)

    def code_files(self, manifest: Manifest) -> list[Path]:
        """Every source file whose change must redo this model's exports.

        The converter's module (and those of its base classes), the network module the manifest
        names, and every converters module they import, found by reading their import statements.
        """
        start = [
            cls.__module__
            for cls in type(self).__mro__
            if cls.__module__ == CONVERTERS_PACKAGE or cls.__module__.startswith(CONVERTERS_PACKAGE + ".")
        ]
        if manifest.network is not None:
            module = f"{NETWORKS_PACKAGE}.{manifest.network.name}"
            if _module_file(module) is not None:
                start.append(module)
        return sorted(_import_closure(start))


class ThreadsAtLoad:
    """For converters whose source models take their thread count when loaded (per session or
    interpreter): `set_threads` remembers it for the next `load`."""

    def __init__(self) -> None:
        self.threads: int | None = None

    def set_threads(self, threads: int) -> bool:
        self.threads = int(threads)
        return True


C = TypeVar("C", bound=type[Converter[Any]])

_converters: dict[str, Converter[Any]] = {}
_discovered = False


def register_converter(cls: C) -> C:
    """Class decorator: serve the class's `frameworks` with one instance of it."""
    if not cls.frameworks:
        raise TypeError(f"{cls.__name__}: a converter must declare the frameworks it serves.")
    instance = cls()
    for framework in cls.frameworks:
        taken = _converters.get(framework)
        if taken is not None and type(taken).__qualname__ != cls.__qualname__:
            raise TypeError(
                f"framework {framework!r} is served by both {type(taken).__name__} and {cls.__name__}."
            )
        _converters[framework] = instance
    return cls


def _discover(package: str) -> None:
    """Import every module of *package* (not its subpackages), so their declarations run."""
    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__, prefix=package + "."):
        if not info.ispkg:
            importlib.import_module(info.name)


def known_frameworks() -> list[str]:
    global _discovered
    if not _discovered:
        _discover(CONVERTERS_PACKAGE)
        _discovered = True
    return sorted(_converters)


def converter_for(manifest_or_framework: Manifest | str) -> Converter[Any]:
    """The converter serving a manifest's `framework` (or a framework name)."""
    framework = (
        manifest_or_framework if isinstance(manifest_or_framework, str) else manifest_or_framework.framework
    )
    known = known_frameworks()
    if framework not in _converters:
        raise UsageError(f"framework {framework!r} has no converter (known: {', '.join(known)}).")
    return _converters[framework]


def weights_path(files: dict[str, Path], manifest: Manifest, what: str = "weights") -> Path:
    """The file a converter loads: a user's --weights / reference file ("weights"), else the manifest's."""
    if "weights" in files:
        return Path(files["weights"])
    for entry in manifest.files:
        if entry.role == "weights" and entry.name in files:
            return Path(files[entry.name])
    hint = (
        f"pass --weights PATH ({manifest.weights.format})"
        if not manifest.weights.published
        else "run `zoo download` or pass --weights PATH"
    )
    raise UsageError(f"{manifest.name}: no {what} among the sources ({', '.join(files) or 'none'}); {hint}.")


# -- code files ----------------------------------------------------------------------------


def _module_file(module: str) -> Path | None:
    """The source file of *module*, found without importing it (None if there is none)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _imported_modules(path: Path) -> set[str]:
    """The converters modules *path* imports anywhere (top level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name == CONVERTERS_PACKAGE or name.startswith(CONVERTERS_PACKAGE + "."):
                found.add(name)
    return found


def _import_closure(modules: list[str]) -> set[Path]:
    """The files of *modules* and of every converters module they import, transitively."""
    files: set[Path] = set()
    pending = list(modules)
    seen: set[str] = set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(module)
        if path is None:  # `from converters import quiet_tensorflow` names a function, not a module
            continue
        files.add(path)
        pending.extend(_imported_modules(path))
    return files


# -- networks -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkEntry:
    """One rebuilt architecture: its manifest name and variant, its framework and what builds it."""

    name: str
    variant: str | None
    framework: str
    factory: (
        Any  # torch: an nn.Module class taking network.args; keras: see KerasNetwork; tf1: a graph builder
    )


class KerasNetwork(Protocol):
    """What a Keras network declares (framework "keras"): the model, and seeded upstream-style weights."""

    @staticmethod
    def build_frames_model(samples: int, num_classes: int) -> Any: ...

    @staticmethod
    def set_reference_weights(model: Any, seed: int) -> None: ...


_networks: dict[tuple[str, str | None], NetworkEntry] = {}

T = TypeVar("T")


def register_network(name: str, variant: str | None = None, framework: str = "torch") -> Callable[[T], T]:
    """Class decorator: the class builds network *name* (/ *variant*) for *framework*.

    The class must live in converters/networks/<name>.py, so a model's code files are known
    without importing the framework.
    """
    if framework not in NETWORK_FRAMEWORKS:
        raise TypeError(f"network {name!r}: framework must be one of {', '.join(NETWORK_FRAMEWORKS)}.")

    def declare(cls: T) -> T:
        module = getattr(cls, "__module__", "")
        if module != f"{NETWORKS_PACKAGE}.{name}":
            raise TypeError(f"network {name!r} must be declared in {NETWORKS_PACKAGE}.{name}, not {module}.")
        _networks[(name, variant)] = NetworkEntry(name, variant, framework, cls)
        return cls

    return declare


def _network_names() -> list[str]:
    root = importlib.import_module(NETWORKS_PACKAGE)
    return sorted(
        info.name
        for info in pkgutil.iter_modules(root.__path__)
        if not info.ispkg and not info.name.startswith("_") and info.name not in NETWORK_HELPERS
    )


def network_entry(name: str, variant: str | None = None, framework: str | None = None) -> NetworkEntry:
    """The declared network for a manifest's network.name and network.variant (of *framework*, if given)."""
    names = _network_names()
    if name not in names:
        raise UsageError(f"field network.name: unknown network {name!r} (known: {', '.join(names)}).")
    importlib.import_module(f"{NETWORKS_PACKAGE}.{name}")
    variants = [v for (n, v) in _networks if n == name]
    entry = _networks.get((name, variant))
    if entry is None:
        known = ", ".join(str(v) for v in variants)
        raise UsageError(
            f"field network.variant: network {name!r} has no variant {variant!r} (known: {known})."
        )
    if framework is not None and entry.framework != framework:
        raise UsageError(
            f"field network.name: network {name!r} is rebuilt in {entry.framework}, "
            f"not {framework}, so this converter cannot use it."
        )
    return entry


def declared_network(manifest: Manifest, framework: str, converter: str) -> Any:
    """The rebuilt network a manifest's `network.name` names among those declared for *framework*;
    a missing or unknown one is a manifest error (exit 2) naming the field."""
    network = manifest.network
    if network is None:
        raise ManifestError(
            f"{manifest.path}: field network.name: the {converter} converter needs a rebuilt network."
        )
    try:
        entry = network_entry(network.name, network.variant, framework=framework)
    except UsageError as exc:
        raise ManifestError(f"{manifest.path}: {exc.message}") from exc
    return entry.factory


def reference_weights_name(manifest: Manifest) -> str:
    """The file name reference weights are written under: the manifest's weights file."""
    for entry in manifest.files:
        if entry.role == "weights":
            return entry.name
    raise ManifestError(
        f"{manifest.path}: field files: no file with role 'weights' to write reference weights as."
    )
