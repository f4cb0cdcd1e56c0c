"""The output GeoPackage: saves survive SIGKILL, exports keep other layers, bad input is refused cleanly.

Every path has spaces and non-ASCII characters. Read-only folders are real (chmod,
with root's DAC override dropped by ``setpriv`` when the suite runs as root); a
full disk is real (a 512 KiB tmpfs in a private user+mount namespace made by
``unshare -rm``), plus a monkeypatched ``os.replace`` raising ENOSPC for machines
without user namespaces.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from core.output import gpkg_io
from core.output.gpkg_io import (
    CorruptGeoPackageError,
    DiskFullError,
    LayerExistsError,
    StoreLockedError,
    StoreWriteError,
)
from core.polygon_exporter import mask_to_polygons
from core.segment.mask_ops import NO_REFINE, EmptyMaskError

ROOT = Path(__file__).resolve().parents[1]
ODD = "dossier été 地図"  # a folder name with spaces and non-ASCII characters
UTM_GT = (500000.0, 0.5, 0.0, 5000000.0, 0.0, -0.5)
# Rings of square_mask(0) on UTM_GT, as polygonised, in shape()'s normal form.
SQUARE = [[[(500000.5, 4999997.0), (500003.0, 4999997.0), (500003.0, 4999999.5), (500000.5, 4999999.5),
            (500000.5, 4999997.0)],
           [(500001.5, 4999998.0), (500001.5, 4999998.5), (500002.0, 4999998.5), (500002.0, 4999998.0),
            (500001.5, 4999998.0)]]]


def rings(wkt: str) -> list:
    g = ogr.CreateGeometryFromWkt(wkt)
    polys = [g.GetGeometryRef(i) for i in range(g.GetGeometryCount())]
    return [[p.GetGeometryRef(j).GetPoints() for j in range(p.GetGeometryCount())] for p in polys]


def _normal_ring(pts: List[Tuple[float, float]], exterior: bool) -> List[Tuple[float, float]]:
    """A closed ring, counter-clockwise if ``exterior`` else clockwise, starting at its smallest vertex."""
    ring = pts[:-1]
    area2 = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1]))
    if (area2 > 0) != exterior:
        ring = ring[::-1]
    i = ring.index(min(ring))
    return ring[i:] + ring[:i + 1]


def shape(wkt: str) -> list:
    """:func:`rings` with every ring normalised and holes sorted: equal whatever winding GDAL writes.

    Coordinates stay exact; GDAL >= 3.7 polygonises holes with the opposite winding of 3.6.
    """
    out = []
    for outer, *holes in rings(wkt):
        out.append([_normal_ring(outer, True), *sorted(_normal_ring(h, False) for h in holes)])
    return out


def square_mask(offset: int = 0) -> np.ndarray:
    m = np.zeros((12, 12), bool)
    m[1 + offset : 6 + offset, 1:6] = True
    m[3 + offset, 3] = False
    return m


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> List[str]:
    return sorted(p.name for p in folder.iterdir())


def ogr_rows(path: Path, layer: str) -> List[Tuple[str, Dict[str, object]]]:
    """(WKT, attributes) of every feature, read through a fresh OGR connection."""
    ds = ogr.Open(str(path))
    assert ds is not None, f"{path} does not open"
    lyr = ds.GetLayerByName(layer)
    assert lyr is not None, f"no layer {layer}"
    rows = [(f.GetGeometryRef().ExportToIsoWkt() if f.GetGeometryRef() else "", f.items()) for f in lyr]
    lyr = ds = None
    return rows


def make_other_layers(path: Path) -> None:
    """A GeoPackage with a point layer and a line layer, written with plain OGR."""
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    for name, gtype, wkts in (("poi", ogr.wkbPoint, ["POINT (1 2)", "POINT (3 4)"]),
                              ("roads", ogr.wkbLineString, ["LINESTRING (0 0,10 10)"])):
        lyr = ds.CreateLayer(name, srs, gtype)
        lyr.CreateField(ogr.FieldDefn("name", ogr.OFTString))
        for i, wkt in enumerate(wkts):
            f = ogr.Feature(lyr.GetLayerDefn())
            f.SetField("name", f"{name} {i} é")
            f.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
            lyr.CreateFeature(f)
    lyr = ds = None


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / ODD
    d.mkdir()
    return d


@pytest.fixture
def crs(qgis_app):
    from qgis.core import QgsCoordinateReferenceSystem

    return QgsCoordinateReferenceSystem("EPSG:32633")


def geometry(offset: int = 0):
    from core.output.output_store import to_qgs_geometry

    return to_qgs_geometry(mask_to_polygons(square_mask(offset), UTM_GT, "", NO_REFINE).wkb)


def attrs(label: str = "roof"):
    from core.output.output_store import ObjectAttributes

    return ObjectAttributes(label=label, score=0.875, source="ortho été.tif", model="vit_b.encoder.onnx",
                            n_positive=2, n_negative=1)


@pytest.fixture
def store(folder, crs):
    from core.output.output_store import OutputStore

    s = OutputStore(str(folder / "séance 1.gpkg"), "objects", crs)
    yield s
    s.close()


def run_script(body: str, cwd: Path, prefix: Tuple[str, ...] = (), timeout: float = 120) -> dict:
    """Run ``body`` in a fresh Python with QGIS started; it ends with ``finish(result)``, which is returned."""
    script = cwd / "script.py"
    script.write_text(SCRIPT_HEAD.format(root=str(ROOT)) + textwrap.dedent(body), encoding="utf-8")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    out = subprocess.run([*prefix, sys.executable, str(script)], capture_output=True, text=True,
                         timeout=timeout, env=env, cwd=str(cwd))
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"rc={out.returncode}\nstdout={out.stdout}\nstderr={out.stderr[-3000:]}"
    return json.loads(lines[-1])


SCRIPT_HEAD = """\
import json, os, sys
sys.path.insert(0, {root!r})
from qgis.core import QgsApplication, QgsCoordinateReferenceSystem
app = QgsApplication([], False)
app.initQgis()
import numpy as np
from core.output.gpkg_io import StoreError
from core.segment.mask_ops import NO_REFINE
from core.output.output_store import ObjectAttributes, OutputStore, to_qgs_geometry
from core.polygon_exporter import mask_to_polygons
CRS = QgsCoordinateReferenceSystem("EPSG:32633")
MASK = np.zeros((12, 12), bool); MASK[1:6, 1:6] = True; MASK[3, 3] = False
GEOM = to_qgs_geometry(mask_to_polygons(MASK, (500000.0, 0.5, 0.0, 5000000.0, 0.0, -0.5), "", NO_REFINE).wkb)

