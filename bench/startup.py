"""Start-up time of the catalog commands: `zoo --help`, `zoo list`, `zoo info --all --json`.

Runs each command N times in fresh processes and prints median and best wall time, plus the
frameworks each one imported (there must be none).

    .venv/bin/python bench/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = [["--help"], ["list"], ["list", "--json"], ["info", "--all", "--json"]]
HEAVY = ("torch", "tensorflow", "openvino", "onnxruntime", "nncf", "onnx", "keras")
PROBE = (
    "import sys, runpy\nsys.argv = ['zoo'] + sys.argv[1:]\n"
    "try:\n    runpy.run_module('zoo.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
    f"sys.stderr.write('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(f"{'command':28} {'median':>9} {'best':>9}  frameworks imported")
    for command in COMMANDS:
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "zoo.cli", *command], capture_output=True, check=True)
            times.append(time.perf_counter() - start)
        probe = subprocess.run([sys.executable, "-c", PROBE, *command], capture_output=True, text=True)
        heavy = probe.stderr.rsplit("HEAVY:", 1)[-1].strip() or "none"
        label = "zoo " + " ".join(command)
        print(f"{label:28} {statistics.median(times) * 1000:7.0f}ms {min(times) * 1000:7.0f}ms  {heavy}")


if __name__ == "__main__":
    main()
