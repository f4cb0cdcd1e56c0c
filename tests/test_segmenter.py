"""RasterSegmenter with the real tiny ONNX models: crop choice, coordinates, cache, re-centring."""

from __future__ import annotations

import os

import numpy as np
import pytest
from family_models import FAMILY_FILES, family_params
from osgeo import gdal, osr

from core.families.transforms import resized_shape
from core.raster.crops import CropSpec, mask_bounds, touches_interior_edge
from core.raster.geo import PIXEL_GEOTRANSFORM
from core.raster.raster_source import RasterSource
from core.sam_decoder import PromptError, SamDecoder
from core.segment.embedding_cache import EmbeddingCache, entry_bytes
from core.segment.encode_estimate import format_duration
from core.segment.segmenter import (
    MapPrompt,
    NotEncodedError,
    OutsideRasterError,
    RasterSegmenter,
    Segmentation,
)

UTM_GT = (500000.0, 0.5, 0.0, 5000000.0, 0.0, -0.5)


def raster(path, w, h, gt=UTM_GT, epsg=32633, fill=None, driver="GTiff"):
    """A uint8 RGB raster with random texture, and ``fill(xx, yy) -> bool`` painted white."""
    rng = np.random.default_rng(w * h)
    img = rng.integers(0, 120, (3, h, w), dtype=np.uint8)
    if fill is not None:
        yy, xx = np.mgrid[:h, :w]
        img[:, fill(xx, yy)] = 255
    mem = gdal.GetDriverByName("MEM").Create("", w, h, 3, gdal.GDT_Byte)
    if gt is not None:
        mem.SetGeoTransform(gt)
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        mem.SetProjection(srs.ExportToWkt())
    for i in range(3):
        mem.GetRasterBand(i + 1).WriteArray(img[i])
    opts = ["TILED=YES"] if driver == "GTiff" else []
    out = gdal.GetDriverByName(driver).CreateCopy(str(path), mem, options=opts)
    del out, mem
    return str(path)


def to_map(col, row, gt=UTM_GT):
    return gt[0] + col * gt[1] + row * gt[2], gt[3] + col * gt[4] + row * gt[5]


@pytest.fixture
def make(tiny_paths, tmp_path):
    def _make(path, cache_dir=None, family="sam", **kw):
        cache = EmbeddingCache(str(cache_dir or tmp_path / "cache"))
        files = FAMILY_FILES[family]
        return RasterSegmenter(RasterSource.open(path, **kw), files["encoder"][0], files["decoder"][0], cache)
    return _make


@pytest.fixture(scope="module", params=family_params())
def family(request):
    """``(name, decoder)`` for every family with fixtures: the tests using it run once per family."""
    return request.param, SamDecoder(FAMILY_FILES[request.param]["decoder"][0])


def run(seg: RasterSegmenter, prompt: MapPrompt, previous=None, multimask=True):
    """What the GUI does: encode whatever crop is missing, then decode again. Returns (result, crops)."""
    encoded = []
    while True:
        try:
            return seg.segment(prompt, previous, multimask), encoded
        except NotEncodedError as exc:
            assert exc.crop not in encoded, "the same crop was asked for twice"
            seg.encode(exc.crop)
            encoded.append(exc.crop)


def direct(decoder, seg, crop, frame_points, labels=None, box=None, mask_input=None, multimask=True):
    """The decoder called by hand on a crop's cached embedding (continuous frame positions)."""
    pred = decoder.predict(seg.embedding(crop), frame_points, labels, box, mask_input, multimask, continuous=True)
    masks = pred.masks.copy()
    w, h = crop.valid_size(seg.source.width, seg.source.height)
    masks[:, h:], masks[:, :, w:] = False, False
    return masks, pred.scores, pred.low_res_logits


def test_prompt_checks_and_crop_choice(make, tmp_path):
    seg = make(raster(tmp_path / "r.tif", 3000, 2000))
    p = MapPrompt(points=(to_map(1000.5, 500.5),), labels=(1,))
    assert seg.crop_for(p) == CropSpec(768, 0, 1024, 1024)
    with pytest.raises(NotEncodedError) as info:
        seg.segment(p)
    assert info.value.crop == CropSpec(768, 0, 1024, 1024) and not seg.is_encoded(info.value.crop)
    with pytest.raises(OutsideRasterError, match=r"outside the raster 'r\.tif'"):
        seg.crop_for(MapPrompt(points=(to_map(-3, 10),), labels=(1,)))
    with pytest.raises(OutsideRasterError, match="does not overlap"):
        seg.segment(MapPrompt(box=(*to_map(3100, 2100), *to_map(3200, 2050))))
    with pytest.raises(PromptError, match="no prompt"):
        seg.segment(MapPrompt())
    with pytest.raises(PromptError, match="2 points but 1 labels"):
        seg.segment(MapPrompt(points=(to_map(1, 1), to_map(2, 2)), labels=(1,)))


