"""aisegmentation:export_coco: a real GeoTIFF and a GeoPackage in another CRS -> finestSAM's COCO layouts,
read back with pycocotools and compared with the polygons rasterised straight from the layer."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback, QgsProject, QgsRasterLayer

from core.coco.coco_export import CocoExportParams, chip_grid, split_of
from core.coco.coco_geometry import rle_encode
from core.coco.coco_writer import chip_to_map, read_georef
from core.raster.crops import CropSpec
from core.raster.raster_source import RasterSource
from tools.plugin_package import plugin_module

UTM_GT = (500000.0, 0.5, 0.0, 5000000.0, 0.0, -0.5)  # EPSG:32633, 0.5 m pixels
W, H, CHIP = 1536, 1024, 512  # 3 x 2 chips; the right column holds no polygon
BANDS = [3, 2, 1]
MIN_IOU = 0.99


def _circle(c: float, r: float, radius: float, n: int = 96):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return list(zip(c + radius * np.cos(t), r + radius * np.sin(t)))


def _rect(c0, r0, c1, r1):
    return [(c0, r0), (c1, r0), (c1, r1), (c0, r1)]


# name: (label, [polygon: [ring: [(col, row)]]]) in raster pixels; chips are 512 px: edges at col 512, row 512.
OBJECTS = {
    "courtyard": ("building", [[_rect(60, 60, 260, 260), _rect(120, 130, 180, 200)]]),  # a hole, inside one chip
    "oak": ("tree", [[_circle(700, 150, 60)]]),  # inside one chip
    "pine": ("tree", [[_circle(490, 380, 70)]]),  # cut by col 512: 0.70 / 0.30 visible
    "elm": ("tree", [[_circle(300, 480, 60)]]),  # cut by row 512: 0.82 above, 0.18 below (dropped)
    "hall": ("building", [[_rect(380, 700, 640, 900), _rect(400, 760, 470, 840)]]),  # cut, hole on the left
    "fields": (None, [[_rect(700, 600, 800, 680)], [_rect(850, 700, 950, 800)]]),  # two parts, no label
    "faraway": ("tree", [[_rect(2000, 2000, 2100, 2100)]]),  # off the raster
}


def to_map(col: float, row: float):
    return UTM_GT[0] + col * UTM_GT[1], UTM_GT[3] + row * UTM_GT[5]


def _srs(epsg: int) -> osr.SpatialReference:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def _wkt(polygons) -> str:
    # float(): numpy 2 reprs a float64 as "np.float64(...)", which is no WKT.
    parts = ["(" + ",".join("(" + ",".join(f"{float(x)!r} {float(y)!r}" for x, y in ring + ring[:1]) + ")"
                            for ring in poly) + ")"
             for poly in polygons]
    return "MULTIPOLYGON(" + ",".join(parts) + ")"


@pytest.fixture(scope="module")
def raster(tmp_path_factory) -> str:
    """A 3-band UInt16 GeoTIFF: the PNGs must show it stretched as the plugin does."""
    rng = np.random.default_rng(3)
    path = str(tmp_path_factory.mktemp("raster") / "ortho16.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, W, H, 3, gdal.GDT_UInt16, ["COMPRESS=DEFLATE"])
    ds.SetGeoTransform(UTM_GT)
    ds.SetProjection(_srs(32633).ExportToWkt())
    yy, xx = np.mgrid[:H, :W]
    for i in range(3):
        band = (1000 + 3 * xx + 2 * yy * (i + 1) + rng.integers(0, 400, (H, W))).astype(np.uint16)
        ds.GetRasterBand(i + 1).WriteArray(band)
    del ds
    return path


@pytest.fixture(scope="module")
def polygons(tmp_path_factory) -> str:
    """OBJECTS in EPSG:4326 in a GeoPackage, with a 'label' field; feature ids 1.. in OBJECTS order."""
    path = str(tmp_path_factory.mktemp("vector") / "digitised.gpkg")
    to_wgs84 = osr.CoordinateTransformation(_srs(32633), _srs(4326))
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    layer = ds.CreateLayer("objects", _srs(4326), ogr.wkbMultiPolygon)
    layer.CreateField(ogr.FieldDefn("label", ogr.OFTString))
    layer.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    for name, (label, polys) in OBJECTS.items():
        geom = ogr.CreateGeometryFromWkt(_wkt([[[to_map(c, r) for c, r in ring] for ring in p] for p in polys]))
        geom.Transform(to_wgs84)
        f = ogr.Feature(layer.GetLayerDefn())
        if label is not None:
            f.SetField("label", label)
        f.SetField("name", name)
        f.SetGeometry(geom)
        layer.CreateFeature(f)
    del layer, ds
    return path


@pytest.fixture(scope="module")
def provider(qgis_processing):
    registry = QgsApplication.processingRegistry()
    prov = plugin_module("processing_provider.provider").AISegmentationProvider()
    assert registry.addProvider(prov)
    yield prov
    registry.removeProvider(prov)


def _run(params: dict, feedback=None) -> dict:
    import processing

    return processing.run("aisegmentation:export_coco", params, feedback=feedback)


def _export(raster, polygons, out, **extra) -> dict:
    params = {"INPUT": raster, "POLYGONS": polygons, "CHIP_SIZE": CHIP, "BANDS": BANDS, "OUTPUT_FOLDER": str(out)}
    return _run({**params, **extra})


def _layer_truth(polygons: str):
    """fid -> (name, the layer's geometry projected straight to EPSG:32633 with OSR)."""
    ds = ogr.Open(polygons)
    layer = ds.GetLayer(0)
    to_utm = osr.CoordinateTransformation(_srs(4326), _srs(32633))
    out = {}
    for f in layer:
        g = f.GetGeometryRef().Clone()
        g.Transform(to_utm)
        out[f.GetFID()] = (f.GetField("name"), g)
    del layer, ds
    return out


def _rasterize_on_chip(geom: ogr.Geometry, georef_image: dict) -> np.ndarray:
    mem = gdal.GetDriverByName("MEM").Create("", georef_image["width"], georef_image["height"], 1, gdal.GDT_Byte)
    gt = UTM_GT
    mem.SetGeoTransform((gt[0] + georef_image["col0"] * gt[1], gt[1], 0.0,
                         gt[3] + georef_image["row0"] * gt[5], 0.0, gt[5]))
    mem.SetProjection(_srs(32633).ExportToWkt())
    store = (ogr.GetDriverByName("MEM") or ogr.GetDriverByName("Memory")).CreateDataSource("")  # MEM: GDAL >= 3.11
    layer = store.CreateLayer("truth", _srs(32633), ogr.wkbMultiPolygon)
    f = ogr.Feature(layer.GetLayerDefn())
    f.SetGeometry(geom)
    layer.CreateFeature(f)
    gdal.RasterizeLayer(mem, [1], layer, burn_values=[1])
    return mem.ReadAsArray() > 0


def _visible(geom: ogr.Geometry, image: dict) -> float:
    """Share of the object's area inside the chip, computed in map units."""
    (x0, y0), (x1, y1) = to_map(image["col0"], image["row0"]), to_map(image["col0"] + image["width"],
                                                                      image["row0"] + image["height"])
    box = ogr.CreateGeometryFromWkt(f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))")
    return geom.Intersection(box).GetArea() / geom.GetArea()


