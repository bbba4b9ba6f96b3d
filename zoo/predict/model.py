"""Which model predict runs: an artifact of an output folder or of a bundle, chosen and opened.

The default is the fastest artifact that passed `zoo verify` (INT8's integer kernels first; an FP16
IR computes in FP32 on a CPU, so it comes after FP32), by the report beside the artifacts. Without a
usable report it is the FP32 IR, else the ONNX file, and the choice is said. Artifacts are opened
with the runtime settings `zoo verify` judged them with, so what was verified is what runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UsageError, ZooError
from zoo.layout import ModelLayout
from zoo.vocab import ARTIFACTS, Artifact, Runtime

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.runtimes import Runner

#: what the default prefers among verified artifacts, fastest first
SPEED_ORDER: tuple[str, ...] = (
    Artifact.INT8.value,
    Artifact.FP32.value,
    Artifact.FP16.value,
    Artifact.ONNX.value,
)
#: what --artifact takes
CHOICES: tuple[str, ...] = (*ARTIFACTS, Runtime.SOURCE.value)


@dataclass
class Chosen:
    """One model ready to open: its manifest, class names, the artifact and why it was chosen."""

    manifest: Manifest
    labels: list[str]
    artifact: str
    path: Path | None  # the artifact file; None for the source model
    reason: str
    out: Path | None = None  # the output folder (the source model lives there)

    def open(self, threads: int | None = None) -> Runner:
        """A Runner with verify's settings: ONNX/FP32/FP16 exact float32, INT8 its own kernels."""
        if self.artifact == Runtime.SOURCE.value:
            from zoo.runtimes import open_source

            if self.out is None:
                raise UsageError(
                    "--artifact source: a bundle holds no source model; use -o with a converted output folder."
                )
            return open_source(self.manifest, self.out, threads=threads)
        from zoo.runtimes import open_artifact

        assert self.path is not None  # every artifact but the source has a file
        return open_artifact(
            self.path, self.artifact, hint="f32", threads=threads, exact=self.artifact != Artifact.INT8.value
        )


def _passed(report: dict[str, Any] | None) -> list[str]:
    if not report:
        return []
    return [
        k
        for k, v in (report.get("artifacts") or {}).items()
        if isinstance(v, dict) and v.get("passed") is True
    ]


def choose(
    asked: str | None, present: dict[str, Path], report: dict[str, Any] | None, where: str, name: str
) -> tuple[str, str]:
    """(artifact kind, the reason given in the output) for --artifact *asked* among *present* files."""
    if asked is not None:
        kind = next((c for c in CHOICES if c.casefold() == asked.casefold()), None)
        if kind is None:
            raise UsageError(f"--artifact: unknown artifact {asked!r}; expected one of {', '.join(CHOICES)}.")
        if kind != Runtime.SOURCE.value and kind not in present:
            raise UsageError(
                f"--artifact {kind}: {name} has no {kind} artifact in {where} "
                f"(it has: {', '.join(present) or 'none'}); run `zoo convert` (or `zoo quantize` for INT8)."
            )
        return kind, "asked for"
    passed = _passed(report)
    for kind in SPEED_ORDER:
        if kind in passed and kind in present:
            return kind, "the fastest artifact that passed zoo verify"
    if report is None:
        for kind in (Artifact.FP32.value, Artifact.ONNX.value):
            if kind in present:
                return kind, "no verification report; FP32 IR, else ONNX"
    if report is not None:
        raise UsageError(
            f"{where}: no artifact of {name} passed `zoo verify` (passed: {', '.join(passed) or 'none'}); "
            "fix the failures, or choose one with --artifact."
        )
    raise UsageError(
        f"{where}: holds no converted artifact of {name}; run `zoo convert --name {name}` first."
    )


def from_output(manifest: Manifest, out: Path, asked: str | None, reference_weights: bool = False) -> Chosen:
    """The model in a `zoo convert` output folder (report.json beside the artifacts, when verified).

    *reference_weights*: the user says the outputs were made with --reference-weights; as for
    `zoo verify`, the source folder must agree, and outputs made from seeded weights say so.
    """
    from zoo.bundle import read_verified_report
    from zoo.records import SourcesRecord, read_record
    from zoo.source_folder import SOURCES_JSON

    layout = ModelLayout(Path(out), manifest.name)
    # the record says how the outputs were made; its files need no re-hashing to run the artifacts
    sources = read_record(SourcesRecord, layout.source_dir / SOURCES_JSON)
    seeded = bool(sources is not None and sources.reference_weights)
    if reference_weights and sources is not None and not seeded and not manifest.real_weights_offline:
        raise UsageError(
            f"{manifest.name}: the outputs in {layout.root} were made from the real weights, but predict was "
            "run with --reference-weights; drop the option (or convert again with it)."
        )
    present = {k: layout.artifact(k) for k in ARTIFACTS if layout.artifact(k).is_file()}
    report: dict[str, Any] | None = None
    stale = ""
    if layout.report.is_file():
        try:
            report = read_verified_report(layout.report, manifest)
        except ZooError as exc:
            stale = f" (report not used: {exc.message})"
    kind, reason = choose(asked, present, report, str(layout.root), manifest.name)
    labels = manifest.read_labels(layout.source_dir)
    path = None if kind == Runtime.SOURCE.value else present[kind]
    if seeded:  # seeded weights: the labels it prints mean nothing
        reason += "; reference (seeded) weights: the scores test the mechanics, not the labels"
    return Chosen(manifest, labels, kind, path, reason + stale, out=Path(out))


@contextlib.contextmanager
def from_bundle(
    bundle: Path, name: str | None, asked: str | None, public_key: Path | None
) -> Iterator[Chosen]:
    """The model *name* inside a bundle folder or tarball, its checksums (and signature) checked first."""
    from pydantic import ValidationError

    from zoo.bundle.archive import opened_bundle
    from zoo.bundle.check import verify_folder
    from zoo.manifest import Manifest

    with opened_bundle(Path(bundle)) as folder:
        checked = verify_folder(folder, public_key=public_key, shown=Path(bundle))
        record = checked.record
        names = [m.name for m in record.models]
        if name is None and len(names) == 1:
            name = names[0]
        entry = next((m for m in record.models if m.name == name), None)
        if entry is None:
            raise UsageError(
                f"--model: bundle {bundle} holds {', '.join(names)}; name one of them"
                + (f" (not {name!r})." if name else ".")
            )
        try:
            manifest = Manifest.model_validate(entry.manifest)
        except ValidationError as exc:
            raise ZooError(
                f"{bundle}: bundle.json: the manifest of {name} is not one this zoo reads: {exc}"
            ) from None
        present = {a.kind: folder / a.path for a in entry.artifacts}
        report = {"artifacts": {a.kind: {"passed": a.parity.passed} for a in entry.artifacts}}
        kind, reason = choose(asked, present, report, str(bundle), entry.name)
        if kind == Runtime.SOURCE.value:
            raise UsageError(
                "--artifact source: a bundle holds no source model; use -o with a converted output folder."
            )
        signature = "signature checked" if checked.signature_checked else "checksums checked"
        yield Chosen(manifest, list(entry.labels.names), kind, present[kind], f"{reason}; bundle {signature}")
