"""Where every stage writes: the output folder layout shared by all commands.

<out>/<name>/source/            verified source files
<out>/<name>/onnx/<name>.onnx   ONNX export
<out>/<name>/<PRECISION>/       OpenVINO IR (FP32, FP16, INT8)
<out>/<name>/test_data/         golden vectors (ONNX test-data layout)
<out>/<name>/report.json        verification report
<out>/<name>/MODEL_CARD.md      model card
<out>/<name>/stamps/<stage>.json  what each stage was made from
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_OUTPUT = "ZOO_OUT"
DEFAULT_OUTPUT = Path("zoo-out")


def default_output_dir() -> Path:
    return Path(os.environ.get(ENV_OUTPUT) or DEFAULT_OUTPUT)


@dataclass(frozen=True)
class ModelLayout:
    """Paths of one model's outputs under <out>/<name>/."""

    out: Path
    name: str

    @property
    def root(self) -> Path:
        return self.out / self.name

    @property
    def source_dir(self) -> Path:
        return self.root / "source"

    @property
    def onnx_dir(self) -> Path:
        return self.root / "onnx"

    @property
    def onnx(self) -> Path:
        return self.onnx_dir / f"{self.name}.onnx"

    def ir_dir(self, precision: str) -> Path:
        return self.root / precision

    def ir_xml(self, precision: str) -> Path:
        return self.ir_dir(precision) / f"{self.name}.xml"

    def ir_bin(self, precision: str) -> Path:
        return self.ir_dir(precision) / f"{self.name}.bin"

    def artifact(self, kind: str) -> Path:
        """'onnx' or a precision -> the file a runtime loads."""
        return self.onnx if kind == "onnx" else self.ir_xml(kind)

    @property
    def test_data(self) -> Path:
        return self.root / "test_data"

    @property
    def report(self) -> Path:
        return self.root / "report.json"

    @property
    def model_card(self) -> Path:
        return self.root / "MODEL_CARD.md"

    def stamp(self, stage: str) -> Path:
        return self.root / "stamps" / f"{stage}.json"
