"""Frameworks `pytorch` and `torchscript`: checkpoints onto rebuilt networks, TorchScript silero-vad.

Loading:
- `pytorch`: an upstream training checkpoint {'iteration', 'state_dict', 'optimizer'} or a plain
  state dict, read with torch.load(weights_only=True) (no code runs), mapped strictly onto the
  network the manifest names (converters/networks): every key and shape must match.
- `torchscript` (silero-vad): the reference runs the ORIGINAL TorchScript `_model` chunk by chunk
  with the state and context passed explicitly; the export is the eager rebuild with the same
  weights (the TorchScript module itself cannot be exported).

Export, one fixed choice: torch.onnx.export with the legacy TorchScript-based exporter
(dynamo=False), because it emits opset 17 and a single self-contained file, folds batch norm into
convolutions and traces static shapes; the manifest gives the opset, the tensor names and shapes.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from zoo.errors import UsageError, ZooError
from zoo.frontends import frontend_for
from zoo.plugins import Converter, network_entry, register_converter, weights_path

if TYPE_CHECKING:
    from zoo.manifest import Manifest

#: state-dict keys a checkpoint may lack without harm (torch < 0.4.1 did not save them)
OPTIONAL_KEYS = ("num_batches_tracked",)


# -- loading -----------------------------------------------------------------------


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The state dict inside an upstream checkpoint or a plain state dict, read without running code."""
    import pickle

    import torch

    with open(path, "rb") as handle:
        head = handle.read(2)
    if head not in (b"PK", b"\x80\x02"):  # zip archive (torch >= 1.6) or legacy pickle (older torch)
        raise UsageError(
            f"{path}: not a readable PyTorch checkpoint (neither torch's zip format nor its legacy pickle)."
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next(
            (line for line in lines if "GLOBAL" in line or "Unsupported" in line), lines[-1] if lines else ""
        )
        raise UsageError(
            f"{path}: refused to load: the checkpoint asks for more than tensors and plain containers "
            f"(read with torch.load(weights_only=True); nothing was run): {reason}"
        ) from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise UsageError(f"{path}: not a readable PyTorch checkpoint: {exc}".rstrip() + ".") from exc
    if isinstance(data, dict) and "state_dict" in data:
        data = data["state_dict"]
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        found = ", ".join(sorted(map(str, data))[:8]) if isinstance(data, dict) else type(data).__name__
        raise UsageError(
            f"{path}: expected a training checkpoint {{'iteration', 'state_dict', 'optimizer'}} or a state dict "
            f"of tensors, found {found or 'an empty dict'}."
        )
    if all(k.startswith("module.") for k in data):  # saved from nn.DataParallel
        data = {k[len("module.") :]: v for k, v in data.items()}
    return data


def _listing(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")


def apply_state_dict(module: Any, state: dict[str, Any], origin: Path | str, network: str) -> None:
    """Load *state* into *module* strictly; a mismatch names the file, the keys and the shapes."""
    import torch

    expected = module.state_dict()
    missing = sorted(k for k in expected if k not in state and not k.endswith(OPTIONAL_KEYS))
    unexpected = sorted(k for k in state if k not in expected)
    wrong = [
        f"{k} (file {tuple(state[k].shape)}, network {tuple(expected[k].shape)})"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys: {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_listing(unexpected)}")
        if wrong:
            parts.append(f"wrong shapes: {_listing(wrong)}")
        raise UsageError(
            f"{origin}: the checkpoint does not fit network {network} (upstream module names expected): "
            + "; ".join(parts)
            + "."
        )
    merged = {k: state[k].to(expected[k].dtype) if k in state else expected[k] for k in expected}
    with torch.no_grad():
        module.load_state_dict(merged, strict=True)


class TorchSourceModel:
    """An eager PyTorch module run on the manifest's named inputs (CPU, eval mode, no grad)."""

    def __init__(self, module: Any, manifest: Manifest):
        self.module = module.eval()
        self.manifest = manifest
        self.input_names = [i.name for i in manifest.inputs]
        self.output_names = [o.name for o in manifest.outputs]

    @property
    def export_module(self) -> Any:
        return self.module

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise ZooError(f"{self.manifest.name}: feeds lack input(s) {', '.join(missing)}.")
        args = [torch.from_numpy(np.ascontiguousarray(feeds[n], dtype=np.float32)) for n in self.input_names]
        with torch.no_grad():
            out = self.module(*args)
        if not isinstance(out, tuple | list):
            out = (out,)
        return {name: value.detach().numpy() for name, value in zip(self.output_names, out, strict=True)}


class SileroTorchScript:
    """The original TorchScript `_model`, stepped with explicit state and context (the reference)."""

    def __init__(self, path: Path, manifest: Manifest):
        import torch

        self.manifest = manifest
        self.input_names = [i.name for i in manifest.inputs]
        self.output_names = [o.name for o in manifest.outputs]
        try:
            with warnings.catch_warnings():
                # TorchScript is deprecated, but it is the format silero-vad publishes its weights in
                warnings.filterwarnings(
                    "ignore", message=".*torch.jit.load. is deprecated", category=DeprecationWarning
                )
                scripted = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError, OSError) as exc:
            raise ZooError(f"{path}: not a readable TorchScript file: {exc}") from exc
        model = getattr(scripted, "_model", None)
        if model is None:
            raise ZooError(
                f"{path}: not a silero-vad TorchScript file (it has no 16 kHz `_model` submodule)."
            )
        self.scripted = model.eval()
        self.context_size = int(getattr(model, "context_size_samples", 64))
        try:
            self.rebuild = network_entry("silero_vad", framework="torch").factory.from_torchscript(
                self.scripted
            )
        except KeyError as exc:
            raise ZooError(
                f"{path}: its `_model` does not match the silero-vad 16 kHz network: {exc.args[0]}."
            ) from exc

    @property
    def export_module(self) -> Any:
        return self.rebuild

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        chunk_name, state_name, context_name = self.input_names
        chunk = torch.from_numpy(np.ascontiguousarray(feeds[chunk_name], dtype=np.float32))
        state = torch.from_numpy(np.ascontiguousarray(feeds[state_name], dtype=np.float32))
        context = torch.from_numpy(np.ascontiguousarray(feeds[context_name], dtype=np.float32))
        with torch.no_grad():
            x = torch.cat([context, chunk], dim=1)
            probability, new_state = self.scripted(x, state)
            new_context = x[:, -self.context_size :]
        values = (probability, new_state, new_context)
        return {name: value.numpy() for name, value in zip(self.output_names, values, strict=True)}


TorchSource = TorchSourceModel | SileroTorchScript


def build_network(manifest: Manifest) -> Any:
    from converters.networks import build

    try:
        return build(manifest.network, origin=str(manifest.path or manifest.name))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{manifest.path or manifest.name}: field network.args: {exc}.") from exc


def _network_label(manifest: Manifest) -> str:
    net = manifest.network
    assert net is not None  # build_network refused a manifest without one
    return f"{net.name}/{net.variant}" if net.variant else net.name


# -- export ----------------------------------------------------------------------------


def example_inputs(manifest: Manifest) -> tuple[Any, ...]:
    """Zero tensors with the manifest's static input shapes (dynamic dimensions become 1)."""
    import torch

    return tuple(
        torch.zeros([d if isinstance(d, int) else 1 for d in spec.shape]) for spec in manifest.inputs
    )


def rename_tensors(model: Any, mapping: dict[str, str]) -> None:
    """Rename graph inputs/outputs in an ONNX ModelProto (torch refuses some names, e.g. '486')."""
    if not mapping:
        return
    graph = model.graph
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.name in mapping:
            value.name = mapping[value.name]
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]
        for i, name in enumerate(node.output):
            if name in mapping:
                node.output[i] = mapping[name]


def declare_static_outputs(model: Any, shapes: list[tuple[int, ...]]) -> None:
    """Write the traced output shapes into the graph where the exporter's shape inference left symbols.

    The trace is static, so the shapes the module produced for the example inputs are the shapes.
    """
    for value, shape in zip(model.graph.output, shapes, strict=True):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != len(shape):
            continue
        for dim, size in zip(dims, shape, strict=True):
            if not dim.HasField("dim_value") or dim.dim_value != size:
                dim.Clear()
                dim.dim_value = int(size)


def export_module_onnx(
    module: Any, inputs: tuple[Any, ...], input_names: list[str], output_names: list[str], opset: int
) -> bytes:
    """The exporter: legacy TorchScript-based torch.onnx.export, static shapes, one self-contained file."""
    import onnx
    import torch

    temporary_in = [f"zoo_input_{i}" for i in range(len(input_names))]
    temporary_out = [f"zoo_output_{i}" for i in range(len(output_names))]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)  # the legacy exporter is our choice
        # torch.jit re-exports TracerWarning without listing it in __all__
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        # reflect padding exports as a reversed Slice, which the exporter cannot fold; harmless
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        torch.onnx.export(
            module.eval(),
            inputs,
            buffer,  # type: ignore[arg-type]  # the legacy exporter (dynamo=False) takes a file object too
            dynamo=False,
            opset_version=opset,
            input_names=temporary_in,
            output_names=temporary_out,
            do_constant_folding=True,
            export_params=True,
        )
    model = onnx.load_from_string(buffer.getvalue())
    with torch.no_grad():
        traced = module(*inputs)
    traced = traced if isinstance(traced, tuple | list) else (traced,)
    declare_static_outputs(model, [tuple(t.shape) for t in traced])
    rename_tensors(
        model, dict(zip(temporary_in + temporary_out, list(input_names) + list(output_names), strict=True))
    )
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


