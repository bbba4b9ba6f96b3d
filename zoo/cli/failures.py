"""One failure shape for every command that works through several models.

After its table, a command prints one line per model that failed (model, stage, what failed,
what to do) and per model it skipped, then a one-line summary; it exits 1, or 2 when every
failure was bad input. A paragraph naming each model twice is what this replaces.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import EXIT_FAILED, EXIT_USAGE, ZooError

if TYPE_CHECKING:
    from zoo.manifest import Manifest

# what an unreachable host looks like in zoo.sources' messages
_UNREACHABLE = ("cannot connect", "timed out", "connection reset", "connection refused")
MIRROR_HINT = (
    "give --mirror DIR_OR_URL (a folder or server with copies of the files, see `zoo mirror`), "
    "or --reference-weights for seeded weights in the upstream format"
)
_PATTERN = re.compile(r"[*?\[]")


@dataclass
class Failure:
    """One model that failed (or was skipped) at one stage, and what the user can do about it."""

    model: str
    stage: str
    message: str
    exit_code: int = EXIT_FAILED
    hint: str = ""
    skipped: bool = False


def failure(model: str, stage: str, message: str, exit_code: int = EXIT_FAILED) -> Failure:
    """A Failure with the model's name taken off the front of the message (it is in its own column)."""
    text = " ".join(message.split())
    prefix = f"{model}: "
    while text.startswith(prefix):
        text = text[len(prefix) :]
    hint = ""
    if any(marker in text.lower() for marker in _UNREACHABLE) and "--mirror" not in text:
        hint = MIRROR_HINT
    return Failure(model, stage or "-", text, exit_code, hint)


def literal_names(names: Iterable[str] | None, list_file: Path | None = None) -> set[str]:
    """The entries a user named one by one (not through --all or a pattern)."""
    values = [p.strip() for value in names or [] for p in value.split(",")]
    if list_file is not None:
        from zoo.catalog import read_list_file

        values += [p.strip() for p in read_list_file(list_file)]
    return {v for v in values if v and not _PATTERN.search(v)}


def split_unpublished(
    chosen: Sequence[Manifest],
    named: set[str],
    *,
    weights: Path | None,
    reference_weights: bool,
    ready: Callable[[Manifest], bool] = lambda manifest: False,
) -> tuple[list[Manifest], list[Failure]]:
    """Entries to run, and those skipped: no published weights, none given, not named one by one.

    A model named on its own still fails with the full explanation (the user asked for it);
    ``ready`` says a model needs no weights any more (`zoo quantize`: already converted).
    """
    if weights is not None or reference_weights:
        return list(chosen), []
    run: list[Manifest] = []
    skipped: list[Failure] = []
    for manifest in chosen:
        if manifest.weights.published or manifest.name in named or ready(manifest):
            run.append(manifest)
            continue
        fmt = manifest.weights.format or "the upstream checkpoint format"
        skipped.append(
            Failure(
                manifest.name,
                "source",
                "upstream publishes no weights",
                EXIT_USAGE,
                f"--weights PATH ({fmt}) or --reference-weights",
                skipped=True,
            )
        )
    return run, skipped


def report(failures: Sequence[Failure], total: int, *, unit: str = "models") -> None:
    """Print the per-model lines and the summary; raise the summary as the command's error if any failed."""
    skipped = [f for f in failures if f.skipped]
    failed = [f for f in failures if not f.skipped]
    for item in skipped:
        sys.stderr.write(f"zoo: {item.model}: skipped: {item.message}; to run it give {item.hint}.\n")
    for item in failed:
        todo = f" To do: {item.hint}." if item.hint else ""
        sys.stderr.write(f"zoo: {item.model}: {item.stage}: {item.message}{todo}\n")
    skip_note = f"; {len(skipped)} skipped (no published weights, see above)" if skipped else ""
    if failed:
        usage = all(f.exit_code == EXIT_USAGE for f in failed)
        sys.stderr.flush()
        raise ZooError(
            f"{len({f.model for f in failed})} of {total} {unit} failed{skip_note}.",
            exit_code=EXIT_USAGE if usage else EXIT_FAILED,
        )
    if skipped:
        sys.stderr.write(f"zoo: {total - len(skipped)} of {total} {unit} done{skip_note}.\n")
