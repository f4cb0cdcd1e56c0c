"""A raster of repeated objects for the similarity and export tests (and bench/bench_similar.py).

Grass-green noisy ground with 64 x 64 px objects: six identical red-and-white vertically
striped squares (the targets; a test uses one as the example and must find the other five),
and distractors that share part of the pattern: the same stripes in blue (two of them), the
stripes turned by 90 degrees, plain red, and plain pink (the stripes' mean colour). The
objects sit at assorted offsets from the 16 px embedding grid, several in the overlap of the
raster's two encoder crops (columns 0-1024 and 276-1300).
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
from osgeo import gdal, ogr, osr

GT = (500000.0, 0.5, 0.0, 5000000.0, 0.0, -0.5)  # EPSG:32633, 0.5 m pixels
W, H = 1300, 900
SIZE = 64
TARGETS: List[Tuple[int, int]] = [(100, 100), (420, 560), (700, 150), (900, 420), (1150, 700), (560, 330)]
DISTRACTORS: Dict[str, Tuple[int, int]] = {
    "blue": (80, 420), "blue2": (300, 160), "turned": (1180, 120), "plain": (250, 700), "pink": (780, 720)}
RED, WHITE, BLUE = (220, 30, 30), (250, 250, 250), (30, 30, 220)


def stripes(vertical: bool = True, colour: Tuple[int, int, int] = RED) -> np.ndarray:
    """A ``SIZE x SIZE x 3`` square of 4 px stripes of ``colour`` and white."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    on = ((xx if vertical else yy) // 4) % 2 == 0
    out = np.empty((SIZE, SIZE, 3), np.int64)
    out[on], out[~on] = colour, WHITE
    return out


def scene(width: int = W, height: int = H, targets=TARGETS, distractors=DISTRACTORS, seed: int = 3) -> np.ndarray:
    """``[height, width, 3]`` uint8 RGB with the objects at their top-left ``(col, row)``."""
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.int64)
    img[...] = (60, 140, 50)
    img += rng.integers(-20, 21, (height, width, 1))
    patches = {"blue": stripes(True, BLUE), "blue2": stripes(True, BLUE), "turned": stripes(False),
               "plain": np.array(RED), "pink": np.array((235, 140, 140))}
    for c, r in targets:
        img[r : r + SIZE, c : c + SIZE] = stripes()
    for name, (c, r) in distractors.items():
        img[r : r + SIZE, c : c + SIZE] = patches[name]
    return np.clip(img, 0, 255).astype(np.uint8)


def write_raster(path: str, image: np.ndarray, gt=GT, tiled: bool = False) -> str:
    """Write ``image`` as an RGB GeoTIFF in EPSG:32633."""
    opts = ["TILED=YES", "COMPRESS=DEFLATE"] if tiled else []
    ds = gdal.GetDriverByName("GTiff").Create(path, image.shape[1], image.shape[0], 3, gdal.GDT_Byte, opts)
    ds.SetGeoTransform(gt)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    for i in range(3):
        ds.GetRasterBand(i + 1).WriteArray(image[..., i])
    del ds
    return path


def to_map(col: float, row: float, gt=GT) -> Tuple[float, float]:
    return gt[0] + col * gt[1], gt[3] + row * gt[5]


def square_wkt(col: float, row: float, size: float = SIZE, gt=GT) -> str:
    """The square ``[col, col + size) x [row, row + size)`` as map-coordinate WKT."""
    (x0, y0), (x1, y1) = to_map(col, row, gt), to_map(col + size, row + size, gt)
    return f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"


def square_wkb(col: float, row: float, size: float = SIZE, gt=GT) -> bytes:
    return bytes(ogr.CreateGeometryFromWkt(square_wkt(col, row, size, gt)).ExportToIsoWkb())


def centre(top_left: Tuple[int, int]) -> Tuple[float, float]:
    """Pixel ``(col, row)`` of an object's centre."""
    return top_left[0] + SIZE / 2, top_left[1] + SIZE / 2