def _round_trip(split_dir: Path, polygons: str, min_visible: float = 0.25) -> dict:
    """Load a split with pycocotools; every annotation must match its layer polygon (IoU >= 0.99) on
    its chip, and every (object, chip) pair visible enough must have one annotation. Returns
    ``{(name, file_name): (iou, annotation)}``."""
    coco_mod = pytest.importorskip("pycocotools.coco", reason="pycocotools is not installed (requirements-dev)")
    coco = coco_mod.COCO(str(split_dir / "annotations.json"))
    georef = read_georef(str(split_dir))
    truth = _layer_truth(polygons)
    found = {}
    for ann in coco.loadAnns(coco.getAnnIds()):
        image = coco.loadImgs(ann["image_id"])[0]
        assert (split_dir / "images" / image["file_name"]).is_file()
        geo = georef["images"][image["file_name"]]
        assert geo["id"] == image["id"] and (geo["width"], geo["height"]) == (image["width"], image["height"])
        name, geom = truth[ann["source_fid"]]
        mine = coco.annToMask(ann).astype(bool)
        want = _rasterize_on_chip(geom, geo)
        iou = (mine & want).sum() / (mine | want).sum()
        assert iou >= MIN_IOU, (name, image["file_name"], iou)
        x, y, w, h = ann["bbox"]
        assert all(isinstance(v, int) for v in ann["bbox"])  # finestSAM slices with it
        rows, cols = np.nonzero(mine)
        assert x <= cols.min() and cols.max() < x + w and y <= rows.min() and rows.max() < y + h
        assert max(cols.min() - x, rows.min() - y, x + w - 1 - cols.max(), y + h - 1 - rows.max()) <= 1
        assert ann["iscrowd"] == 0 and ann["area"] == pytest.approx(mine.sum(), rel=0.01)
        assert ann["visible_fraction"] == pytest.approx(_visible(geom, geo), abs=1e-3)
        assert ann["truncated"] == (ann["visible_fraction"] < 1.0)
        assert coco.loadCats(ann["category_id"])[0]["name"] == (OBJECTS[name][0] or "object")
        found[(name, image["file_name"])] = (float(iou), ann)
    # Nothing visible enough is missing.
    for file_name, image in georef["images"].items():
        for name, geom in truth.values():
            share = _visible(geom, image)
            if share >= min_visible:
                assert (name, file_name) in found, (name, file_name, share)
            else:
                assert (name, file_name) not in found
    return found


