"""Polygons -> COCO annotations in a chip's pixel space (GDAL/OGR and numpy; no QGIS).

Pixel space is ``(col, row)`` with pixel ``(i, j)`` covering ``[i, i + 1) x [j, j + 1)``, as in
:mod:`core.raster.geo`. COCO uses the same frame (``x`` = column, ``y`` = row from the image's top-left
corner), and pycocotools and GDAL both set a pixel when its centre lies inside the polygon.

Holes: a COCO polygon ``segmentation`` is a list of outer rings that pycocotools *unions*, so it
cannot hold a hole (a hole ring would be filled in). An object whose clipped outline keeps a hole is
therefore written as an uncompressed RLE mask (``{"size": [h, w], "counts": [...]}``, COCO's own format
for arbitrary masks, read by ``COCO.annToMask``), rasterised here by GDAL; every other object is written
as polygons, one exterior ring per part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from osgeo import ogr

from ..gdal_calls import burn, quiet_gdal
from ..polygon_exporter import multipolygon, polygons_of
from ..raster.crops import CropSpec
from ..raster.geo import GeoTransform, invert_geotransform
from ..segment.mask_ops import georeference_wkb

Rings = List[np.ndarray]  # one polygon: exterior then holes, each [N, 2] closed (first == last)
Segmentation = Union[List[List[float]], Dict[str, list]]
DECIMALS = 3  # vertex precision written to the JSON, in pixels


@dataclass(frozen=True)
class PixelObject:
    """One source polygon in the raster's pixel space.

    Attributes:
        fid: feature id in the polygon layer.
        category: category name.
        geometry: valid OGR MultiPolygon in raster pixel coordinates.
        area: its area in pixels.
        bounds: ``(col_min, row_min, col_max, row_max)``.
    """

    fid: int
    category: str
    geometry: ogr.Geometry
    area: float
    bounds: Tuple[float, float, float, float]


@dataclass(frozen=True)
class ClippedObject:
    """The part of a :class:`PixelObject` inside one chip, in the chip's pixel coordinates.

    Attributes:
        polygons: the parts, each :data:`Rings`.
        area: area inside the chip, in pixels.
        visible: ``area`` over the whole object's area (1.0 when the chip holds all of it).
    """

    polygons: List[Rings]
    area: float
    visible: float

    @property
    def has_holes(self) -> bool:
        return any(len(rings) > 1 for rings in self.polygons)


def to_pixel_object(fid: int, category: str, wkb: bytes, gt: GeoTransform) -> Optional[PixelObject]:
    """A polygon's WKB in the raster CRS -> a valid MultiPolygon in raster pixels.

    Curves are linearised, Z/M dropped, invalid rings repaired (GEOS MakeValid). Returns None for
    a geometry with no polygonal area (empty, a line, unreadable WKB).
    """
    with quiet_gdal():
        try:
            geom = ogr.CreateGeometryFromWkb(bytes(wkb))
        except RuntimeError:
            return None
        if geom is None:
            return None
        geom = geom.GetLinearGeometry()
        geom.FlattenTo2D()
        if not geom.IsValid():
            geom = geom.MakeValid()
        polys = polygons_of(geom)
        if not polys:
            return None
        pixel_wkb = georeference_wkb(bytes(multipolygon(polys).ExportToIsoWkb(ogr.wkbNDR)), invert_geotransform(gt))
        pixel = ogr.CreateGeometryFromWkb(pixel_wkb)
    area = pixel.GetArea()
    if area <= 0:
        return None
    c0, c1, r0, r1 = pixel.GetEnvelope()
    return PixelObject(int(fid), category, pixel, area, (c0, r0, c1, r1))


def _box(c0: float, r0: float, c1: float, r1: float) -> ogr.Geometry:
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in ((c0, r0), (c1, r0), (c1, r1), (c0, r1), (c0, r0)):
        ring.AddPoint_2D(float(x), float(y))
    box = ogr.Geometry(ogr.wkbPolygon)
    box.AddGeometry(ring)
    return box


def clip_to_chip(obj: PixelObject, chip: CropSpec) -> Optional[ClippedObject]:
    """The part of ``obj`` inside ``chip`` (scale 1) in chip pixels, or None if they do not overlap."""
    c0, r0, c1, r1 = chip.source_bounds
    oc0, or0, oc1, or1 = obj.bounds
    if oc1 <= c0 or oc0 >= c1 or or1 <= r0 or or0 >= r1:
        return None
    inside = c0 <= oc0 and oc1 <= c1 and r0 <= or0 and or1 <= r1
    with quiet_gdal():
        part = obj.geometry if inside else obj.geometry.Intersection(_box(c0, r0, c1, r1))
    polys = polygons_of(part)
    area = float(sum(p.GetArea() for p in polys))
    if area <= 0:
        return None
    shift = np.array([c0, r0], np.float64)
    rings = [[np.asarray(p.GetGeometryRef(i).GetPoints(), np.float64)[:, :2] - shift
              for i in range(p.GetGeometryCount())] for p in polys]
    return ClippedObject(rings, area, 1.0 if inside else min(1.0, area / obj.area))


def _flat_ring(ring: np.ndarray) -> List[float]:
    """A closed ring -> COCO's ``[x1, y1, x2, y2, ...]`` (not closed), rounded to :data:`DECIMALS`."""
    pts = np.round(ring[:-1] if len(ring) > 1 and np.array_equal(ring[0], ring[-1]) else ring, DECIMALS)
    return [float(v) for v in pts.ravel()]


def rasterize(polygons: Sequence[Rings], width: int, height: int) -> np.ndarray:
    """``[height, width]`` bool mask of the pixels whose centre lies inside ``polygons`` (chip pixels)."""
    multi = ogr.Geometry(ogr.wkbMultiPolygon)
    for rings in polygons:
        poly = ogr.Geometry(ogr.wkbPolygon)
        for xy in rings:
            ring = ogr.Geometry(ogr.wkbLinearRing)
            for x, y in xy:
                ring.AddPoint_2D(float(x), float(y))
            poly.AddGeometry(ring)
        multi.AddGeometry(poly)
    return burn([multi], width, height, (0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


def rle_encode(mask: np.ndarray) -> Dict[str, list]:
    """COCO uncompressed RLE of a ``[H, W]`` bool mask: run lengths in column-major order,
    starting with a run of zeros (possibly empty)."""
    flat = np.asarray(mask, bool).ravel(order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(v) for v in runs]}


def segmentation(clipped: ClippedObject, width: int, height: int) -> Tuple[Segmentation, str]:
    """COCO ``segmentation`` of a clipped object and its kind, ``"polygon"`` or ``"rle"`` (with holes)."""
    if clipped.has_holes:
        return rle_encode(rasterize(clipped.polygons, width, height)), "rle"
    return [_flat_ring(rings[0]) for rings in clipped.polygons], "polygon"


def pixel_bbox(clipped: ClippedObject, width: int, height: int) -> List[int]:
    """``[x, y, w, h]`` in whole pixels: every pixel the clipped outline reaches, inside the chip.

    Integers, because finestSAM slices masks with the box (``mask[y:y + h, x:x + w]``).
    """
    pts = np.concatenate([np.round(rings[0], DECIMALS) for rings in clipped.polygons])
    x0 = min(max(math.floor(pts[:, 0].min()), 0), width)
    y0 = min(max(math.floor(pts[:, 1].min()), 0), height)
    x1 = min(max(math.ceil(pts[:, 0].max()), x0), width)
    y1 = min(max(math.ceil(pts[:, 1].max()), y0), height)
    return [int(x0), int(y0), int(x1 - x0), int(y1 - y0)]
