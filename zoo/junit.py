"""`zoo verify --junit FILE`: parity results as JUnit XML, which CI systems show like test results.

One test suite per model; one test case per artifact and output (and per upstream expectation),
named `<artifact> <output>`; a failed case carries the measured error and its budget (or the
agreement figure and its minimum) in its message. A model that could not be verified at all is one
errored case. The file is written atomically.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.atomic import write_bytes


def _case(suite: ET.Element, classname: str, name: str, seconds: float = 0.0) -> ET.Element:
    return ET.SubElement(suite, "testcase", {"classname": classname, "name": name, "time": f"{seconds:.3f}"})


def _number(value: Any) -> str:
    return "n/a" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))


def output_cases(report: Mapping[str, Any]) -> Iterable[tuple[str, bool | None, str]]:
    """(case name, passed or None when not judged, message) for every artifact output of a report."""
    for kind, entry in report.get("artifacts", {}).items():
        outputs = entry.get("outputs") or {}
        if not outputs:  # a report without per-output verdicts: one case for the artifact
            failures = entry.get("failures") or []
            text = "; ".join(str(f.get("rule", f)) for f in failures)
            yield kind, bool(entry.get("passed")), text
            continue
        for output, verdict in outputs.items():
            parts = [
                f"{rule}: measured {_number(check.get('measured'))}, limit {_number(check.get('limit'))}"
                for rule, check in (verdict.get("checks") or {}).items()
                if check.get("passed") is False
            ]
            yield f"{kind} {output}", verdict.get("passed"), "; ".join(parts)
    for item in report.get("expectations", []):
        name = f"expectation {item.get('probe')} -> {item.get('label')}"
        passed = item.get("passed")
        yield name, passed, f"ranked {item.get('rank')}, expected within the top {item.get('top_k')}"


def write_junit(path: Path, reports: Sequence[Mapping[str, Any]], errors: Mapping[str, str]) -> None:
    """Write the JUnit XML of a verify run: *reports* that ran, *errors* of models that could not."""
    root = ET.Element("testsuites", {"name": "zoo verify"})
    total = failed = skipped = errored = 0
    for report in reports:
        model = str(report.get("model"))
        suite = ET.SubElement(root, "testsuite", {"name": model})
        counts = {"tests": 0, "failures": 0, "skipped": 0, "errors": 0}
        for name, passed, message in output_cases(report):
            case = _case(suite, f"zoo.verify.{model}", name)
            counts["tests"] += 1
            if passed is None:
                ET.SubElement(case, "skipped", {"message": message or "not judged"})
                counts["skipped"] += 1
            elif not passed:
                element = ET.SubElement(case, "failure", {"message": message or "failed", "type": "parity"})
                element.text = message
                counts["failures"] += 1
        suite.attrib.update({k: str(v) for k, v in counts.items()})
        suite.set("time", f"{float(report.get('seconds') or 0.0):.3f}")
        total += counts["tests"]
        failed += counts["failures"]
        skipped += counts["skipped"]
    for model, message in errors.items():
        suite = ET.SubElement(root, "testsuite", {"name": model, "tests": "1", "errors": "1"})
        case = _case(suite, f"zoo.verify.{model}", "verify")
        element = ET.SubElement(case, "error", {"message": message, "type": "error"})
        element.text = message
        total += 1
        errored += 1
    root.attrib.update(
        {"tests": str(total), "failures": str(failed), "skipped": str(skipped), "errors": str(errored)}
    )
    ET.indent(root)
    write_bytes(path, ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")
