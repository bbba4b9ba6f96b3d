"""zoo: convert, verify, quantize and package audio-classification models."""

from zoo.telemetry import switch_off as _switch_off_telemetry

__version__ = "0.1.0"

_switch_off_telemetry()  # before any framework is imported: zoo.telemetry says why