def test_segment_equals_decoder_on_the_crop_with_exact_georeferencing(make, family, tmp_path):
    name, decoder = family
    seg = make(raster(tmp_path / "small.tif", 800, 600), family=name)
    x0, y1 = to_map(100, 500)
    x1, y0 = to_map(300, 300)
    prompt = MapPrompt(points=(to_map(200.5, 400.5), to_map(50.5, 60.5)), labels=(1, 0), box=(x0, y0, x1, y1))
    res, encoded = run(seg, prompt)
    assert encoded == [CropSpec(0, 0, 800, 600, 1)] and res.crop == encoded[0]
    assert res.masks.shape == (3, 600, 800) and res.scores.shape == (3,)
    assert res.low_res_logits.shape == (3, 256, 256)
    assert res.geotransform == UTM_GT and "32633" in res.crs_wkt
    masks, scores, _ = direct(decoder, seg, res.crop, [[200.5, 400.5], [50.5, 60.5]], [1, 0], [100, 300, 300, 500])
    np.testing.assert_array_equal(res.masks, masks)
    np.testing.assert_allclose(res.scores, scores)
    single, _ = run(seg, prompt, multimask=False)
    assert single.masks.shape == (1, 600, 800)


def test_refining_uses_previous_logits_only_on_the_same_crop(make, family, tmp_path):
    name, decoder = family
    seg = make(raster(tmp_path / "small.tif", 800, 600), family=name)
    first, _ = run(seg, MapPrompt(points=(to_map(200.5, 400.5),), labels=(1,)))
    two = MapPrompt(points=(to_map(200.5, 400.5), to_map(250.5, 420.5)), labels=(1, 1))
    refined, _ = run(seg, two, previous=first)
    masks, _, _ = direct(decoder, seg, first.crop, [[200.5, 400.5], [250.5, 420.5]], [1, 1],
                         mask_input=first.low_res_logits[first.best][None])
    np.testing.assert_array_equal(refined.masks, masks)
    elsewhere = Segmentation(first.masks, first.scores, first.low_res_logits + 5.0, first.geotransform,
                             first.crs_wkt, CropSpec(0, 0, 10, 10))
    unrefined, _ = run(seg, two, previous=elsewhere)  # not the same crop: no mask input
    plain, _, _ = direct(decoder, seg, first.crop, [[200.5, 400.5], [250.5, 420.5]], [1, 1])
    np.testing.assert_array_equal(unrefined.masks, plain)


def test_cache_hit_after_restart_and_miss_after_the_file_changes(make, family, tmp_path):
    path = raster(tmp_path / "r.tif", 1500, 1200)
    prompt = MapPrompt(points=(to_map(300.5, 300.5),), labels=(1,))
    first, encoded = run(make(path, family=family[0]), prompt)
    assert len(encoded) >= 1
    restarted = make(path, family=family[0])  # new source, cache and segmenter objects: a new QGIS session
    assert all(restarted.is_encoded(c) for c in encoded)
    restarted.prepare()  # what the GUI may run when the map tool is activated
    assert restarted._decoder is not None and restarted._encoder is None
    again, more = run(restarted, prompt)
    assert more == [] and restarted._encoder is None  # answered from disk, the encoder never loaded
    np.testing.assert_array_equal(again.masks, first.masks)
    assert not make(path, family=family[0], bands=(3, 2, 1)).is_encoded(encoded[0])  # other bands, other pixels
    ds = gdal.Open(path, gdal.GA_Update)
    ds.GetRasterBand(1).WriteArray(np.zeros((10, 10), np.uint8))
    del ds
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = make(path, family=family[0])
    assert not changed.is_encoded(encoded[0])
    with pytest.raises(NotEncodedError):
        changed.segment(prompt)


