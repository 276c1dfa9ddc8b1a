#!/usr/bin/env bash
# Installs what c3 needs to build and test on Debian 12. Idempotent: apt-get skips what is there.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS=(build-essential cmake ninja-build libtorch-dev nlohmann-json3-dev libcli11-dev libfmt-dev
      libpcre2-dev libutf8proc-dev liblzma-dev libopenblas0-pthread libgtest-dev libgmock-dev libbenchmark-dev libgloo-dev libxxhash-dev
      libcpp-httplib-dev libssl-dev gnuplot-nox xz-utils
      pybind11-dev python3-dev python3-torch python3-pytest python3-venv python3-setuptools python3-wheel)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