# -- reference weights -------------------------------------------------------------------


def calibration_batch(manifest: Manifest, count: int, seed: int) -> tuple[Any, ...]:
    """Seeded inputs shaped like the manifest's, made the way the host side makes them."""
    import torch

    from converters.networks.seeding import calibration_audio
    from zoo.frontends import prepare_inputs, synthetic_feature_inputs

    spec = manifest.inputs[0]
    if not frontend_for(manifest).takes_audio:
        feeds = synthetic_feature_inputs(manifest, count, seed)
    else:
        rate = manifest.audio.sample_rate
        seconds = manifest.audio.clip.seconds if manifest.audio.clip else 1.0
        feeds = []
        for clip in calibration_audio(rate, seconds, count, seed):
            feeds.append(prepare_inputs(manifest, clip, rate)[0])
    stacked = np.concatenate([f[spec.name] for f in feeds[:count]], axis=0)
    return (torch.from_numpy(stacked.astype(np.float32)),)


def seeded_network(manifest: Manifest, seed: int, count: int | None = None) -> Any:
    """The manifest's network with seeded weights and batch-norm statistics from seeded inputs.

    Embedding inputs are tiny (10 x 128) but vary mostly from clip to clip, so they get many
    calibration clips; spectrogram networks are costly per clip and see many positions per clip.
    """
    from converters.networks.seeding import calibrate_batchnorm, scale_final_layer, seeded_init

    if count is None:
        count = 12 if frontend_for(manifest).takes_audio else 256
    module = build_network(manifest)
    seeded_init(module, seed)
    batch = calibration_batch(manifest, count, seed + 1)
    calibrate_batchnorm(module, batch)
    final = getattr(module, "final_layer", None)
    if final is not None:
        scale_final_layer(
            module, final, batch, target_mean=-4.0 if getattr(module, "multi_label", False) else None
        )
    return module.eval()


