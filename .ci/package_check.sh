#!/usr/bin/env bash
# CI stage "package": build the plugin zip, check it as plugins.qgis.org does (upload rules, then bandit and
# detect-secrets with every enabled rule), then do what a user does with "Install from ZIP": unzip it into a
# fresh QGIS profile, enable it with qgis_process, list its algorithms and run segment_prompts with the tiny
# test models.
#
#   bash .ci/package_check.sh [REPO_ROOT]
#
# Needs REPO_ROOT/.venv (made by .ci/run / scripts/setup.sh, with onnxruntime) and Debian's qgis_process.
# Installs bandit and detect-secrets from PyPI into .venv (numpy pinned by constraints.txt). About 30 s.
set -euo pipefail
ROOT=$(cd "${1:-$(dirname "$0")/..}" && pwd)
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
QGIS_PROCESS=/usr/bin/qgis_process.bin  # Debian's /usr/bin/qgis_process wrapper fails on 3.22
[ -x "$PY" ] || { echo "package_check: no $PY: run bash scripts/setup.sh first" >&2; exit 2; }
[ -x "$QGIS_PROCESS" ] || { echo "package_check: no $QGIS_PROCESS: apt-get install qgis" >&2; exit 2; }
[ -f constraints.txt ] || echo "numpy==$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')" > constraints.txt

echo "== package: build"
rm -rf dist
bash scripts/package.sh
VERSION=$(python3 -c 'import configparser as c; p = c.ConfigParser(interpolation=None); p.read("metadata.txt"); print(p["general"]["version"])')
ZIP="dist/ai_segmentation-$VERSION.zip"
[ "$(ls dist)" = "ai_segmentation-$VERSION.zip" ] || { echo "package_check: dist/ holds $(ls dist), not only $ZIP" >&2; exit 1; }

echo "== package: upload rules and security scan"
"$PY" -m pip install -q --disable-pip-version-check -c constraints.txt bandit detect-secrets
"$PY" tools/check_package.py "$ZIP" --repo . --scan require

echo "== package: Install from ZIP into a fresh profile"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PLUGINS="$WORK/profile/profiles/default/python/plugins"
mkdir -p "$PLUGINS"
python3 -m zipfile -e "$ZIP" "$PLUGINS"
export QT_QPA_PLATFORM=offscreen QGIS_CUSTOM_CONFIG_PATH="$WORK/profile" XDG_CACHE_HOME="$WORK/cache"
# onnxruntime lives in the venv, as it would in the profile's private folder after the setup dialog.
PYTHONPATH=$("$PY" -c 'import os, site; print(os.pathsep.join(site.getsitepackages()))')
export PYTHONPATH
cd "$WORK"  # nothing of the checkout is importable from here: the plugin runs from the zip's files
"$QGIS_PROCESS" plugins enable ai_segmentation
"$QGIS_PROCESS" list > algorithms.txt
for alg in encode segment_prompts segment_everything; do
  grep -q "aisegmentation:$alg\b" algorithms.txt || { echo "package_check: aisegmentation:$alg is not listed" >&2; exit 1; }
done
"$PY" - <<'EOF'
"""A 3-band GeoTIFF in EPSG:32633 with a bright disc, and two prompt groups (points) in a GeoPackage."""
import numpy as np
from osgeo import gdal, ogr, osr

srs = osr.SpatialReference()
srs.ImportFromEPSG(32633)
ds = gdal.GetDriverByName("GTiff").Create("ortho.tif", 400, 300, 3, gdal.GDT_Byte)
ds.SetGeoTransform((500000.0, 0.5, 0.0, 5000000.0, 0.0, -0.5))
ds.SetProjection(srs.ExportToWkt())
yy, xx = np.mgrid[:300, :400]
for i in range(3):
    band = np.random.default_rng(i).integers(0, 90, (300, 400), dtype=np.uint8)
    band[np.hypot(xx - 120, yy - 150) < 50] = 230 - 40 * i
    ds.GetRasterBand(i + 1).WriteArray(band)
ds = None
gpkg = ogr.GetDriverByName("GPKG").CreateDataSource("prompts.gpkg")
layer = gpkg.CreateLayer("points", srs, ogr.wkbPoint)
layer.CreateField(ogr.FieldDefn("obj", ogr.OFTString))
layer.CreateField(ogr.FieldDefn("label", ogr.OFTInteger))
for obj, col, row, label in (("disc", 120, 150, 1), ("disc", 300, 60, 0), ("field", 320, 220, 1)):
    f = ogr.Feature(layer.GetLayerDefn())
    f.SetField("obj", obj)
    f.SetField("label", label)
    f.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT({500000 + col * 0.5} {5000000 - row * 0.5})"))
    layer.CreateFeature(f)
layer = gpkg = None
EOF
"$QGIS_PROCESS" run aisegmentation:segment_prompts -- INPUT="$WORK/ortho.tif" \
  PROMPTS="$WORK/prompts.gpkg|layername=points" GROUP_FIELD=obj \
  ENCODER="$ROOT/tests/fixtures/tiny.encoder.preproc.onnx" DECODER="$ROOT/tests/fixtures/tiny.decoder.onnx" \
  OUTPUT="$WORK/segments.gpkg"
"$PY" - <<'EOF'
"""The output holds one non-empty polygon per prompt group, inside the raster, in its CRS."""
from osgeo import ogr

ds = ogr.Open("segments.gpkg")
layer = ds.GetLayer(0)
raster = ogr.CreateGeometryFromWkt("POLYGON((500000 4999850,500200 4999850,500200 5000000,500000 5000000,500000 4999850))")
rows = [(f.GetField("prompt_group"), f.GetGeometryRef().Clone()) for f in layer]
epsg = layer.GetSpatialRef().GetAuthorityCode(None)
problems = [] if epsg == "32633" else [f"CRS EPSG:{epsg}, not the raster's 32633"]
if sorted(g for g, _ in rows) != ["disc", "field"]:
    problems.append(f"groups {sorted(g for g, _ in rows)}, expected disc and field")
for group, geom in rows:
    name = ogr.GeometryTypeToName(geom.GetGeometryType())
    if "Polygon" not in name or geom.IsEmpty() or geom.GetArea() <= 0 or not raster.Buffer(1e-6).Contains(geom):
        problems.append(f"group {group}: {name}, area {geom.GetArea():.2f} m2, not a polygon inside the raster")
ds = None
if problems:
    raise SystemExit("package_check: segment_prompts output: " + "; ".join(problems))
print(f"segment_prompts from the installed zip: {len(rows)} polygons, "
      f"{', '.join(f'{g} {geom.GetArea():.1f} m2' for g, geom in rows)}")
EOF
echo "== package: OK ($ZIP, $(stat -c %s "$ROOT/$ZIP") bytes)"
