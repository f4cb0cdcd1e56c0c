#!/usr/bin/env bash
# Idempotent developer setup: QGIS (Debian packages, needs root), then .venv with the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c "import qgis.core, osgeo.gdal" 2>/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "PyQGIS is missing: run as root, or: sudo apt-get install python3-qgis python3-gdal gdal-bin qgis" >&2
    exit 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    python3-qgis python3-gdal gdal-bin qgis python3-venv python3-pip xvfb xauth
fi
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
# Pin the numpy QGIS and GDAL were built against, so pip never upgrades it under them.
echo "numpy==$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')" > constraints.txt
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -r requirements-dev.txt
