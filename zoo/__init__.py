"""zoo: convert, verify, quantize and package audio-classification models."""

__version__ = "0.1.0"
