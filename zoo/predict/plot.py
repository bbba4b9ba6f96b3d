"""`--plot FILE.png`: the file's log-mel spectrogram above the top classes' scores over time.

As YAMNet's visualization notebook draws it: the spectrogram on top, beneath it the scores of the
classes that score highest over the file, one line each, on the same time axis. Detection models
get their detections as boxes on the spectrogram (labelled), voice-activity models their speech
regions shaded. The spectrogram is computed block by block at the file's own rate and pooled to at
most MAX_COLUMNS columns, so a long file makes a picture of bounded size. matplotlib is imported
here only (the Agg backend, no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoo.errors import UsageError

if TYPE_CHECKING:
    from zoo.predict.tasks import FileResult

MAX_COLUMNS = 1600
MEL_BANDS = 64
N_FFT = 1024
LINES = 5


def log_mel_image(path: Path, seconds: float) -> tuple[np.ndarray, int]:
    """(log-mel power (bands, columns), the file's rate), read in blocks and pooled over time."""
    import soundfile
    from scipy.signal import spectrogram

    from zoo.frontends.logmel import mel_filters

    info = soundfile.info(str(path))
    rate = int(info.samplerate)
    filters = mel_filters(rate, N_FFT, MEL_BANDS, 0.0, rate / 2).astype(np.float64)
    frames_total = max(1, int(info.frames) // (N_FFT // 2))
    pool = max(1, -(-frames_total // MAX_COLUMNS))
    columns: list[np.ndarray] = []
    carry = np.zeros((MEL_BANDS, 0))
    block = (N_FFT // 2) * pool * 256
    for data in soundfile.blocks(str(path), blocksize=block, dtype="float32", always_2d=True):
        mono = data.mean(axis=1).astype(np.float64)
        if mono.shape[0] < N_FFT:
            mono = np.pad(mono, (0, N_FFT - mono.shape[0]))
        _, _, power = spectrogram(mono, nperseg=N_FFT, noverlap=N_FFT // 2, mode="psd", window="hann")
        mel = filters @ power
        carry = np.concatenate([carry, mel], axis=1)
        whole = carry.shape[1] // pool * pool
        if whole:
            columns.append(carry[:, :whole].reshape(MEL_BANDS, -1, pool).mean(axis=2))
            carry = carry[:, whole:]
    if carry.shape[1]:
        columns.append(carry.mean(axis=1, keepdims=True))
    image = np.concatenate(columns, axis=1)
    if image.shape[1] > MAX_COLUMNS:  # blocks add a few frames at their edges: pool once more
        step = -(-image.shape[1] // MAX_COLUMNS)
        whole = image.shape[1] // step * step
        image = image[:, :whole].reshape(MEL_BANDS, -1, step).mean(axis=2)
    return np.log10(image + 1e-10), rate


def require_matplotlib() -> None:
    """Fail before any work when --plot cannot draw (exit 2)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(
            "--plot needs matplotlib, which is not installed in this environment; install it "
            "(pip install matplotlib) or leave --plot out."
        )


def plot(result: FileResult, task: str, labels: list[str], target: Path, title: str) -> None:
    """Draw one file's picture into *target* (PNG), written atomically."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo.atomic import write_bytes
    from zoo.predict.tasks import DETECTION, VOICE_ACTIVITY

    image, rate = log_mel_image(result.path, result.seconds)
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]}, dpi=100
    )
    low = np.percentile(image, 5)
    top.imshow(
        image,
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0, result.seconds, 0, MEL_BANDS),
        vmin=low,
        vmax=image.max(),
    )
    top.set_ylabel("mel band")
    top.set_title(title)
    if task == DETECTION:
        stacked: dict[float, int] = {}
        for a, b, label, score in result.detections:
            line = stacked[a] = stacked.get(a, -1) + 1  # the labels of one window one under the other
            top.add_patch(
                plt.Rectangle((a, 1), b - a, MEL_BANDS - 2, fill=False, edgecolor="cyan", linewidth=1.5)
            )
            top.text(
                a + 0.02 * (b - a),
                MEL_BANDS - 3 - 4 * line,
                f"{label.split('_')[-1]} {score:.2f}",
                color="cyan",
                fontsize=8,
                va="top",
            )
    if task == VOICE_ACTIVITY:
        for a, b in result.segments:
            top.axvspan(a, b, fill=False, edgecolor="lime", linewidth=1.5)
            bottom.axvspan(a, b, color="lime", alpha=0.25)
    if result.rows is not None and result.starts is not None and len(result.rows):
        # each window's score holds until the next window starts (the last one until the file ends)
        rows = np.vstack([result.rows, result.rows[-1:]])
        times = np.append(result.starts, result.seconds)
        if task == VOICE_ACTIVITY:
            bottom.plot(times, rows[:, 0], color="black", linewidth=1, label="speech probability")
        else:
            best = np.argsort(-rows.max(axis=0), kind="stable")[:LINES]
            for index in best:
                name = labels[index] if index < len(labels) else f"class_{index}"
                bottom.step(times, rows[:, index], where="post", label=name.split("_")[-1])
        bottom.legend(loc="upper right", fontsize=7)
    bottom.set_ylim(0, 1.02)
    bottom.set_ylabel("score")
    bottom.set_xlabel("time (s)")
    bottom.set_xlim(0, result.seconds)
    figure.tight_layout()
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    write_bytes(Path(target), buffer.getvalue())
    Path(target).chmod(0o644)  # a picture to share, not the private temporary file it was written as
