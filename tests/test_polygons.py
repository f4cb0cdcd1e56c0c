"""Masks to polygons: exact pixel-corner coordinates, areas and perimeters, and each refinement option.

Expected coordinates are written out by hand (or rotated with an explicit rotation
matrix); EPSG:4326 areas and perimeters are checked against closed-form WGS 84
formulas and against QgsDistanceArea on a hand-built geometry.
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import numpy as np
import pytest
from osgeo import ogr

from core.polygon_exporter import mask_to_polygons
from core.raster.geo import GeoreferencingError
from core.segment.mask_ops import NO_REFINE, EmptyMaskError, MaskShapeError, RefineParams

UTM_GT = (500000.0, 0.5, 0.0, 5000000.0, 0.0, -0.5)
WGS84_GT = (15.0, 0.001, 0.0, 45.0, 0.0, -0.001)

Ring = List[Tuple[float, float]]


def square_with_hole() -> np.ndarray:
    """5x5 square at rows/cols 1..5 with a 1-pixel hole at (row 3, col 3), in an 8x8 mask."""
    m = np.zeros((8, 8), bool)
    m[1:6, 1:6] = True
    m[3, 3] = False
    return m


def norm_ring(ring: Sequence[Tuple[float, float]], nd: int = 9) -> Tuple[Tuple[float, float], ...]:
    """A ring without its closing point, rotated to start at its smallest vertex, counter-clockwise."""
    pts = [(round(x, nd) + 0.0, round(y, nd) + 0.0) for x, y in ring]
    if pts[0] == pts[-1]:
        pts = pts[:-1]
    area2 = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1]))
    if area2 < 0:
        pts = pts[::-1]
    i = pts.index(min(pts))
    return tuple(pts[i:] + pts[:i])


def shape_of(wkb: bytes, nd: int = 9) -> List[List[Tuple]]:
    """Polygons of a MultiPolygon as [[exterior, *holes]] of normalised rings, sorted."""
    geom = ogr.CreateGeometryFromWkb(wkb)
    assert geom.GetGeometryType() == ogr.wkbMultiPolygon
    assert geom.IsValid()
    polys = []
    for i in range(geom.GetGeometryCount()):
        poly = geom.GetGeometryRef(i)
        rings = [norm_ring(poly.GetGeometryRef(j).GetPoints(), nd) for j in range(poly.GetGeometryCount())]
        polys.append([rings[0], *sorted(rings[1:])])
    return sorted(polys)


def expected(polys: Sequence[Sequence[Ring]], nd: int = 9) -> List[List[Tuple]]:
    out = []
    for rings in polys:
        normed = [norm_ring(r, nd) for r in rings]
        out.append([normed[0], *sorted(normed[1:])])
    return sorted(out)


def box(x0: float, y0: float, x1: float, y1: float) -> Ring:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def test_square_with_hole_utm_exact(qgis_app):
    from qgis.core import QgsCoordinateReferenceSystem

    from core.output.output_store import measure, to_qgs_geometry

    r = mask_to_polygons(square_with_hole(), UTM_GT, "EPSG:32633", NO_REFINE)
    # Pixel (col, row) corner -> (500000 + 0.5 col, 5000000 - 0.5 row).
    outer = box(500000.5, 4999999.5, 500003.0, 4999997.0)
    hole = box(500001.5, 4999998.5, 500002.0, 4999998.0)
    assert shape_of(r.wkb, 12) == expected([[outer, hole]], 12)
    assert (r.n_parts, r.n_holes, r.area_px, r.crs_wkt) == (1, 1, 24.0, "EPSG:32633")
    area, perimeter = measure(to_qgs_geometry(r.wkb), QgsCoordinateReferenceSystem("EPSG:32633"))
    assert area == pytest.approx(24 * 0.25, abs=1e-9)  # 24 pixels of 0.5 m x 0.5 m
    assert perimeter == pytest.approx(4 * 2.5 + 4 * 0.5, abs=1e-9)  # outline plus the hole's


def test_two_blobs_form_one_multipolygon():
    m = np.zeros((6, 10), bool)
    m[1:3, 1:4] = True  # 3x2 at cols 1..4, rows 1..3
    m[2:5, 6:8] = True  # 2x3 at cols 6..8, rows 2..5
    r = mask_to_polygons(m, UTM_GT, "", NO_REFINE)
    assert (r.n_parts, r.n_holes, r.area_px) == (2, 0, 12.0)
    assert shape_of(r.wkb) == expected([
        [box(500000.5, 4999999.5, 500002.0, 4999998.5)],
        [box(500003.0, 4999999.0, 500004.0, 4999997.5)],
    ])


def test_one_pixel_diagonal_is_corner_touching_squares():
    m = np.eye(5, dtype=bool)
    r = mask_to_polygons(m, UTM_GT, "", NO_REFINE)
    assert (r.n_parts, r.area_px) == (5, 5.0)
    squares = [[box(500000 + 0.5 * i, 5000000 - 0.5 * i, 500000.5 + 0.5 * i, 4999999.5 - 0.5 * i)]
               for i in range(5)]
    assert shape_of(r.wkb) == expected(squares)


@pytest.mark.parametrize("angle_deg", [30.0, -115.0])
def test_rotated_geotransform(qgis_app, angle_deg):
    from qgis.core import QgsCoordinateReferenceSystem

    from core.output.output_store import measure, to_qgs_geometry

    t, s, ox, oy = math.radians(angle_deg), 2.0, 350000.0, 6100000.0
    # North-up 2 m grid rotated by t about the origin: the pixel axes are R(t)(s, 0) and R(t)(0, -s).
    gt = (ox, s * math.cos(t), s * math.sin(t), oy, s * math.sin(t), -s * math.cos(t))
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])

    def place(ring: Ring) -> Ring:
        unrotated = np.array([(s * c, -s * r) for c, r in ring])
        return [(ox + x, oy + y) for x, y in unrotated @ rot.T]

    r = mask_to_polygons(square_with_hole(), gt, "", NO_REFINE)
    assert shape_of(r.wkb, 6) == expected([[place(box(1, 1, 6, 6)), place(box(3, 3, 4, 4))]], 6)
    area, perimeter = measure(to_qgs_geometry(r.wkb), QgsCoordinateReferenceSystem("EPSG:32633"))
    assert area == pytest.approx(24 * 4.0, rel=1e-9)
    assert perimeter == pytest.approx(4 * 10.0 + 4 * 2.0, rel=1e-9)


def test_sheared_geotransform_scales_area_by_determinant():
    gt = (1000.0, 3.0, 1.0, 2000.0, 0.5, -2.0)  # |det| = |3 * -2 - 1 * 0.5| = 6.5
    r = mask_to_polygons(square_with_hole(), gt, "", NO_REFINE)
    geom = ogr.CreateGeometryFromWkb(r.wkb)
    assert geom.GetArea() == pytest.approx(24 * 6.5, rel=1e-12)
    # Corner (col 1, row 1) by hand: x = 1000 + 3 + 1, y = 2000 + 0.5 - 2.
    outer = geom.GetGeometryRef(0).GetGeometryRef(0).GetPoints()
    assert (1004.0, 1998.5) in outer


def _wgs84_quad_area(lon0: float, lon1: float, lat0: float, lat1: float) -> float:
    """Exact area (m²) of a lon/lat rectangle on the WGS 84 ellipsoid (authalic-latitude formula)."""
    a, f = 6378137.0, 1 / 298.257223563
    b, e2 = a * (1 - f), f * (2 - f)
    e = math.sqrt(e2)

    def q(lat: float) -> float:
        s = math.sin(math.radians(lat))
        return s / (1 - e2 * s * s) + math.log((1 + e * s) / (1 - e * s)) / (2 * e)

    return b * b * math.radians(lon1 - lon0) / 2 * (q(lat1) - q(lat0))


def _wgs84_rect_perimeter(lon0: float, lon1: float, lat0: float, lat1: float) -> float:
    """Perimeter (m): two meridian arcs (integrated) and two parallel arcs."""
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    lats = np.linspace(math.radians(lat0), math.radians(lat1), 4001)
    mid = (lats[1:] + lats[:-1]) / 2
    meridian = float(np.sum(a * (1 - e2) / (1 - e2 * np.sin(mid) ** 2) ** 1.5 * np.diff(lats)))

    def parallel(lat: float) -> float:
        p = math.radians(lat)
        return a / math.sqrt(1 - e2 * math.sin(p) ** 2) * math.cos(p) * math.radians(lon1 - lon0)

    return 2 * abs(meridian) + parallel(lat0) + parallel(lat1)


def test_wgs84_coordinates_area_and_perimeter_are_ellipsoidal(qgis_app):
    from qgis.core import QgsCoordinateReferenceSystem, QgsDistanceArea, QgsGeometry, QgsProject

    from core.output.output_store import measure, to_qgs_geometry

    r = mask_to_polygons(square_with_hole(), WGS84_GT, "EPSG:4326", NO_REFINE)
    outer = box(15.001, 44.999, 15.006, 44.994)
    hole = box(15.003, 44.997, 15.004, 44.996)
    assert shape_of(r.wkb, 12) == expected([[outer, hole]], 12)

    crs = QgsCoordinateReferenceSystem("EPSG:4326")
    area, perimeter = measure(to_qgs_geometry(r.wkb), crs)
    by_formula = (_wgs84_quad_area(15.001, 15.006, 44.994, 44.999)
                  - _wgs84_quad_area(15.003, 15.004, 44.996, 44.997))
    assert area == pytest.approx(by_formula, rel=1e-7)
    assert perimeter == pytest.approx(_wgs84_rect_perimeter(15.001, 15.006, 44.994, 44.999)
                                      + _wgs84_rect_perimeter(15.003, 15.004, 44.996, 44.997), rel=1e-7)
    assert 200_000 < area < 220_000  # about 0.005 deg x 0.005 deg at 45 N: metres, not degrees

    da = QgsDistanceArea()
    da.setSourceCrs(crs, QgsProject.instance().transformContext())
    da.setEllipsoid("EPSG:7030")
    hand = QgsGeometry.fromWkt(
        "POLYGON((15.001 44.999, 15.006 44.999, 15.006 44.994, 15.001 44.994, 15.001 44.999),"
        "(15.003 44.997, 15.004 44.997, 15.004 44.996, 15.003 44.996, 15.003 44.997))")
    assert area == pytest.approx(da.measureArea(hand), rel=1e-9)
    assert perimeter == pytest.approx(da.measurePerimeter(hand), rel=1e-9)


def test_projected_feet_crs_converts_to_metres(qgis_app):
    from qgis.core import QgsCoordinateReferenceSystem

    from core.output.output_store import measure, to_qgs_geometry

    crs = QgsCoordinateReferenceSystem("EPSG:2263")  # NAD83 / New York Long Island (US survey feet)
    r = mask_to_polygons(square_with_hole(), (1e6, 1.0, 0.0, 2e5, 0.0, -1.0), "", NO_REFINE)
    area, perimeter = measure(to_qgs_geometry(r.wkb), crs)
    ft = 1200 / 3937  # metres in a US survey foot
    assert area == pytest.approx(24 * ft * ft, rel=1e-6)
    assert perimeter == pytest.approx(24 * ft, rel=1e-6)


def test_random_masks_cover_exactly_their_pixels():
    rng = np.random.default_rng(7)
    for _ in range(25):
        m = rng.random((12, 14)) < rng.uniform(0.3, 0.7)
        r = mask_to_polygons(m, (0.0, 1.0, 0.0, 0.0, 0.0, 1.0), "", NO_REFINE)
        geom = ogr.CreateGeometryFromWkb(r.wkb)
        assert geom.IsValid()
        assert r.area_px == geom.GetArea() == m.sum()
        for row, col in np.ndindex(m.shape):
            centre = ogr.CreateGeometryFromWkt(f"POINT ({col + 0.5} {row + 0.5})")
            assert geom.Contains(centre) == m[row, col]


@pytest.mark.parametrize("simplify_px", [1.0, 3.0])
def test_refined_noisy_masks_stay_valid_on_pixel_corners(simplify_px):
    rng = np.random.default_rng(3)
    for _ in range(20):
        m = np.kron(rng.random((10, 10)) < 0.5, np.ones((4, 4), bool)) ^ (rng.random((40, 40)) < 0.05)
        params = RefineParams(simplify_px=simplify_px, fill_holes_px=3, min_area_px=3)
        r = mask_to_polygons(m, (0.0, 1.0, 0.0, 0.0, 0.0, 1.0), "", params)
        geom = ogr.CreateGeometryFromWkb(r.wkb)
        assert geom.IsValid() and r.n_parts == geom.GetGeometryCount() >= 1
        pts = np.array([xy for p in range(geom.GetGeometryCount())
                        for k in range(geom.GetGeometryRef(p).GetGeometryCount())
                        for xy in geom.GetGeometryRef(p).GetGeometryRef(k).GetPoints()])
        assert np.array_equal(pts, np.round(pts))
        assert abs(r.area_px - m.sum()) < 0.25 * m.sum()


def test_fill_holes_is_strictly_below_threshold_and_swallows_islands():
    m = np.zeros((9, 9), bool)
    m[0:9, 0:9] = True
    m[2:5, 2:5] = False  # 9-pixel hole ...
    m[3, 3] = True  # ... holding a 1-pixel island
    m[7, 7] = False  # 1-pixel hole
    keep = mask_to_polygons(m, UTM_GT, "", RefineParams(0, fill_holes_px=1, min_area_px=0))
    assert (keep.n_parts, keep.n_holes) == (2, 2)
    one = mask_to_polygons(m, UTM_GT, "", RefineParams(0, fill_holes_px=2, min_area_px=0))
    assert (one.n_parts, one.n_holes, one.area_px) == (2, 1, 81.0 - 9 + 1)
    same = mask_to_polygons(m, UTM_GT, "", RefineParams(0, fill_holes_px=9, min_area_px=0))
    assert shape_of(same.wkb) == shape_of(one.wkb)
    full = mask_to_polygons(m, UTM_GT, "", RefineParams(0, fill_holes_px=10, min_area_px=0))
    assert (full.n_parts, full.n_holes, full.area_px) == (1, 0, 81.0)
    assert shape_of(full.wkb) == expected([[box(500000.0, 5000000.0, 500004.5, 4999995.5)]])


def test_min_area_drops_small_parts_but_keeps_the_largest():
    m = np.zeros((10, 12), bool)
    m[0:2, 0:2] = True  # 4 px
    m[5:10, 5:10] = True  # 25 px
    m[0, 11] = True  # 1 px
    r = mask_to_polygons(m, UTM_GT, "", RefineParams(0, 0, min_area_px=4))
    assert (r.n_parts, r.area_px) == (2, 29.0)
    r = mask_to_polygons(m, UTM_GT, "", RefineParams(0, 0, min_area_px=5))
    assert (r.n_parts, r.area_px) == (1, 25.0)
    r = mask_to_polygons(m, UTM_GT, "", RefineParams(0, 0, min_area_px=1000))
    assert (r.n_parts, r.area_px) == (1, 25.0)
    r = mask_to_polygons(m, UTM_GT, "", RefineParams(0, 0, 0, largest_only=True))
    assert (r.n_parts, r.area_px) == (1, 25.0)
    assert shape_of(r.wkb) == expected([[box(500002.5, 4999997.5, 500005.0, 4999995.0)]])


def test_simplify_removes_staircase_keeps_holes_and_pixel_corners():
    yy, xx = np.mgrid[0:80, 0:80]
    m = (xx - 40) ** 2 + (yy - 40) ** 2 < 35**2
    m[30:33, 30:33] = False  # small holes must survive a large tolerance
    m[50:52, 45:47] = False
    exact = mask_to_polygons(m, (0.0, 1.0, 0.0, 0.0, 0.0, 1.0), "", NO_REFINE)
    params = RefineParams(simplify_px=1.0, fill_holes_px=0, min_area_px=0)
    simple = mask_to_polygons(m, (0.0, 1.0, 0.0, 0.0, 0.0, 1.0), "", params)
    g_exact, g_simple = ogr.CreateGeometryFromWkb(exact.wkb), ogr.CreateGeometryFromWkb(simple.wkb)
    assert simple.n_holes == exact.n_holes == 2
    n_exact = g_exact.GetGeometryRef(0).GetGeometryRef(0).GetPointCount()
    n_simple = g_simple.GetGeometryRef(0).GetGeometryRef(0).GetPointCount()
    assert n_simple < n_exact / 3
    pts = np.array(g_simple.GetGeometryRef(0).GetGeometryRef(0).GetPoints())
    assert np.array_equal(pts, np.round(pts))  # vertices stay on pixel corners
    assert g_simple.SymDifference(g_exact).GetArea() < 0.02 * g_exact.GetArea()
    # Kept vertices are exact-outline vertices; every exact vertex is within 1 px of the new outline.
    exact_boundary, simple_boundary = g_exact.Boundary(), g_simple.Boundary()
    for x, y in pts:
        assert exact_boundary.Distance(ogr.CreateGeometryFromWkt(f"POINT ({x} {y})")) == 0.0
    for x, y in g_exact.GetGeometryRef(0).GetGeometryRef(0).GetPoints():
        assert simple_boundary.Distance(ogr.CreateGeometryFromWkt(f"POINT ({x} {y})")) <= 1.0 + 1e-9
    big = mask_to_polygons(m, (0.0, 1.0, 0.0, 0.0, 0.0, 1.0), "", RefineParams(8.0, 0, 0))
    assert big.n_holes == 2 and ogr.CreateGeometryFromWkb(big.wkb).IsValid()


def test_default_refinement_on_speckled_mask():
    m = np.zeros((60, 60), bool)
    m[10:50, 10:50] = True
    m[20, 20] = False  # speckle hole
    m[55, 55] = True  # speckle part
    r = mask_to_polygons(m, UTM_GT)
    assert (r.n_parts, r.n_holes, r.area_px) == (1, 0, 1600.0)


def test_bad_input_messages():
    with pytest.raises(EmptyMaskError, match="empty"):
        mask_to_polygons(np.zeros((4, 4), bool), UTM_GT)
    with pytest.raises(MaskShapeError, match="2-D"):
        mask_to_polygons(np.ones((1, 4, 4), bool), UTM_GT)
    with pytest.raises(GeoreferencingError):
        mask_to_polygons(np.ones((4, 4), bool), (0, 0, 0, 0, 0, 0))
    with pytest.raises(MaskShapeError, match="simplify_px"):
        RefineParams(simplify_px=-1)
