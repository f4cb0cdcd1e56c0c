"""Boolean masks to georeferenced, refined MultiPolygons, through GDAL Polygonize.

GDAL adapter (no QGIS): safe to call from a worker thread. The mask is
polygonised in pixel space (integer pixel-corner vertices), refined there so
that every size is an exact pixel count, and georeferenced last with GDAL's own
affine arithmetic (:func:`core.segment.mask_ops.georeference_wkb`).

Example::

    result = mask_to_polygons(prediction.masks[0], raster_gt, raster_crs_wkt)
    geometry = QgsGeometry(); geometry.fromWkb(result.wkb)
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal, ogr

from .errors import SegmentationError
from .gdal_calls import gdal_try, memory_vectors, returned_error_code
from .raster.geo import check_geotransform
from .segment.mask_ops import RefineParams, as_mask, content_window, georeference_wkb, multipolygon_rings


class PolygonizeError(SegmentationError):
    """GDAL could not turn the mask into polygons."""


class MaskPolygons(NamedTuple):
    """One object's outline.

    Attributes:
        wkb: little-endian ISO WKB MultiPolygon (holes kept, one polygon per part) in the
            raster's CRS; valid (OGC) geometry.
        crs_wkt: the raster CRS as given (WKT; may be empty).
        n_parts: number of polygons in the MultiPolygon.
        n_holes: number of holes over all parts.
        area_px: area in source pixels after refinement.
    """

    wkb: bytes
    crs_wkt: str
    n_parts: int
    n_holes: int
    area_px: float


def mask_to_polygons(
    mask: np.ndarray,
    geotransform: Sequence[float],
    crs_wkt: str = "",
    params: RefineParams = RefineParams(),  # noqa: B008 (frozen, so sharing the default is safe)
) -> MaskPolygons:
    """Polygonise ``mask`` (4-connected parts) and refine it with ``params``.

    Args:
        mask: ``[H, W]`` bool (or 0/non-zero) mask on the raster's pixel grid (or on any
            grid that ``geotransform`` describes, e.g. a crop's).
        geotransform: GDAL 6-tuple of that grid; rotated and sheared ones are fine.
        crs_wkt: CRS of ``geotransform``, carried through to the result.
        params: refinement; :data:`core.segment.mask_ops.NO_REFINE` gives the pixel-exact outline.

    Raises:
        EmptyMaskError: no pixel is set.
        MaskShapeError: ``mask`` is not 2-D.
        GeoreferencingError: ``geotransform`` is not an invertible affine transform.
        PolygonizeError: GDAL failed.
    """
    gt = check_geotransform(geotransform)
    m = as_mask(mask)
    row0, row1, col0, col1 = content_window(m)
    parts = _polygonize(m[row0:row1, col0:col1], col0, row0)
    multi = refine(parts, params)
    n_holes = sum(multi.GetGeometryRef(i).GetGeometryCount() - 1 for i in range(multi.GetGeometryCount()))
    wkb = georeference_wkb(bytes(multi.ExportToIsoWkb(ogr.wkbNDR)), gt)
    return MaskPolygons(wkb, crs_wkt, multi.GetGeometryCount(), n_holes, multi.GetArea())


def _polygonize(window: np.ndarray, col0: int, row0: int) -> List[ogr.Geometry]:
    """4-connected True regions of ``window`` as polygons in full-mask pixel coordinates."""
    h, w = window.shape
    raster, detail = gdal_try(lambda: gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Byte))
    if detail:
        raise PolygonizeError(f"GDAL could not allocate a {w}x{h} mask in memory: {detail}")
    # Integer origin and unit pixels: vertices are exact pixel corners.
    raster.SetGeoTransform((float(col0), 1.0, 0.0, float(row0), 0.0, 1.0))
    band = raster.GetRasterBand(1)
    band.WriteArray(window.view(np.uint8))
    store = memory_vectors()
    layer = store.CreateLayer("mask", geom_type=ogr.wkbPolygon)
    # The band is its own mask: only the True regions are traced; -1: no value field.
    _, detail = gdal_try(lambda: gdal.Polygonize(band, band, layer, -1, []), returned_error_code)
    if detail:
        raise PolygonizeError(f"GDAL Polygonize failed: {detail}")
    return [f.GetGeometryRef().Clone() for f in layer]


def polygons_of(geom: Optional[ogr.Geometry]) -> List[ogr.Geometry]:
    """The non-empty polygons (copies) of a (Multi)Polygon or GeometryCollection; other members,
    and an empty geometry or None, give none."""
    if geom is None or geom.IsEmpty():
        return []
    flat = ogr.GT_Flatten(geom.GetGeometryType())
    if flat == ogr.wkbPolygon:
        return [geom.Clone()]
    if flat in (ogr.wkbMultiPolygon, ogr.wkbGeometryCollection):
        return [p for i in range(geom.GetGeometryCount()) for p in polygons_of(geom.GetGeometryRef(i))]
    return []


def _valid_polygons(geom: ogr.Geometry) -> List[ogr.Geometry]:
    return polygons_of(geom if geom.IsValid() else geom.MakeValid())


def _polygon(rings: Sequence[ogr.Geometry]) -> ogr.Geometry:
    poly = ogr.Geometry(ogr.wkbPolygon)
    for ring in rings:
        poly.AddGeometry(ring)
    return poly


def _fill_small_holes(polys: Sequence[ogr.Geometry], min_px: float) -> List[ogr.Geometry]:
    """Remove holes of area below ``min_px``; parts lying inside a removed hole (islands) go too,
    since the filled parent now covers them."""
    out: List[ogr.Geometry] = []
    filled: List[ogr.Geometry] = []
    for poly in polys:
        rings = [poly.GetGeometryRef(i) for i in range(poly.GetGeometryCount())]
        small = [r.GetArea() < min_px for r in rings]
        if any(small[1:]):
            out.append(_polygon([r for i, r in enumerate(rings) if i == 0 or not small[i]]))
            filled += [_polygon([r]) for i, r in enumerate(rings) if i > 0 and small[i]]
        else:
            out.append(poly)
    if not filled or len(polys) == 1:
        return out
    # Parts never cross a hole's edge, so one interior point (of the unfilled part, which is
    # outside its own holes) tells whether a part is an island of a filled hole.
    holes = [(h, h.GetEnvelope()) for h in filled]
    kept = []
    for poly, new in zip(polys, out):
        pt = poly.PointOnSurface()
        x, y = pt.GetX(), pt.GetY()
        if not any(e[0] <= x <= e[1] and e[2] <= y <= e[3] and h.Contains(pt) for h, e in holes):
            kept.append(new)
    return kept


def multipolygon(polys: Sequence[ogr.Geometry]) -> ogr.Geometry:
    """A MultiPolygon of ``polys`` (copied in)."""
    multi = ogr.Geometry(ogr.wkbMultiPolygon)
    for poly in polys:
        multi.AddGeometry(poly)
    return multi


def refine(parts: Sequence[ogr.Geometry], params: RefineParams) -> ogr.Geometry:
    """Apply ``params`` to pixel-space polygons; returns one valid MultiPolygon.

    Order: fill small holes, drop small parts, keep the largest, simplify. Parts
    touch at most at corners (4-connected), so the MultiPolygon is valid as built.
    """
    polys = [p for g in parts for p in _valid_polygons(g)]
    if params.fill_holes_px > 0:
        polys = _fill_small_holes(polys, params.fill_holes_px)
    if polys and (params.min_area_px > 0 or params.largest_only):
        areas = [p.GetArea() for p in polys]
        largest = int(np.argmax(areas))
        polys = [p for i, (p, a) in enumerate(zip(polys, areas))
                 if i == largest or (not params.largest_only and a >= params.min_area_px)]
    multi = multipolygon(polys)
    return _simplified(multi, params.simplify_px) if params.simplify_px > 0 else multi


def _structure(multi: ogr.Geometry) -> Tuple[List[int], bool]:
    """Sorted ring counts of the parts, and whether every vertex is a pixel corner."""
    polys = multipolygon_rings(bytearray(multi.ExportToIsoWkb(ogr.wkbNDR)))
    return sorted(len(p) for p in polys), all(np.array_equal(r, np.round(r)) for p in polys for r in p)


def _simplified(multi: ogr.Geometry, tolerance: float) -> ogr.Geometry:
    """Douglas-Peucker at ``tolerance`` pixels, topology kept.

    Plain Douglas-Peucker is ~10x faster than GEOS's topology-preserving simplifier;
    GEOS repairs its output (buffer(0)), so any change of topology shows as a lost or
    split ring or as a repair vertex off the pixel grid: then the slow one is used.
    """
    fast = multipolygon(_valid_polygons(multi.Simplify(tolerance)))  # GEOS may return a lone Polygon
    rings, _ = _structure(multi)
    fast_rings, on_grid = _structure(fast)
    if fast_rings == rings and on_grid:
        return fast
    return multipolygon(_valid_polygons(multi.SimplifyPreserveTopology(tolerance)))
