#!/usr/bin/env bash
# The main job on the catalog entries that work offline.
set -euo pipefail
out=${1:-zoo-out}
zoo=.venv/bin/zoo
echo "== zoo list"
$zoo list
echo "== zoo info (every entry)"
$zoo info --all