def attempt(fn):
    try:
        fn()
        return "ok"
    except StoreError as exc:
        return [type(exc).__name__, str(exc)]

def finish(result):
    # os._exit skips Python's teardown (and QGIS's), so flush the pipe by hand.
    print(json.dumps(result), flush=True)
    os._exit(0)
"""


# --- saving -------------------------------------------------------------------------------------


def test_append_commits_and_open_layer_shows_it(store, qgis_new_project):
    from qgis.core import QgsProject

    layer = store.layer()
    QgsProject.instance().addMapLayer(layer)
    assert layer.featureCount() == 0
    fid = store.append(geometry(), attrs())
    assert layer.featureCount() == 1
    shown = next(layer.getFeatures())
    assert shown.id() == fid
    assert shown.geometry().equals(geometry())
    assert layer.extent().toString(1) == geometry().boundingBox().toString(1)

    [(wkt, row)] = ogr_rows(Path(store.path), "objects")  # what another program sees, now
    assert shape(wkt) == SQUARE
    assert {k: row[k] for k in ("label", "score", "source", "model", "n_positive", "n_negative")} == {
        "label": "roof", "score": 0.875, "source": "ortho été.tif", "model": "vit_b.encoder.onnx",
        "n_positive": 2, "n_negative": 1}
    assert row["area_m2"] == pytest.approx(6.0, abs=1e-9)
    assert row["perimeter_m"] == pytest.approx(12.0, abs=1e-9)
    assert row["created"].endswith("+00")  # UTC

    QgsProject.instance().removeMapLayer(layer.id())  # deletes the layer; the store must cope
    store.append(geometry(4), attrs("second"))
    assert [r["label"] for _, r in ogr_rows(Path(store.path), "objects")] == ["roof", "second"]


def test_store_reopens_existing_layer_and_reprojects_input(store, qgis_app):
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject

    from core.output.output_store import OutputStore

    store.append(geometry(), attrs())
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    again = OutputStore(store.path, "objects", wgs84)  # the existing layer keeps its CRS
    assert again.crs.authid() == "EPSG:32633"
    g = geometry(4)
    g.transform(QgsCoordinateTransform(again.crs, wgs84, QgsProject.instance().transformContext()))
    again.append(g, attrs("from 4326"), crs=wgs84)
    back = ogr.CreateGeometryFromWkt(ogr_rows(Path(store.path), "objects")[1][0])
    assert back.GetEnvelope() == pytest.approx((500000.5, 500003.0, 4999995.0, 4999997.5), abs=1e-6)


def test_save_survives_sigkill_right_after_return(folder):
    path = folder / "killed session é.gpkg"
    body = f"""
    import time
    store = OutputStore({str(path)!r}, "objects", CRS)
    layer = store.layer()  # a display layer is open, as in QGIS
    for label in ("first", "second"):
        fid = store.append(GEOM, ObjectAttributes(label=label, score=0.5, n_positive=1))
        print("SAVED", fid, flush=True)
    time.sleep(120)
    """
    script = folder / "kill.py"
    script.write_text(SCRIPT_HEAD.format(root=str(ROOT)) + textwrap.dedent(body), encoding="utf-8")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        saved = []
        while len(saved) < 2:
            line = proc.stdout.readline()
            assert line, "the saving process died before saving"
            if line.startswith("SAVED"):
                saved.append(int(line.split()[1]))
        os.kill(proc.pid, signal.SIGKILL)  # no cleanup, no close, no flush
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    rows = ogr_rows(path, "objects")
    assert [(shape(wkt), r["label"]) for wkt, r in rows] == [(SQUARE, "first"), (SQUARE, "second")]
    ds = ogr.Open(str(path))
    res = ds.ExecuteSQL("PRAGMA integrity_check")
    assert res.GetNextFeature().GetField(0) == "ok"
    ds.ReleaseResultSet(res)
    ds = None


# --- export -------------------------------------------------------------------------------------


def test_export_into_existing_geopackage_keeps_other_layers(store, folder):
    store.append(geometry(), attrs("a"))
    store.append(geometry(4), attrs("b"))
    target = folder / "résultats finaux.gpkg"
    make_other_layers(target)
    before = {name: ogr_rows(target, name) for name in ("poi", "roads")}

    assert store.export_to(str(target), "buildings") == 2
    assert gpkg_io.layer_names(str(target)) == ["poi", "roads", "buildings"]
    assert {name: ogr_rows(target, name) for name in ("poi", "roads")} == before
    assert ogr_rows(target, "buildings") == ogr_rows(Path(store.path), "objects")

    digest = sha(target)
    with pytest.raises(LayerExistsError, match="buildings") as info:
        store.export_to(str(target), "buildings")
    assert (info.value.path, info.value.layer_name) == (str(target), "buildings")
    assert sha(target) == digest

    store.append(geometry(6), attrs("c"))
    assert store.export_to(str(target), "buildings", overwrite=True) == 3
    assert [r["label"] for _, r in ogr_rows(target, "buildings")] == ["a", "b", "c"]
    assert {name: ogr_rows(target, name) for name in ("poi", "roads")} == before
    assert listing(folder) == sorted(["séance 1.gpkg", "résultats finaux.gpkg"])  # no temp left

    # The session file itself can take another layer; its objects stay, and its open layer follows.
    layer = store.layer()
    store.export_to(store.path, "copy")
    assert ogr_rows(Path(store.path), "copy") == ogr_rows(Path(store.path), "objects")
    store.append(geometry(2), attrs("d"))
    assert [f["label"] for f in layer.getFeatures()] == ["a", "b", "c", "d"]


def test_export_reprojects_to_project_crs(store, folder, qgis_app):
    from qgis.core import QgsCoordinateReferenceSystem

    store.append(geometry(), attrs())
    target = folder / "wgs84.gpkg"
    store.export_to(str(target), "objects", crs=QgsCoordinateReferenceSystem("EPSG:4326"))
    ds = ogr.Open(str(target))
    lyr = ds.GetLayer(0)
    assert lyr.GetSpatialRef().GetAuthorityCode(None) == "4326"
    feature = lyr.GetNextFeature()  # kept: a chained call would free it under its geometry
    got = np.array(rings(feature.GetGeometryRef().ExportToWkt())[0][0])
    feature = lyr = ds = None
    utm, wgs = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(32633)
    wgs.ImportFromEPSG(4326)
    wgs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ct = osr.CoordinateTransformation(utm, wgs)
    src = ogr.CreateGeometryFromWkt(ogr_rows(Path(store.path), "objects")[0][0])
    want = np.array([ct.TransformPoint(x, y)[:2] for x, y in rings(src.ExportToWkt())[0][0]])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["objets é.geojson", "objets é.shp"])
def test_export_geojson_and_shapefile(store, folder, name):
    store.append(geometry(), attrs())
    target = folder / name
    assert store.export_to(str(target), "objects") == 1
    ds = ogr.Open(str(target))
    feature = next(iter(ds.GetLayer(0)))
    assert feature.GetField("label") == "roof"
    assert feature.GetGeometryRef().GetArea() == pytest.approx(6.0, abs=1e-9)
    feature = ds = None
    with pytest.raises(LayerExistsError):
        store.export_to(str(target), "objects")
    assert store.export_to(str(target), "objects", overwrite=True) == 1


# --- bad input ----------------------------------------------------------------------------------


def test_empty_object_and_empty_export_are_refused(store, folder):
    from qgis.core import QgsGeometry

    with pytest.raises(EmptyMaskError, match="empty"):
        store.append(QgsGeometry(), attrs())
    with pytest.raises(EmptyMaskError, match="nothing to export"):
        store.export_to(str(folder / "out.gpkg"), "objects")
    assert not (folder / "out.gpkg").exists()
    with pytest.raises(StoreWriteError, match="Only polygons"):
        store.append(QgsGeometry.fromWkt("POINT (1 2)"), attrs())
    with pytest.raises(StoreWriteError, match=r"\.gpkg, \.geojson or \.shp"):
        store.export_to(str(folder / "out.kml"), "objects")
    assert ogr_rows(Path(store.path), "objects") == []


def test_foreign_layer_with_same_name_is_refused(folder, crs):
    from core.output.output_store import OutputStore

    path = folder / "other.gpkg"
    make_other_layers(path)
    digest = sha(path)
    with pytest.raises(StoreWriteError, match=r"not an output layer.*label"):
        OutputStore(str(path), "poi", crs)
    assert sha(path) == digest


@pytest.fixture(params=["exceptions off", "exceptions on"])
def gdal_exceptions(request):
    """GDAL's Python exceptions off, then on: QGIS 3.44's Processing turns them on for the whole process."""
    on = request.param == "exceptions on"
    if not hasattr(gdal, "ExceptionMgr"):
        if on:
            pytest.skip("GDAL < 3.7: no per-thread exception switch (QGIS 3.22 leaves exceptions off)")
        yield
        return
    with gdal.ExceptionMgr(useExceptions=on), ogr.ExceptionMgr(useExceptions=on):
        yield


def test_corrupt_geopackages_are_left_untouched(store, folder, crs, gdal_exceptions):
    from core.output.output_store import OutputStore

    store.append(geometry(), attrs())
    garbage = folder / "garbage.gpkg"
    garbage.write_bytes(b"definitely not a GeoPackage\n" * 64)
    truncated = folder / "truncated.gpkg"
    make_other_layers(truncated)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    plain = folder / "plain sqlite.gpkg"
    import sqlite3

    con = sqlite3.connect(str(plain))
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    for bad in (garbage, truncated, plain):
        digest = sha(bad)
        with pytest.raises(CorruptGeoPackageError, match="is damaged"):
            store.export_to(str(bad), "objects")
        with pytest.raises(CorruptGeoPackageError):
            OutputStore(str(bad), "objects", crs)
        assert sha(bad) == digest
    assert listing(folder) == sorted(["séance 1.gpkg", garbage.name, truncated.name, plain.name])


def test_locked_geopackage(store, folder, gdal_exceptions):
    store.append(geometry(), attrs())
    target = folder / "locked.gpkg"
    make_other_layers(target)
    holders = []
    for path in (Path(store.path), target):
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sqlite3, sys\n"
             "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
             "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read()", str(path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        holders.append(holder)
        assert holder.stdout.readline().strip() == "locked"
    try:
        with pytest.raises(StoreLockedError, match="locked by another program"):
            store.append(geometry(4), attrs("while locked"))
        with pytest.raises(StoreLockedError):
            store.export_to(str(target), "objects")
    finally:
        for holder in holders:
            holder.stdin.close()
            holder.wait(30)
    assert [r["label"] for _, r in ogr_rows(Path(store.path), "objects")] == ["roof"]
    assert gpkg_io.layer_names(str(target)) == ["poi", "roads"]
    store.append(geometry(4), attrs("after"))  # the lock is gone: saving works again
    assert store.export_to(str(target), "objects") == 2


def test_export_refuses_a_file_with_a_live_wal_journal(store, folder):
    import sqlite3

    store.append(geometry(), attrs())
    target = folder / "in use.gpkg"
    make_other_layers(target)
    other = sqlite3.connect(str(target))  # another program, in WAL mode, with uncheckpointed writes
    try:
        other.execute("PRAGMA journal_mode=WAL")
        other.execute("CREATE TABLE note (x TEXT)")
        other.execute("INSERT INTO note VALUES ('kept')")
        other.commit()
        assert Path(f"{target}-wal").stat().st_size > 0
        with pytest.raises(StoreLockedError):
            store.export_to(str(target), "objects")
        assert "objects" not in gpkg_io.layer_names(str(target))
    finally:
        other.close()
    assert store.export_to(str(target), "objects") == 1  # closed: the export goes through
    con = sqlite3.connect(str(target))
    assert con.execute("SELECT x FROM note").fetchall() == [("kept",)]
    con.close()


def _permission_bits_apply() -> Tuple[str, ...]:
    """Command prefix under which a child obeys permission bits (root ignores them: drop CAP_DAC_*)."""
    if os.geteuid() != 0:
        return ()
    prefix = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")
    try:
        works = subprocess.run([*prefix, "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        works = False
    if not works:
        pytest.skip("root without setpriv or CAP_SETPCAP: no way to make a folder read-only")
    return prefix


def test_read_only_folder(store, folder, tmp_path):
    store.append(geometry(), attrs())
    ro = tmp_path / "lecture seule é"
    ro.mkdir()
    from core.output.output_store import OutputStore

    OutputStore(str(ro / "session.gpkg"), "objects", store.crs).append(geometry(), attrs("kept"))
    make_other_layers(ro / "other.gpkg")
    digests = {p.name: sha(p) for p in ro.iterdir()}
    prefix = _permission_bits_apply()
    ro.chmod(0o555)
    try:
        result = run_script(f"""
        ro, src = {str(ro)!r}, {store.path!r}
        finish({{
            "create": attempt(lambda: OutputStore(os.path.join(ro, "new.gpkg"), "objects", CRS)),
            "append": attempt(lambda: OutputStore(os.path.join(ro, "session.gpkg"), "objects", CRS)
                              .append(GEOM, ObjectAttributes(label="lost?"))),
            "export": attempt(lambda: OutputStore(src, "objects", CRS)
                              .export_to(os.path.join(ro, "other.gpkg"), "objects")),
        }})
        """, tmp_path, prefix)
    finally:
        ro.chmod(0o755)
    for case in ("create", "append", "export"):
        kind, message = result[case]
        assert kind == "ReadOnlyLocationError", (case, message)
        assert "read-only" in message and "Choose a folder you can write to" in message
    assert {p.name: sha(p) for p in ro.iterdir()} == digests
    assert [r["label"] for _, r in ogr_rows(ro / "session.gpkg", "objects")] == ["kept"]


def test_full_disk_on_replace_is_reported_and_harmless(store, folder, monkeypatch):
    """Simulated: os.replace (the last step of every atomic write) fails with ENOSPC."""
    store.append(geometry(), attrs())
    target = folder / "existing.gpkg"
    make_other_layers(target)
    digest, before = sha(target), listing(folder)

    def no_space(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gpkg_io.os, "replace", no_space)
    with pytest.raises(DiskFullError, match="is full"):
        store.export_to(str(target), "objects")
    with pytest.raises(DiskFullError):
        from core.output.output_store import OutputStore

        OutputStore(str(folder / "new.gpkg"), "objects", store.crs)
    assert sha(target) == digest
    assert listing(folder) == before


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _unshare_works(), reason="no user namespaces; the ENOSPC monkeypatch test covers it")
def test_real_full_disk(tmp_path):
    disk = tmp_path / "petit disque é"
    disk.mkdir()
    # A 512 KiB tmpfs, private to the child's namespace (gone when it exits).
    prefix = ("unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=512k tmpfs "$0" && exec "$@"', str(disk))
    result = run_script(f"""
    import hashlib
    from osgeo import ogr
    disk = {str(disk)!r}
    session = os.path.join(disk, "session.gpkg")
    store = OutputStore(session, "objects", CRS)
    store.append(GEOM, ObjectAttributes(label="kept"))
    store.export_to(os.path.join(disk, "other.gpkg"), "first")
    digest = hashlib.sha256(open(os.path.join(disk, "other.gpkg"), "rb").read()).hexdigest()
    fd = os.open(os.path.join(disk, "filler"), os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk to the last byte
        while os.write(fd, b"x" * 512):
            pass
    except OSError:
        os.close(fd)
    append = attempt(lambda: store.append(GEOM, ObjectAttributes(label="lost?")))
    export = attempt(lambda: store.export_to(os.path.join(disk, "other.gpkg"), "second"))
    ds = ogr.Open(session)
    labels = [f.GetField("label") for f in ds.GetLayer("objects")]
    ds = None
    same = digest == hashlib.sha256(open(os.path.join(disk, "other.gpkg"), "rb").read()).hexdigest()
    finish({{"append": append, "export": export, "labels": labels,
             "files": sorted(os.listdir(disk)), "same": same}})
    """, tmp_path, prefix)
    assert result["append"][0] == "DiskFullError", result
    assert result["export"][0] == "DiskFullError", result
    assert "is full" in result["append"][1]
    assert result["labels"] == ["kept"]
    assert result["same"] is True
    assert result["files"] == ["filler", "other.gpkg", "session.gpkg"]
