"""The plugin's main job, end to end, without the GUI: raster -> encode -> clicks -> polygons -> GeoPackage.

Uses the real SAM models in models/ when there are any; otherwise says so and uses the
tiny UNTRAINED test model from tests/fixtures/, whose masks are meaningless but which
runs every step. Run through ``bash scripts/demo.sh`` (or ``.venv/bin/python tools/demo.py``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".demo"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def find_models() -> tuple:
    """``(encoder, decoder, label)``: a real pair from models/, else the tiny fixtures."""
    from core.models.model_manager import best_pair, discover

    pair = best_pair(discover([ROOT / "models"], cache_path=OUT / "model_hashes.json"))
    if pair:
        return pair[0], pair[1], "SAM"
    print("No SAM model in models/ (see models/README.md): using the tiny UNTRAINED test model.\n"
          "Its masks are random blobs; every step below still runs for real.\n")
    fx = ROOT / "tests" / "fixtures"
    return str(fx / "tiny.encoder.preproc.onnx"), str(fx / "tiny.decoder.onnx"), "UNTRAINED tiny test model"


def make_raster(path: Path) -> None:
    """A 2500 x 1800 px RGB orthophoto-like GeoTIFF in UTM 33N (0.5 m pixels) with fields and roofs."""
    from osgeo import gdal, osr

    h, w = 1800, 2500
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([60 + xx % 40, 110 + (yy // 200) * 8, 50 + (xx + yy) % 30], -1).astype(np.uint8)
    for i, (cx, cy, r) in enumerate([(600, 500, 140), (1200, 900, 220), (1900, 400, 120), (1000, 1500, 180)]):
        roof = (abs(xx - cx) < r) & (abs(yy - cy) < r * 0.7)
        img[roof] = (200 - 30 * i, 70 + 20 * i, 60)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, 3, gdal.GDT_Byte, ["TILED=YES"])
    ds.SetGeoTransform((500000.0, 0.5, 0.0, 5400000.0, 0.0, -0.5))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    for b in range(3):
        ds.GetRasterBand(b + 1).WriteArray(img[..., b])
    ds = None


def main() -> None:
    from qgis.core import QgsApplication, QgsCoordinateReferenceSystem

    from core.output.output_store import ObjectAttributes, OutputStore, to_qgs_geometry
    from core.polygon_exporter import mask_to_polygons
    from core.raster.raster_source import RasterSource
    from core.segment.embedding_cache import EmbeddingCache
    from core.segment.segmenter import MapPrompt, NotEncodedError, RasterSegmenter

    OUT.mkdir(exist_ok=True)
    app = QgsApplication([], False)
    app.initQgis()
    encoder, decoder, label = find_models()
    print(f"encoder: {encoder}\ndecoder: {decoder}")
    raster = OUT / "sample_utm33n.tif"
    make_raster(raster)
    source = RasterSource.open(str(raster))
    print(f"raster: {raster.name} {source.width}x{source.height} px, bands {source.bands}")
    segmenter = RasterSegmenter(source, encoder, decoder, EmbeddingCache(str(OUT / "cache")))
    gpkg = OUT / "segments.gpkg"
    gpkg.unlink(missing_ok=True)  # the demo's own scratch output: each run starts afresh
    store = OutputStore(str(gpkg), "segments", QgsCoordinateReferenceSystem("EPSG:32633"))
    x0, y0 = 500000.0, 5400000.0  # top-left corner; a pixel is 0.5 m
    prompts = {
        "roof (1 click)": MapPrompt(points=((x0 + 300, y0 - 250),), labels=(1,)),
        "roof (include + exclude)": MapPrompt(points=((x0 + 600, y0 - 450), (x0 + 640, y0 - 450)), labels=(1, 0)),
        "roof (box)": MapPrompt(box=(x0 + 890, y0 - 260, x0 + 1010, y0 - 140)),
    }
    for name, prompt in prompts.items():
        t = time.perf_counter()
        while True:
            try:
                seg = segmenter.segment(prompt)
                break
            except NotEncodedError as need:
                t_enc = time.perf_counter()
                segmenter.encode(need.crop)
                print(f"  encoded crop {need.crop.as_dict()} in {time.perf_counter() - t_enc:.2f} s")
        best = seg.best
        polys = mask_to_polygons(seg.masks[best], seg.geotransform, seg.crs_wkt)
        attrs = ObjectAttributes(label=name, score=float(seg.scores[best]), source=raster.name,
                                 model=os.path.basename(encoder),
                                 n_positive=sum(1 for v in prompt.labels if v == 1),
                                 n_negative=sum(1 for v in prompt.labels if v == 0))
        fid = store.append(to_qgs_geometry(polys.wkb), attrs)
        print(f"{name}: score {seg.scores[best]:.3f}, {polys.n_parts} part(s), {polys.area_px:.0f} px, "
              f"saved as feature {fid} in {time.perf_counter() - t:.2f} s")
    layer = store.layer()
    print(f"\n{layer.featureCount()} objects in {gpkg} (layer 'segments', {store.crs.authid()}), "
          f"extent {layer.extent().toString(1)}; masks from the {label}.")
    del layer
    store.close()
    app.exitQgis()


if __name__ == "__main__":
    main()
