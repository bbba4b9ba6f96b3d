"""Predictions as text: a table, JSON, CSV, BirdNET's CSV and Raven selection tables.

Every format takes the same results. Classification rows are (file, rank, label, score), or per
window with `--windows`; detection rows (file, start, end, label, confidence); voice-activity rows
(file, start, end). `birdnet` is BirdNET-Analyzer's CSV (Start (s), End (s), Scientific name,
Common name, Confidence, File), `raven` a Raven Pro selection table (tab-separated, one selection
per detection or speech segment), which bird researchers load into their tools.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from zoo.errors import UsageError
from zoo.predict.tasks import CLASSIFICATION, DETECTION, EMBEDDING, VOICE_ACTIVITY, FileResult

FORMATS = ("table", "json", "csv", "birdnet", "raven", "npy")
#: embedding values shown per window in a table (csv and json carry them all)
TABLE_VALUES = 4


def rows(task: str, results: Sequence[FileResult], windows: bool) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of the task's table, numbers unformatted."""
    found: list[list[Any]] = []
    if task == EMBEDDING:
        width = 0
        for r in results:
            if r.rows is None or r.starts is None:
                continue
            width = max(width, r.rows.shape[1])
            for start, values in zip(r.starts, r.rows, strict=True):
                found.append([str(r.path), float(start), *[float(v) for v in values]])
        return ["file", "start", *[f"e{i}" for i in range(width)]], found
    if task == DETECTION:
        for r in results:
            found += [[str(r.path), a, b, label, score] for a, b, label, score in r.detections]
        return ["file", "start", "end", "label", "confidence"], found
    if task == VOICE_ACTIVITY:
        for r in results:
            found += [[str(r.path), a, b] for a, b in r.segments]
        return ["file", "start", "end"], found
    if windows:
        for r in results:
            for w in r.timeline:
                found += [
                    [str(r.path), w["start"], w["end"], rank, t["label"], t["score"]]
                    for rank, t in enumerate(w["top"], 1)
                ]
        return ["file", "start", "end", "rank", "label", "score"], found
    for r in results:
        found += [[str(r.path), rank, label, score] for rank, (label, score) in enumerate(r.top, 1)]
    return ["file", "rank", "label", "score"], found


def _number(value: Any, header: str) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if header in ("start", "end") else f"{value:.4f}"
    return str(value)


def render(fmt: str, task: str, results: Sequence[FileResult], windows: bool, meta: dict[str, Any]) -> str:
    """The text to print for *fmt*; *meta* (model, artifact, why) goes into JSON."""
    if fmt == "json":
        return (
            json.dumps(
                {**meta, "task": task, "files": [as_dict(task, r, windows) for r in results]}, indent=2
            )
            + "\n"
        )
    if fmt == "npy":
        raise UsageError("--format npy writes files; zoo predict saves them (zoo.predict.command).")
    if task == EMBEDDING and fmt in ("table", "birdnet", "raven"):
        if fmt != "table":
            raise UsageError(
                f"--format {fmt}: {meta.get('model')} gives embeddings (use table, csv, json or npy)."
            )
        return embedding_table(results)
    if fmt in ("birdnet", "raven") and task == CLASSIFICATION:
        raise UsageError(
            f"--format {fmt}: a table of detections, for detection and voice-activity models; "
            f"{meta.get('model')} gives clip-level classes (use table, csv or json)."
        )
    if fmt == "birdnet":
        return birdnet_csv(task, results)
    if fmt == "raven":
        return raven_table(task, results, meta)
    header, found = rows(task, results, windows)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(found)
        return buffer.getvalue()
    return table(header, [[_number(v, h) for v, h in zip(row, header, strict=True)] for row in found])


def table(header: list[str], found: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in found)) if found else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in found]
    return "\n".join(lines) + "\n"


def embedding_table(results: Sequence[FileResult]) -> str:
    """Per window: its start, the embedding's L2 norm and its first values (csv/json/npy: all of them)."""
    header = ["file", "start", "dims", "norm", *[f"e{i}" for i in range(TABLE_VALUES)]]
    found = []
    for r in results:
        if r.rows is None or r.starts is None:
            continue
        for start, values in zip(r.starts, r.rows, strict=True):
            found.append(
                [str(r.path), f"{start:.2f}", str(values.size), f"{float((values**2).sum()) ** 0.5:.4f}"]
                + [f"{float(v):.4f}" for v in values[:TABLE_VALUES]]
            )
    return table(header, found)


def as_dict(task: str, r: FileResult, windows: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"file": str(r.path), "seconds": round(r.seconds, 6), "windows": r.windows}
    if task == EMBEDDING:
        rows_: Any = r.rows if r.rows is not None else []
        starts: Any = r.starts if r.starts is not None else []
        entry["embeddings"] = [
            {"start": float(s), "values": [float(v) for v in row]}
            for s, row in zip(starts, rows_, strict=True)
        ]
    elif task == CLASSIFICATION:
        entry["top"] = [{"label": label, "score": score} for label, score in r.top]
        if windows:
            entry["timeline"] = r.timeline
    elif task == DETECTION:
        entry["detections"] = [
            {"start": a, "end": b, "label": label, "confidence": score} for a, b, label, score in r.detections
        ]
    else:
        entry["segments"] = [{"start": a, "end": b} for a, b in r.segments]
        if windows and r.rows is not None:
            entry["probabilities"] = [float(p) for p in r.rows[:, 0]]
    return entry


def split_label(label: str) -> tuple[str, str]:
    """(scientific, common) name of a BirdNET label 'Genus species_Common Name'; other labels twice."""
    if "_" in label:
        scientific, common = label.split("_", 1)
        return scientific, common
    return label, label


def birdnet_csv(task: str, results: Sequence[FileResult]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Start (s)", "End (s)", "Scientific name", "Common name", "Confidence", "File"])
    for r in results:
        for a, b, label, score in _selections(task, r):
            scientific, common = split_label(label)
            writer.writerow([f"{a:.1f}", f"{b:.1f}", scientific, common, f"{score:.4f}", str(r.path)])
    return buffer.getvalue()


def _selections(task: str, r: FileResult) -> list[tuple[float, float, str, float]]:
    if task == VOICE_ACTIVITY:
        return [(a, b, "speech", 1.0) for a, b in r.segments]
    return list(r.detections)


def raven_table(task: str, results: Sequence[FileResult], meta: dict[str, Any]) -> str:
    """A Raven selection table: times within each file (Begin Path names it), the model's band."""
    high = meta.get("sample_rate", 0) / 2
    header = [
        "Selection",
        "View",
        "Channel",
        "Begin Time (s)",
        "End Time (s)",
        "Low Freq (Hz)",
        "High Freq (Hz)",
        "Species Code",
        "Common Name",
        "Confidence",
        "Begin Path",
        "File Offset (s)",
    ]
    lines = ["\t".join(header)]
    number = 0
    for r in results:
        for a, b, label, score in _selections(task, r):
            number += 1
            scientific, common = split_label(label)
            lines.append(
                "\t".join(
                    [
                        str(number),
                        "Spectrogram 1",
                        "1",
                        f"{a:.4f}",
                        f"{b:.4f}",
                        "0",
                        f"{high:.0f}",
                        scientific,
                        common,
                        f"{score:.4f}",
                        str(r.path),
                        f"{a:.4f}",
                    ]
                )
            )
    return "\n".join(lines) + "\n"
