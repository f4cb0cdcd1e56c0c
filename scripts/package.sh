#!/usr/bin/env bash
# Build the plugin zip for "Install from ZIP" and plugins.qgis.org: dist/ai_segmentation-<version>.zip.
# Needs only python3 (standard library) and git; no network. Check it with: python3 tools/check_package.py
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 tools/package.py "$@"
