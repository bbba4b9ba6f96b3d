"""A composite verified end to end: the chain of artifacts against the chain of source frameworks.

Each stage is verified on its own by `zoo verify` (the embedder on audio probes, the head on
synthetic codes). Here whole waveform windows go through both chains: the sources (the embedder's
source framework, the numpy postprocessor, the head's source framework) and, for each artifact
kind both stages have (onnx, FP32, FP16), the embedder's artifact, the same postprocessor and the
head's artifact of that kind.

The tolerance, per window (one head input) and artifact kind:

1. Embeddings. The embedder's artifact must stay within its own derived budget on these windows,
   b_e = budget(kind, |e_src - e_f64|, scale, profile) (zoo.numerics; e_f64 the embedder's
   float64 evaluation): |e_art - e_src| <= b_e.
2. Codes. The PCA is linear: a change of at most b_e in every embedding value moves component j
   by at most s_j = b_e * sum_i |V[j, i]| (V the eigenvectors). Codes are a monotone step function
   (clip, scale by 255/4, truncate), so the codes an honest artifact can give lie between the codes
   of y_src - s and y_src + s (postprocess.reachable). Where y_src sits within s_j of a level
   boundary the code may flip by a level; anywhere else it must be identical. A code outside that
   range is a failure: the embedder moved further than its budget allows.
3. Outputs. With x_src, x_art the head inputs of the two chains:
       |head_art(x_art) - head_src(x_src)|
         <= |head_art(x_art) - head_src(x_art)| + |head_src(x_art) - head_src(x_src)|
         <=  b_h(x_art)                          + flip_effect
   b_h is the head's own derived budget evaluated on the artifact chain's inputs (the head's
   float32 error against its float64 evaluation on x_art), flip_effect the measured response of
   the SOURCE head to the flips admitted in step 2 (zero when no code flipped). A flip costs at
   most one level, 1/128 of the input, but its effect through the head depends on the weights,
   so it is measured rather than bounded by hand: the source head is the reference of what a
   one-level change does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.composite.postprocess import PcaParams, reachable
from zoo.composite.runner import Stages, parameters_path, resolve, window_geometry
from zoo.layout import ModelLayout

if TYPE_CHECKING:
    from zoo.manifest import Manifest

#: standard probes that go through the whole chain (each one head window, ten VGGish examples)
CHAIN_PROBES = ("zeros", "white-noise", "pink-noise", "chirp", "am-tone")
#: artifact kinds with a numeric budget; INT8 of the head is judged by its own agreement metrics
CHAIN_KINDS = ("onnx", "FP32", "FP16")

Log = Callable[[str], None]


def converted(stages: Stages, out: Path) -> str | None:
    """Why the chain cannot be checked in *out* (a stage not converted there), or None."""
    for manifest in (stages.embedder, stages.head):
        layout = ModelLayout(Path(out), manifest.name)
        if not (layout.source_dir / "SOURCES.json").is_file() or not layout.onnx.is_file():
            return (
                f"{manifest.name} is not converted in {out} (zoo convert --name {stages.head.name} --chain)"
            )
    return None


def _windows(stages: Stages, seed: int) -> tuple[list[str], list[np.ndarray]]:
    from zoo.probes import probe_set

    length, _ = window_geometry(stages.head)
    rate = stages.head.audio.sample_rate
    probes = [p for p in probe_set(rate, length / rate, "standard", seed) if p.name in CHAIN_PROBES]
    return [p.name for p in probes], [p.audio[:length] for p in probes]


def verify_chain(
    head: Manifest, out: Path, *, seed: int = 0, threads: int | None = None, log: Log = print
) -> dict[str, Any]:
    """The `chain` section of the head's report: per artifact kind, the three checks above."""
    from zoo.catalog import Catalog
    from zoo.frontends import prepare_inputs
    from zoo.numerics import budget, float64_model, reduction_profile, scale_of
    from zoo.runtimes import open_artifact, open_source

    assert head.path is not None
    stages = resolve(head, Catalog(head.path.parent))
    missing = converted(stages, out)
    if missing is not None:
        return {"checked": False, "reason": missing}
    embedder = stages.embedder
    e_layout, h_layout = ModelLayout(Path(out), embedder.name), ModelLayout(Path(out), head.name)
    pca = PcaParams.read(parameters_path(stages, out), int(embedder.main_output.shape[-1]))
    names, windows = _windows(stages, seed)
    log(
        f"{head.name}: chain {embedder.name} -> {head.chain.postprocess if head.chain else ''} -> {head.name}: "
        f"{len(windows)} windows"
    )
    e_out, h_out = embedder.main_output, head.main_output
    rate = embedder.audio.sample_rate
    feeds = [prepare_inputs(embedder, window, rate) for window in windows]

    e_src_runner = open_source(embedder, out, threads=threads)
    h_src_runner = open_source(head, out, threads=threads)
    e_f64 = float64_model(embedder, e_src_runner.model, e_layout.onnx)
    h_f64 = float64_model(head, h_src_runner.model, h_layout.onnx)
    e_profile, h_profile = reduction_profile(e_layout.onnx), reduction_profile(h_layout.onnx)

    def embed(runner: Any, calls: list[dict[str, np.ndarray]]) -> np.ndarray:
        return np.stack([np.asarray(runner.run(f)[e_out.name], np.float64).reshape(-1) for f in calls])

    spec = head.inputs[0]
    static = [d if isinstance(d, int) else 1 for d in spec.shape]
    assert head.chain is not None

    def head_input(codes: np.ndarray) -> dict[str, np.ndarray]:
        from zoo.composite.postprocess import dequantize

        return {spec.name: dequantize(codes, head.chain.offset, head.chain.scale).reshape(static)}  # type: ignore[union-attr]

    def score(runner: Any, codes: np.ndarray) -> np.ndarray:
        return np.asarray(runner.run(head_input(codes))[h_out.name], np.float64).reshape(-1)

    source = []
    for calls in feeds:
        e_src = embed(e_src_runner, calls)
        e64 = embed(e_f64, calls)
        y_src = pca.project(e_src)
        q_src = pca.codes(e_src)
        source.append((e_src, e64, y_src, q_src, score(h_src_runner, q_src)))

    kinds = [k for k in CHAIN_KINDS if e_layout.artifact(k).is_file() and h_layout.artifact(k).is_file()]
    results: dict[str, Any] = {}
    for kind in kinds:
        e_runner = open_artifact(e_layout.artifact(kind), kind, hint="f32", threads=threads, exact=True)
        h_runner = open_artifact(h_layout.artifact(kind), kind, hint="f32", threads=threads, exact=True)
        rows: list[dict[str, Any]] = []
        for name, calls, (e_src, e64, y_src, q_src, o_src) in zip(names, feeds, source, strict=True):
            e_art = embed(e_runner, calls)
            b_e = budget(kind, float(np.abs(e_src - e64).max()), scale_of(e_out.kind, e64), e_profile)
            e_err = float(np.abs(e_art - e_src).max())
            low, high = reachable(y_src, pca.slack(np.full(len(e_src), b_e)))
            q_art = pca.codes(e_art)
            differ = int((q_art != q_src).sum())
            unexplained = int(((q_art < low) | (q_art > high)).sum())
            o_art = score(h_runner, q_art)
            o_src_on_art = score(h_src_runner, q_art)
            o64_on_art = np.asarray(h_f64.run(head_input(q_art))[h_out.name], np.float64).reshape(-1)
            b_h = budget(
                kind,
                float(np.abs(o_src_on_art - o64_on_art).max()),
                scale_of(h_out.kind, o64_on_art),
                h_profile,
            )
            flip_effect = float(np.abs(o_src_on_art - o_src).max())
            error = float(np.abs(o_art - o_src).max())
            allowed = b_h + flip_effect
            rows.append(
                {
                    "probe": name,
                    "embedding_error": e_err,
                    "embedding_budget": b_e,
                    "codes_differ": differ,
                    "codes_unexplained": unexplained,
                    "max_code_step": int(np.abs(q_art.astype(int) - q_src.astype(int)).max()),
                    "error": error,
                    "head_budget": b_h,
                    "flip_effect": flip_effect,
                    "allowed": allowed,
                    "passed": e_err <= b_e and unexplained == 0 and error <= allowed,
                }
            )
        worst = max(rows, key=lambda r: r["error"] / r["allowed"] if r["allowed"] > 0 else np.inf)
        results[kind] = {
            "passed": all(r["passed"] for r in rows),
            "error": max(r["error"] for r in rows),
            "allowed": worst["allowed"],
            "used": worst["error"] / worst["allowed"]
            if worst["allowed"] > 0
            else (0.0 if worst["error"] == 0 else float("inf")),
            "codes_differ": sum(r["codes_differ"] for r in rows),
            "codes_unexplained": sum(r["codes_unexplained"] for r in rows),
            "embedding_error": max(r["embedding_error"] for r in rows),
            "probes": rows,
        }
        log(
            f"{head.name}: chain {kind}: max_abs {results[kind]['error']:.3g} of {results[kind]['allowed']:.3g} allowed, "
            f"{results[kind]['codes_differ']} codes differ ({results[kind]['codes_unexplained']} unexplained)"
            f"{'' if results[kind]['passed'] else '  FAILED'}"
        )
    return {
        "checked": True,
        "embedder": embedder.name,
        "postprocess": head.chain.postprocess,
        "windows": names,
        "seconds_per_window": window_geometry(head)[0] / rate,
        "reference": {"embedder": embedder.framework, "postprocess": "numpy float64", "head": head.framework},
        "artifacts": results,
        "passed": all(r["passed"] for r in results.values()),
    }


def chain_failures(head: Manifest, section: dict[str, Any]) -> list[str]:
    """One line per failed kind, in verify's '<model>: <artifact>: <what>' form."""
    found = []
    for kind, entry in section.get("artifacts", {}).items():
        if entry["passed"]:
            continue
        bad = [r for r in entry["probes"] if not r["passed"]]
        first = bad[0]
        found.append(
            f"{head.name}: chain {kind}: window {first['probe']!r}: output error {first['error']:.3g} "
            f"(allowed {first['allowed']:.3g}), embedding error {first['embedding_error']:.3g} "
            f"(budget {first['embedding_budget']:.3g}), {first['codes_unexplained']} codes beyond what that budget allows"
        )
    return found
