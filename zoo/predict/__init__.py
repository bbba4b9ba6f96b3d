"""`zoo predict`: run a converted (or the source) model on audio files and report what the task asks.

The preprocessing is `zoo.frontends.prepare_inputs`, the code `zoo verify --audio` runs, applied
block by block so memory does not grow with a file's length; artifacts run with the settings verify
judged them with. One job per module:

- audio: finding files, reading them in blocks, the windows' geometry;
- model: which artifact (output folder or bundle) and opening it;
- run: windows through the runner (state carried for streams), files in parallel, progress;
- tasks: window scores -> clip top-k, detections, speech segments; vad: the segment rules;
- formats: table, JSON, CSV, BirdNET CSV, Raven selection tables; plot: the --plot picture;
- command: the command's flow.
"""

from __future__ import annotations

from zoo.audio_files import audio_files
from zoo.predict.audio import Geometry, blocks, geometry, probe
from zoo.predict.command import Request, predict
from zoo.predict.model import Chosen, from_bundle, from_output
from zoo.predict.tasks import FileResult, Options, task_of
from zoo.predict.vad import VadRules, speech_segments

__all__ = [
    "Chosen",
    "FileResult",
    "Geometry",
    "Options",
    "Request",
    "VadRules",
    "audio_files",
    "blocks",
    "from_bundle",
    "from_output",
    "geometry",
    "predict",
    "probe",
    "speech_segments",
    "task_of",
]
