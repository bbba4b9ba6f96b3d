"""The `zoo evaluate` command: every wanted artifact (and the source model) scored file by file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UsageError, ZooError
from zoo.evaluate.datasets import read_audio, read_classes, read_dataset
from zoo.evaluate.predict import FileResult, agreement, is_detector, predict, score_results, window_figures
from zoo.vocab import SUBJECTS, parse_list

if TYPE_CHECKING:
    from zoo.manifest import Manifest
    from zoo.runtimes import Runner


def parse_artifacts(values: list[str] | None, option: str = "--precisions") -> list[str] | None:
    """Comma-separated subject names (source, onnx, FP32, FP16, INT8), case-blind; None = all."""
    return parse_list(values, SUBJECTS, option, noun="artifact")


def load_models(
    manifest: Manifest,
    out: Path,
    wanted: list[str] | None,
    *,
    hint: str | None = "f32",
    threads: int | None = None,
) -> tuple[dict[str, Runner], dict[str, str]]:
    """({artifact: Runner}, {artifact: why skipped}) for the artifacts present in the layout."""
    from zoo.layout import ModelLayout
    from zoo.runtimes import NoSources, open_artifact, open_source

    layout = ModelLayout(Path(out), manifest.name)
    models: dict[str, Runner] = {}
    skipped: dict[str, str] = {}
    for artifact in wanted or SUBJECTS:
        explicit = wanted is not None
        if artifact == "source":
            try:
                models[artifact] = open_source(manifest, out, threads=threads)
            except NoSources as exc:
                if explicit:
                    raise UsageError(f"{manifest.name}: {exc.message}") from None
                skipped[artifact] = exc.message
            continue
        path = layout.artifact(artifact)
        if not path.is_file():
            why = f"{path} does not exist (run `zoo {'quantize' if artifact == 'INT8' else 'convert'}`)"
            if explicit:
                raise UsageError(f"{manifest.name}: {artifact}: {why}.")
            skipped[artifact] = why
            continue
        models[artifact] = open_artifact(path, artifact, hint=hint, threads=threads)
    if not models:
        raise UsageError(
            f"{manifest.name}: nothing to evaluate under {layout.root}: "
            + "; ".join(f"{k}: {v}" for k, v in skipped.items())
            + ". Run `zoo download` and `zoo convert` first."
        )
    return models, skipped


def evaluate(
    manifest: Manifest,
    out: str | Path,
    dataset_dir: str | Path,
    *,
    artifacts: list[str] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Score every wanted artifact (and the source model) on a labelled folder, file by file."""
    from zoo.bars import bar
    from zoo.frontends import prepare_inputs

    out = Path(out)
    classes = read_classes(manifest, out)
    dataset = read_dataset(dataset_dir, classes, detector=is_detector(manifest))
    models, skipped = load_models(manifest, out, artifacts)
    results: dict[str, list[FileResult]] = {name: [] for name in models}
    with bar(f"{manifest.name}: evaluating", len(dataset.files), show_progress) as progress:
        for item in dataset.files:
            audio, rate = read_audio(item.path)
            feeds = prepare_inputs(manifest, audio, rate)
            for name, model in models.items():
                results[name].append(predict(model, manifest, feeds))
            progress.advance()
    report: dict[str, Any] = {
        "model": manifest.name,
        "dataset": str(dataset.directory),
        "files": len(dataset.files),
        "classes": dataset.counts(),
        "metric": "accuracy" if is_detector(manifest) else "top1",
        "reference_weights": _reference_weights(manifest, out),
        "results": {},
        "skipped": skipped,
    }
    reference = "source" if "source" in results else ("FP32" if "FP32" in results else None)
    for name in SUBJECTS:
        if name not in results:
            continue
        entry = score_results(manifest, dataset, results[name])
        if reference is not None and name != reference:
            entry[f"agreement_{reference}"] = agreement(manifest, results[reference], results[name])
            entry[f"windows_{reference}"] = window_figures(manifest, results[reference], results[name])
        report["results"][name] = entry
    return report


def _reference_weights(manifest: Manifest, out: Path) -> bool | None:
    try:
        from zoo.source_folder import read_source_set

        sources = read_source_set(manifest, out)
    except ZooError:
        return None
    return None if sources is None else bool(sources.reference_weights)
