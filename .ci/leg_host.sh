#!/usr/bin/env bash
# CI leg 1: Debian 12's QGIS 3.22 on this machine, installed as the README says; ruff; the suite; the
# plugin zip built, checked and installed into a fresh profile (.ci/package_check.sh, about 30 s).
# CI_VERSIONS_FILE (optional): where to write the versions tested.
set -euxo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3-qgis python3-gdal gdal-bin qgis python3-venv python3-pip \
  xvfb xauth debootstrap
/usr/bin/python3 -m venv --system-site-packages .venv
bash scripts/setup.sh
versions=$(.venv/bin/python .ci/versions.py)
if [ -n "${CI_VERSIONS_FILE:-}" ]; then echo "Debian 12 (this machine): $versions" > "$CI_VERSIONS_FILE"; fi
.venv/bin/ruff check .
bash .ci/suite.sh
bash .ci/package_check.sh
