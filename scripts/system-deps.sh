#!/usr/bin/env bash
# Install the Debian packages zoo's tests use, when missing and when we may (root with apt-get).
set -euo pipefail
packages=(espeak-ng)
packages+=(docker-registry)  # a local OCI registry for the publish/pull tests (scripts/registry.sh)
missing=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "system-deps: missing ${missing[*]}; install them with your package manager (tests that need them are skipped)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