def test_corrupt_entry_is_encoded_again(make, family, tmp_path):
    seg = make(raster(tmp_path / "small.tif", 800, 600), family=family[0])
    prompt = MapPrompt(points=(to_map(200.5, 400.5),), labels=(1,))
    good, _ = run(seg, prompt)
    npy = next(os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "cache")
               for f in fs if f.endswith(".npy"))
    with open(npy, "r+b") as f:
        f.truncate(1000)
    with pytest.raises(NotEncodedError):
        seg.segment(prompt)
    again, encoded = run(seg, prompt)
    assert encoded == [good.crop]
    np.testing.assert_array_equal(again.masks, good.masks)


def test_object_straddling_a_crop_edge_comes_back_whole(make, decoder, tmp_path):
    """The tiny model's masks ignore image content, so this checks the mechanism: the first crop
    cuts the mask, segment() moves to crops that hold it whole, and the result is exactly the
    decoder's on the final crop, extending past the first crop's edge."""
    centre = (1650, 1200)  # a 300 px disk across x = 1792, the right edge of grid crop 768
    path = raster(tmp_path / "big.tif", 3000, 3000,
                  fill=lambda xx, yy: (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < 300**2)
    seg = make(path)
    prompt = MapPrompt(points=(to_map(centre[0] + 0.5, centre[1] + 0.5),), labels=(1,))
    res, encoded = run(seg, prompt)
    first = encoded[0]
    assert first == CropSpec(768, 768, 1024, 1024) and res.crop != first and len(encoded) >= 2
    cut, scores, _ = direct(decoder, seg, first, [[1650.5 - 768, 1200.5 - 768]], [1])
    assert touches_interior_edge(cut[np.argmax(scores)], seg.grid.interior_edges(first))  # first crop cuts
    best = res.masks[res.best]
    assert not touches_interior_edge(best, seg.grid.interior_edges(res.crop))
    s = res.crop.scale
    frame_pt = [[(1650.5 - res.crop.col0) / s, (1200.5 - res.crop.row0) / s]]
    masks, _, _ = direct(decoder, seg, res.crop, frame_pt, [1])
    np.testing.assert_array_equal(res.masks, masks)  # exactly the decoder's answer on that crop
    # the tiny model's blob fills its crop, so the chain goes coarser until no edge cuts it
    assert encoded[1:] == [CropSpec(256, 256, 1024, 1024, 2), CropSpec(0, 0, 750, 750, 4)]
    # not truncated at x = 1792, the first crop's right edge
    assert mask_bounds(best, res.crop)[2] > first.source_bounds[2] and best[:, 1792 // 4 + 1 :].any()
    assert res.geotransform == res.crop.geotransform(UTM_GT)


def test_spread_prompts_use_a_coarse_crop_with_padding_cleared(make, tmp_path):
    seg = make(raster(tmp_path / "wide.tif", 2001, 1001))
    prompt = MapPrompt(points=(to_map(10.5, 10.5), to_map(1990.5, 990.5)), labels=(1, 1))
    res, _ = run(seg, prompt)
    assert res.crop == CropSpec(0, 0, 1001, 501, 2)
    assert res.geotransform == (500000.0, 1.0, 0.0, 5000000.0, 0.0, -1.0)
    assert res.masks[:, :, :1000].any() and not res.masks[:, 500:].any() and not res.masks[:, :, 1000:].any()


def test_ungeoreferenced_png_works_in_pixel_coordinates(make, family, tmp_path):
    name, decoder = family
    seg = make(raster(tmp_path / "plain.png", 500, 400, gt=None, driver="PNG"), family=name)
    assert not seg.source.georeferenced and seg.source.notice
    res, _ = run(seg, MapPrompt(points=((100.5, -200.5),), labels=(1,)))
    assert res.geotransform == PIXEL_GEOTRANSFORM
    masks, _, _ = direct(decoder, seg, res.crop, [[100.5, 200.5]], [1])
    np.testing.assert_array_equal(res.masks, masks)


def test_epsg4326_raster(make, tmp_path):
    gt = (10.0, 0.001, 0.0, 50.0, 0.0, -0.001)
    seg = make(raster(tmp_path / "wgs.tif", 2000, 1500, gt=gt, epsg=4326))
    crop = seg.crop_for(MapPrompt(points=((11.2, 49.5),), labels=(1,)))  # pixel (1200, 500)
    assert crop == CropSpec(768, 0, 1024, 1024)
    assert crop.geotransform(gt) == pytest.approx((10.768, 0.001, 0.0, 50.0, 0.0, -0.001), abs=1e-12)


def test_estimate_and_crops_in_extent(make, tmp_path):
    seg = make(raster(tmp_path / "r.tif", 3000, 2000))
    crops = seg.crops_in_extent()
    est = seg.estimate(crops)
    assert (est.total, est.to_encode, est.seconds) == (12, 12, None) and "time unknown" in est.text
    seg.encode(crops[0])
    est = seg.estimate(crops)
    assert (est.total, est.to_encode) == (12, 11) and est.seconds > 0 and "11 of 12 crops" in est.text
    assert est.cache_bytes == 11 * entry_bytes("sam") and "23 MB)" in est.text and "evicted" not in est.text
    seg.cache.max_bytes = 10 * entry_bytes("sam")
    assert "more than the 21 MB embedding cache" in seg.estimate(crops).text
    assert seg.crops_in_extent((*to_map(10, 20), *to_map(20, 10))) == [crops[0]]
    assert [format_duration(s) for s in (45, 720, 7500)] == ["45 s", "12 min", "2 h 05 min"]


class _FeedSpy:
    """Stands in for the decoder's onnxruntime session: records each feed, then runs the real one."""

    def __init__(self, session, feeds):
        self._session, self.feeds = session, feeds

    def run(self, names, feed, *args):
        self.feeds.append({k: np.array(v) for k, v in feed.items()})
        return self._session.run(names, feed, *args)


def spy_decoder(seg):
    impl = seg._get_decoder()._impl
    feeds = []
    impl.session = _FeedSpy(impl.session, feeds)
    return feeds


# Where each family's decoder graph puts a fed coordinate in its 1024 frame, and its prompt order.
LANDING = {
    "sam": (lambda fed: fed + 0.5, "points, box, padding"),  # + 0.5 in the graph; padding only without a box
    "sam2": (lambda fed: fed + 0.5, "box, points"),  # the graph adds 0.5 and appends its padding point
    # fed in a 256 px "original" (orig_im_size): the graph scales by 1024 / 256, adds 0.5, pads to 6 points
    "efficientsam": (lambda fed: fed * 4 + 0.5, "box, points"),
}


@pytest.mark.parametrize(("w", "h"), [(400, 300), (600, 900)])
def test_a_click_lands_on_its_pixel_on_a_small_frame(make, family, tmp_path, w, h):
    """#13.2: a frame whose long side is not 1024 px. The decoder graphs add 0.5 in their 1024
    frame, so a click at a pixel's centre p must reach the graph so that it lands at p * s, the
    centre of that pixel scaled (SAM: s = resized / original, about 1024 / long side; SAM 2.1 and
    EfficientSAM: 1024 / W in x, 1024 / H in y). SAM's old flat -0.5 in frame pixels put it
    0.5 * (s - 1) = 0.78 px off at 400x300. Boxes too."""
    name, _ = family
    seg = make(raster(tmp_path / "small.tif", w, h), family=name)
    run(seg, MapPrompt(points=(to_map(w / 2 + 0.5, h / 2 + 0.5),), labels=(1,)))  # encodes the one crop
    feeds = spy_decoder(seg)
    x0, y1 = to_map(40, 260)
    x1, y0 = to_map(120, 180)
    res = seg.segment(MapPrompt(points=(to_map(123.5, 77.5), to_map(10.5, 290.5)), labels=(1, 0),
                                box=(x0, y0, x1, y1)))
    assert res.crop == CropSpec(0, 0, w, h) and len(feeds) == 1
    new_h, new_w = resized_shape(h, w)  # SAM: ResizeLongestSide, rounded
    s = np.array([new_w / w, new_h / h]) if name == "sam" else np.array([1024 / w, 1024 / h])
    points, box = np.array([[123.5, 77.5], [10.5, 290.5]]) * s, np.array([[40, 180], [120, 260]]) * s
    land, order = LANDING[name]
    fed = feeds[0].get("point_coords", feeds[0].get("batched_point_coords"))
    fed = fed.reshape(-1, 2).astype(np.float64)
    if order == "box, points":
        want, labels = np.concatenate([box, points]), [2, 3, 1, 0]
    else:
        want, labels = np.concatenate([points, box]), [1, 0, 2, 3]
    np.testing.assert_allclose(land(fed), want, atol=1e-3)
    fed_labels = feeds[0].get("point_labels", feeds[0].get("batched_point_labels"))
    np.testing.assert_array_equal(fed_labels.ravel(), labels)
