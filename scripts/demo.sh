#!/usr/bin/env bash
# Set up (QGIS, .venv), then run the plugin's main job headless: see tools/demo.py.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
QT_QPA_PLATFORM=offscreen exec .venv/bin/python tools/demo.py "$@"