def upstream_checkpoint(module: Any) -> dict[str, Any]:
    """What the upstream training scripts save: {'iteration', 'state_dict', 'optimizer'} (Adam's state)."""
    import torch

    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    return {"iteration": 0, "state_dict": module.state_dict(), "optimizer": optimizer.state_dict()}


@register_converter
class TorchConverter(Converter[TorchSource]):
    """Checkpoints on rebuilt torch networks (`pytorch`) and silero-vad's TorchScript (`torchscript`)."""

    frameworks: ClassVar[tuple[str, ...]] = ("pytorch", "torchscript")

    def set_threads(self, threads: int) -> bool:
        """torch's process-wide intra-op thread count."""
        import torch

        torch.set_num_threads(int(threads))
        return True

    def float64_model(
        self, source: TorchSource, manifest: Manifest, onnx_path: Path | None, weights: str = "float32"
    ) -> Any:
        """The eager module the export traces (silero-vad: the rebuild of its TorchScript), in double."""
        from zoo.numerics.float64 import TorchFloat64

        return TorchFloat64(
            source.export_module,
            [i.name for i in manifest.inputs],
            [o.name for o in manifest.outputs],
            f"PyTorch {manifest.framework} module, .double()",
            weights,
        )

    def load(self, files: dict[str, Path], manifest: Manifest) -> TorchSource:
        """The model in PyTorch: a checkpoint on its rebuilt network, or silero-vad's TorchScript."""
        path = weights_path(files, manifest)
        if manifest.framework == "torchscript":
            return SileroTorchScript(path, manifest)
        module = build_network(manifest)
        apply_state_dict(module, read_checkpoint(path), path, _network_label(manifest))
        return TorchSourceModel(module, manifest)

    def export_onnx(self, source: TorchSource, path: str | Path, manifest: Manifest) -> None:
        """Write the ONNX export of *source* (the eager network) to *path*, names from the manifest."""
        from zoo.atomic import write_bytes

        data = export_module_onnx(
            source.export_module,
            example_inputs(manifest),
            [i.name for i in manifest.inputs],
            [o.name for o in manifest.outputs],
            manifest.convert.onnx.opset,
        )
        write_bytes(path, data)

    def write_reference_weights(
        self, manifest: Manifest, directory: str | Path, seed: int
    ) -> dict[str, Path]:
        """A seeded upstream-style training checkpoint (md_0_iters.tar, as upstream names them), keyed "weights"."""
        import torch

        from zoo.atomic import atomic_open

        if manifest.framework == "torchscript":
            raise UsageError(
                f"{manifest.name}: has real weights on the package index; run without --reference-weights "
                "(zoo writes no TorchScript reference weights)."
            )
        module = seeded_network(manifest, seed)
        path = Path(directory) / "md_0_iters.tar"
        with atomic_open(path, "wb") as handle:
            torch.save(upstream_checkpoint(module), handle)
        return {"weights": path}
