"""`zoo predict`: a converted model (or a bundled one) on your audio files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zoo.cli.options import ManifestsOpt, OutOpt, catalog
from zoo.errors import UsageError


def predict(
    paths: Annotated[
        list[Path], typer.Argument(help="Audio files or folders (any format and rate soundfile reads).")
    ],
    name: Annotated[str | None, typer.Option("--name", "-n", help="Catalog entry to run (with -o).")] = None,
    manifests: ManifestsOpt = None,
    output_dir: OutOpt = None,
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="A bundle folder or .tar.gz (as `zoo pull` leaves it).")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="The model inside --bundle.")] = None,
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="PEM public key: check the bundle's signature first.")
    ] = None,
    artifact: Annotated[
        str | None,
        typer.Option(
            "--artifact",
            help="onnx, FP32, FP16, INT8 or source (default: the fastest artifact that passed zoo verify).",
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="table, json, csv, birdnet (BirdNET's CSV), raven, or npy (embedding models: one .npy per file).",
        ),
    ] = "table",
    top_k: Annotated[
        int | None,
        typer.Option("--top-k", min=1, help="Classes per file (or window); detections per window."),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            min=0.0,
            max=1.0,
            help="Lowest score reported (default: 0.1 for detections, 0.5 for speech, none for classes).",
        ),
    ] = None,
    overlap: Annotated[
        float | None,
        typer.Option("--overlap", min=0.0, help="Seconds consecutive windows overlap (detections)."),
    ] = None,
    average: Annotated[
        bool,
        typer.Option(
            "--average",
            help="Detection models whose windows average (kahl-aed): one clip-level top-k per file, as upstream.",
        ),
    ] = False,
    windows: Annotated[
        bool, typer.Option("--windows", help="A per-window timeline as well (classification).")
    ] = False,
    min_speech_ms: Annotated[float, typer.Option("--min-speech-ms", min=0.0, help="Voice activity.")] = 250.0,
    min_silence_ms: Annotated[
        float, typer.Option("--min-silence-ms", min=0.0, help="Voice activity.")
    ] = 100.0,
    speech_pad_ms: Annotated[float, typer.Option("--speech-pad-ms", min=0.0, help="Voice activity.")] = 30.0,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="PNG: log-mel spectrogram with the scores over time.")
    ] = None,
    save_dir: Annotated[
        Path | None,
        typer.Option("--save-dir", help="--format npy: the folder for the .npy files (default: here)."),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Files run at once.")] = 1,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="Threads per runtime.")] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar on a terminal.")
    ] = True,
    reference_weights: Annotated[
        bool,
        typer.Option(
            "--reference-weights",
            help="The outputs were converted with --reference-weights (seeded weights: the mechanics, not the labels).",
        ),
    ] = False,
) -> None:
    """Run a model on audio files: clip-level classes, detections or speech segments, as the task needs."""
    from zoo.layout import default_output_dir
    from zoo.predict import Options, Request, VadRules, from_bundle, from_output
    from zoo.predict import predict as run_predict

    options = Options(
        top_k=top_k,
        threshold=threshold,
        windows=windows,
        average=average,
        vad=VadRules(min_speech_ms=min_speech_ms, min_silence_ms=min_silence_ms, speech_pad_ms=speech_pad_ms),
    )
    request = Request(
        paths=list(paths),
        artifact=artifact,
        fmt=fmt.lower(),
        options=options,
        overlap=overlap,
        plot=plot,
        jobs=jobs,
        threads=threads,
        progress=progress,
        save_dir=save_dir,
    )
    if bundle is not None:
        if name is not None or output_dir is not None:
            raise UsageError("--bundle runs a model inside the bundle: give --model NAME, not --name or -o.")
        with from_bundle(bundle, model, artifact, public_key) as chosen:
            if chosen.manifest.chain is not None:
                raise UsageError(
                    f"--bundle: {chosen.manifest.name} is a composite ({chosen.manifest.chain.embedder} runs "
                    "first), and a bundle holds it alone; predict it from an output folder (-o) where both "
                    "are converted."
                )
            text, code = run_predict(chosen, request)
    else:
        if name is None:
            raise UsageError(
                "zoo predict: give --name NAME (a converted catalog entry) or --bundle PATH --model NAME."
            )
        if model is not None or public_key is not None:
            raise UsageError("--model and --public-key go with --bundle.")
        entries = catalog(manifests)
        manifest = entries.get(name)
        out = output_dir or default_output_dir()
        if manifest.chain is not None:  # a composite: its embedder's artifact in front of its own
            from zoo.composite.runner import chosen_chain

            chosen = chosen_chain(manifest, entries, out, artifact, reference_weights)
        else:
            chosen = from_output(manifest, out, artifact, reference_weights)
        text, code = run_predict(chosen, request)
    typer.echo(text, nl=False)
    raise typer.Exit(code)
