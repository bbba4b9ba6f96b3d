"""Versioned model bundles: assemble, checksum, sign, tar reproducibly, verify, publish, pull.

A bundle is a folder `<bundle>-<version>/` (and a `.tar.gz` of it) made from the
verified outputs of `zoo convert` / `zoo verify`:

    bundle.json                      what is inside, where it came from, how it was checked (record.py)
    SHA256SUMS                       every file but itself and the signature (`sha256sum -c` format)
    bundle.sig                       OpenSSF model-signing signature over every other file (optional)
    models/<name>/MODEL_CARD.md      model card
    models/<name>/labels.txt         class names in output order
    models/<name>/report.json        the verification report the artifacts passed
    models/<name>/onnx/, FP32/ ...   the artifacts, laid out as in the output folder
    models/<name>/test_data/         golden vectors (ONNX test-data layout)

One job per module: names (file names, version rules, safe paths), record (bundle.json),
inputs (a model's verified outputs), assemble (building a bundle), model_card, sign,
archive (deterministic tar.gz), check (verifying), targets / oci / publishing (publish,
list, pull). The names below are what the command line uses.
"""

from __future__ import annotations

from zoo.bundle.assemble import BundleResult, build_bundle
from zoo.bundle.check import VerifyResult, verify_bundle
from zoo.bundle.inputs import read_verified_report
from zoo.bundle.names import BundleCheckError
from zoo.bundle.publishing import Published, Pulled, list_versions, publish, pull
from zoo.bundle.record import BundleRecord
from zoo.bundle.sign import keygen

__all__ = [
    "BundleCheckError",
    "BundleRecord",
    "BundleResult",
    "Published",
    "Pulled",
    "VerifyResult",
    "build_bundle",
    "keygen",
    "list_versions",
    "publish",
    "pull",
    "read_verified_report",
    "verify_bundle",
]