def _chip(col0: int, row0: int) -> str:
    return f"chip_r{row0:06d}_c{col0:06d}.png"


def _files(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_data_layout_round_trips_through_pycocotools(provider, raster, polygons, tmp_path):
    out = tmp_path / "dataset"
    result = _export(raster, polygons, out)
    chips = [_chip(c, r) for r in (0, 512) for c in (0, 512)]  # the col 1024 chips hold nothing
    assert _files(out) == sorted(["data", "data/annotations.json", "data/georef.json", "data/images",
                                  *[f"data/images/{c}" for c in chips]])
    found = _round_trip(out / "data", polygons)
    for (name, chip), (iou, ann) in sorted(found.items()):
        print(f"IoU {iou:.4f}  {name:10s} {chip}  {type(ann['segmentation']).__name__}  "
              f"visible {ann['visible_fraction']:.3f}")
    pairs = {k: a for k, (_, a) in found.items()}
    assert set(pairs) == {
        ("courtyard", _chip(0, 0)), ("oak", _chip(512, 0)), ("pine", _chip(0, 0)), ("pine", _chip(512, 0)),
        ("elm", _chip(0, 0)), ("hall", _chip(0, 512)), ("hall", _chip(512, 512)), ("fields", _chip(512, 512))}
    # Holes are kept: objects whose part in the chip has a hole are RLE, the rest polygons.
    rle = {k for k, a in pairs.items() if isinstance(a["segmentation"], dict)}
    assert rle == {("courtyard", _chip(0, 0)), ("hall", _chip(0, 512))}
    assert len(pairs[("fields", _chip(512, 512))]["segmentation"]) == 2  # one ring per part
    assert not pairs[("courtyard", _chip(0, 0))]["truncated"] and pairs[("hall", _chip(512, 512))]["truncated"]
    assert result["IMAGES"] == 4 and result["ANNOTATIONS"] == 8 and result["TRUNCATED"] == 5
    assert result["DROPPED"] == 1  # elm below row 512: 18 % visible
    cats = json.loads((out / "data" / "annotations.json").read_text())["categories"]
    assert [(c["id"], c["name"]) for c in cats] == [(1, "building"), (2, "object"), (3, "tree")]


def test_chips_show_the_plugin_bands_and_stretch(provider, raster, polygons, tmp_path):
    out = tmp_path / "dataset"
    _export(raster, polygons, out)
    source = RasterSource.open(raster, BANDS)  # what the panel shows with these bands
    assert all(s is not None and s[1] > 1000 for s in source.stretch)  # 16-bit values, stretched
    georef = read_georef(str(out / "data"))
    assert georef["bands"] == BANDS and georef["stretch"] == [list(s) for s in source.stretch]
    for name, image in georef["images"].items():
        png = gdal.Open(str(out / "data" / "images" / name))
        assert (png.RasterCount, png.RasterXSize, png.RasterYSize) == (3, CHIP, CHIP)
        assert png.GetRasterBand(1).DataType == gdal.GDT_Byte
        rgb = np.dstack([png.GetRasterBand(i + 1).ReadAsArray() for i in range(3)])
        want = source.read(CropSpec(image["col0"], image["row0"], CHIP, CHIP))
        assert np.array_equal(rgb, want), name
        del png


def test_sidecar_georeferences_chip_pixels(provider, raster, polygons, tmp_path):
    out = tmp_path / "dataset"
    _export(raster, polygons, out)
    georef = read_georef(str(out / "data"))
    crs = osr.SpatialReference(wkt=georef["crs_wkt"])
    crs.AutoIdentifyEPSG()
    assert crs.GetAuthorityCode(None) == "32633"
    for name, image in georef["images"].items():
        got = chip_to_map(georef, name, [(0, 0), (10.5, 20.5), (CHIP, CHIP)])
        want = [to_map(image["col0"] + c, image["row0"] + r) for c, r in ((0, 0), (10.5, 20.5), (CHIP, CHIP))]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    # A vertex of the oak (not clipped) maps back onto the digitised vertex.
    coco = json.loads((out / "data" / "annotations.json").read_text())
    oak = next(a for a in coco["annotations"] if a["source_fid"] == 2)
    image = next(i for i in coco["images"] if i["id"] == oak["image_id"])
    ring = np.array(oak["segmentation"][0]).reshape(-1, 2)
    back = chip_to_map(georef, image["file_name"], ring)
    digitised = np.array([to_map(c, r) for c, r in OBJECTS["oak"][1][0][0]])
    assert np.abs(back - digitised).max() < 1e-3  # metres: 3 decimals of a 0.5 m pixel, plus the 4326 trip


def test_train_val_layout_and_seeded_split(provider, raster, polygons, tmp_path):
    runs = {}
    for key, seed in (("a", 7), ("b", 7)):
        out = tmp_path / key
        _export(raster, polygons, out, VAL_FRACTION=0.5, SEED=seed)
        runs[key] = out
    out = runs["a"]
    assert sorted(p.name for p in out.iterdir()) == ["train", "val"]
    names = {}
    for split in ("train", "val"):
        assert _files(out / split)[:3] == ["annotations.json", "georef.json", "images"]
        names[split] = {i["file_name"] for i in json.loads((out / split / "annotations.json").read_text())["images"]}
        found = _round_trip(out / split, polygons)
        assert {chip for _, chip in found} == names[split]
        assert {p.name for p in (out / split / "images").iterdir()} == names[split]
    assert len(names["val"]) == 2 and len(names["train"]) == 2 and not names["val"] & names["train"]
    # The same seed gives the same files, byte for byte.
    for split in ("train", "val"):
        assert (out / split / "annotations.json").read_bytes() == (runs["b"] / split / "annotations.json").read_bytes()
    # The split is the 2 lowest seeded ranks of the 4 chips holding objects.
    chips = [CropSpec(c, r, CHIP, CHIP) for r in (0, 512) for c in (0, 512)]
    ranked = sorted(chips, key=lambda c: split_of(c, 7))
    assert names["val"] == {_chip(c.col0, c.row0) for c in ranked[:2]}
    assert len({frozenset(sorted(chips, key=lambda c, s=s: split_of(c, s))[:2]) for s in range(10)}) > 1
    # Ids are unique across the two files.
    ids = [json.loads((out / s / "annotations.json").read_text()) for s in ("train", "val")]
    assert len({i["id"] for d in ids for i in d["images"]}) == 4
    assert len({a["id"] for d in ids for a in d["annotations"]}) == 8


def test_min_visible_fraction_drops_small_cut_parts(provider, raster, polygons, tmp_path):
    out = tmp_path / "strict"
    result = _export(raster, polygons, out, MIN_VISIBLE_FRACTION=0.5)
    found = _round_trip(out / "data", polygons, min_visible=0.5)
    assert ("pine", _chip(512, 0)) not in found and ("hall", _chip(0, 512)) not in found  # 0.30 and 0.45 visible
    assert ("pine", _chip(0, 0)) in found and ("hall", _chip(512, 512)) in found  # 0.70 and 0.55
    assert result["DROPPED"] == 3 and result["ANNOTATIONS"] == 6


def test_no_category_field_gives_one_category(provider, raster, polygons, tmp_path):
    out = tmp_path / "one"
    _export(raster, polygons, out, CATEGORY_FIELD="")
    coco = json.loads((out / "data" / "annotations.json").read_text())
    assert coco["categories"] == [{"id": 1, "name": "object", "supercategory": ""}]
    assert {a["category_id"] for a in coco["annotations"]} == {1}


def test_overwrite_replaces_only_an_earlier_export(provider, raster, polygons, tmp_path):
    out = tmp_path / "dataset"
    _export(raster, polygons, out)
    before = _files(out)
    with pytest.raises(QgsProcessingException, match=r"is not empty .*set OVERWRITE"):
        _export(raster, polygons, out, VAL_FRACTION=0.5)
    assert _files(out) == before
    (out / "notes.txt").write_text("mine")
    _export(raster, polygons, out, VAL_FRACTION=0.5, OVERWRITE=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "train", "val"]  # data/ replaced, notes kept
    foreign = tmp_path / "foreign"
    (foreign / "data").mkdir(parents=True)
    (foreign / "data" / "x.txt").write_text("not ours")
    with pytest.raises(QgsProcessingException, match="was not written by this export"):
        _export(raster, polygons, foreign, OVERWRITE=True)
    assert _files(foreign) == ["data", "data/x.txt"]


def test_bad_inputs_get_clear_messages(provider, raster, polygons, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(QgsProcessingException, match=r"CATEGORY_FIELD 'kind' is not a field of .*label, name"):
        _export(raster, polygons, out, CATEGORY_FIELD="kind")
    x0, y0 = to_map(1100, 0)
    x1, y1 = to_map(1500, 400)  # the right column of chips: no polygon there
    with pytest.raises(QgsProcessingException, match=r"No polygon of .* lies on the raster .* within EXTENT"):
        _export(raster, polygons, out, EXTENT=f"{x0},{x1},{y1},{y0} [EPSG:32633]")
    with pytest.raises(QgsProcessingException, match="OVERLAP must be 0 to CHIP_SIZE - 1"):
        _export(raster, polygons, out, OVERLAP=512)
    assert not out.exists()  # nothing was created by the failures
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(QgsProcessingException, match=r"cannot be created: .*file.txt' is a file"):
        _export(raster, polygons, blocker / "dataset")


def _make_read_only(folder: Path) -> bool:
    """Make ``folder`` unwritable even for root (chattr +i) where possible; True when it worked."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
    else:
        subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
    try:
        (folder / "probe").mkdir()
    except OSError:
        return True
    (folder / "probe").rmdir()
    return False


def test_unwritable_output_folder_is_refused_before_any_work(provider, raster, polygons, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    if not _make_read_only(locked):
        pytest.skip("cannot make a folder read-only here (root without chattr)")
    try:
        with pytest.raises(QgsProcessingException, match=r"OUTPUT_FOLDER '.*locked' is not writable"):
            _export(raster, polygons, locked)
        with pytest.raises(QgsProcessingException, match="is not writable"):
            _export(raster, polygons, locked / "sub")
    finally:
        subprocess.run(["chattr", "-i", str(locked)], capture_output=True, check=False)
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


def test_cancel_writes_nothing(provider, raster, polygons, tmp_path):
    out = tmp_path / "cancelled"
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda v: feedback.cancel() if v > 20 else None)  # while writing chips
    params = {"INPUT": raster, "POLYGONS": polygons, "CHIP_SIZE": CHIP, "OUTPUT_FOLDER": str(out)}
    with pytest.raises(QgsProcessingException, match="Canceled"):
        _run(params, feedback)
    assert not out.exists()
    out.mkdir()
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda v: feedback.cancel() if v > 20 else None)
    with pytest.raises(QgsProcessingException, match="Canceled"):
        _run(params, feedback)
    assert list(out.iterdir()) == []  # an existing folder is left as it was, no staging folder


def test_dialog_opens_prefilled(provider, raster, polygons, qgis_iface, qgis_new_project, monkeypatch):
    from qgis.core import QgsVectorLayer
    from qgis.gui import QgsBrowserGuiModel

    browser = QgsBrowserGuiModel()  # pytest-qgis's iface has none; Processing's parameter panel asks for it
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: browser, raising=False)

    dialog_module = plugin_module("gui.coco_dialog")
    rlayer = QgsRasterLayer(raster, "ortho16")
    vlayer = QgsVectorLayer(polygons, "digitised", "ogr")
    QgsProject.instance().addMapLayers([rlayer, vlayer])
    qgis_iface.setActiveLayer(vlayer)
    assert dialog_module.default_parameters(vlayer, QgsProject.instance()) == {"INPUT": rlayer.id(),
                                                                                "POLYGONS": vlayer.id()}
    dialog = dialog_module.open_export_dialog(qgis_iface)
    try:
        assert dialog.isVisible() and dialog.algorithm().id() == "aisegmentation:export_coco"
        chosen = dialog.createProcessingParameters()
        assert chosen["INPUT"] == rlayer.id() and chosen["POLYGONS"] == vlayer.id()
        assert chosen["CHIP_SIZE"] == 1024 and chosen["CATEGORY_FIELD"] == "label"
    finally:
        dialog.close()
        dialog.deleteLater()


# --- core pieces on their own ---

def test_rle_matches_pycocotools():
    mask_util = pytest.importorskip("pycocotools.mask", reason="pycocotools is not installed (requirements-dev)")
    rng = np.random.default_rng(0)
    for mask in (rng.random((37, 53)) > 0.6, np.ones((4, 5), bool), np.zeros((3, 2), bool)):
        rle = rle_encode(mask)
        assert sum(rle["counts"]) == mask.size
        back = mask_util.decode(mask_util.frPyObjects(rle, *rle["size"]))
        assert np.array_equal(back.astype(bool), mask)
        ref = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert mask_util.area(ref) == mask.sum()


@pytest.mark.parametrize(("width", "overlap"), [(1536, 0), (1100, 0), (1100, 100), (500, 64), (4000, 256)])
def test_chip_grid_covers_the_raster_with_whole_chips(width, overlap):
    height = 700
    chips = chip_grid(width, height, CHIP, overlap)
    cols = sorted({c.col0 for c in chips})
    rows = sorted({c.row0 for c in chips})
    assert len(chips) == len(cols) * len(rows)
    for origins, length in ((cols, width), (rows, height)):
        size = min(CHIP, length)
        assert origins[0] == 0 and origins[-1] + size == length  # every pixel, no padding
        steps = np.diff(origins)
        assert (steps <= CHIP - overlap).all()  # neighbours overlap by at least OVERLAP
        assert len(origins) == 1 or steps.max() - steps.min() <= 1  # evenly spread
    assert {(c.width, c.height) for c in chips} == {(min(CHIP, width), min(CHIP, height))}


def test_export_params_are_checked():
    with pytest.raises(Exception, match="CHIP_SIZE must be 32 to 1024"):
        CocoExportParams(chip_size=2048).check()
    with pytest.raises(Exception, match="VAL_FRACTION must be at least 0 and below 1"):
        CocoExportParams(val_fraction=1.0).check()
