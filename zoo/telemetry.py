"""Usage telemetry of the frameworks zoo drives is off in every zoo process.

OpenVINO's converter and NNCF send usage events through the `openvino_telemetry` package: a
forked helper process and network attempts that slowed conversions on a lossy network, held a
model folder's lock, and outlived a killed run. Both fall back to their own no-op stubs when
that package cannot be imported, so zoo makes it unimportable before any framework loads.
"""

from __future__ import annotations

import sys

BLOCKED = ("openvino_telemetry",)


def switch_off() -> None:
    """Make `import openvino_telemetry` fail (ImportError) in this process; the frameworks then use stubs."""
    for name in BLOCKED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
