"""Rasters of any kind -> RGB uint8 crops: bands, stretch, nodata, palettes, padding, threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from osgeo import gdal

from core import image_utils as iu
from core.raster import band_sample as bs
from core.raster import raster_source as rs
from core.raster.crops import CropGrid, CropSpec
from core.raster.raster_source import RasterReadError, RasterSource

GT = (300000.0, 1.0, 0.0, 6000000.0, 0.0, -1.0)


def write(path, bands, dtype=gdal.GDT_Byte, nodata=None, interps=None, options=("TILED=YES",)):
    """A GeoTIFF from a list of [H, W] arrays."""
    h, w = bands[0].shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, len(bands), dtype, list(options))
    ds.SetGeoTransform(GT)
    for i, a in enumerate(bands, 1):
        b = ds.GetRasterBand(i)
        b.WriteArray(a)
        if nodata is not None:
            b.SetNoDataValue(nodata)
        if interps:
            b.SetColorInterpretation(interps[i - 1])
    ds.FlushCache()
    del ds
    return str(path)


def test_default_bands_and_checks():
    assert iu.default_bands(["Blue", "Green", "Red", "Undefined"]) == (3, 2, 1)
    assert iu.default_bands(["Gray"]) == (1, 1, 1)
    assert iu.default_bands(["Gray", "Alpha"]) == (1, 1, 1)
    assert iu.default_bands(["Undefined", "Undefined"]) == (1, 2, 2)
    assert iu.default_bands(["Undefined"] * 6) == (1, 2, 3)
    assert iu.check_bands([4], 5) == (4, 4, 4)
    with pytest.raises(iu.BandError, match="band 5 does not exist: the raster has bands 1 to 4"):
        iu.check_bands([4, 3, 5], 4)
    with pytest.raises(iu.BandError, match=r"one band \(grey\) or three"):
        iu.check_bands([1, 2], 4)


def test_stretch_maps_percentiles_and_blackens_invalid():
    v = np.array([[0.0, 60.0, 100.0, np.nan, np.inf, -9999.0]])
    valid = iu.valid_mask(v, -9999.0)
    np.testing.assert_array_equal(valid, [[True, True, True, False, False, False]])
    assert iu.percentile_stretch(v, valid) == pytest.approx((2.4, 98.4))  # of 0, 60, 100
    np.testing.assert_array_equal(iu.stretch_to_uint8(v, (0.0, 100.0), valid), [[0, 153, 255, 0, 0, 0]])
    assert iu.percentile_stretch(v, np.zeros_like(valid)) is None


def test_uint8_rgb_is_read_as_is(tmp_path):
    rng = np.random.default_rng(1)
    arrs = [rng.integers(0, 256, (700, 900), dtype=np.uint8) for _ in range(3)]
    src = RasterSource.open(write(tmp_path / "rgb.tif", arrs))
    assert src.bands == (1, 2, 3) and src.stretch == (None, None, None)
    img = src.read(CropSpec(0, 0, 900, 700))
    np.testing.assert_array_equal(img, np.stack(arrs, axis=-1))


def test_16bit_4band_nodata_consistent_across_overlapping_crops(tmp_path):
    rng = np.random.default_rng(2)
    h, w = 1500, 2000
    arrs = [rng.normal(1000 + 500 * i, 200, (h, w)).clip(1, 60000).astype(np.uint16) for i in range(4)]
    for a in arrs:
        a[:300, :400] = 0  # a nodata corner
        a[1200:, 700:900] = 0  # nodata inside the crops' overlap
    src = RasterSource.open(write(tmp_path / "ms.tif", arrs, gdal.GDT_UInt16, nodata=0), bands=(4, 3, 2))
    for ch, b in enumerate((4, 3, 2)):  # small raster: statistics on all valid pixels, nodata left out
        valid = arrs[b - 1][arrs[b - 1] != 0]
        assert src.stretch[ch] == pytest.approx(tuple(np.percentile(valid, [2, 98])))
    a, b = CropGrid(w, h).crops().__next__(), list(CropGrid(w, h).crops())[1]
    assert (a.col0, b.col0) == (0, 768)
    ia, ib = src.read(a), src.read(b)
    np.testing.assert_array_equal(ia[:, 768:], ib[:, :256])  # same stretch in both crops
    assert not ia[:300, :400].any() and not ia[1200:, 768:900].any()  # nodata is black
    body = ia[300:1024, 400:]
    assert 60 < body.mean() < 200 and body.std() > 30  # a sensible, contrasted image
    assert (body == 0).mean() < 0.05 and (body == 255).mean() < 0.05


def test_float_nan_inf_and_stats_sample_bounded(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    a = rng.uniform(-5, 5, (3000, 2000)).astype(np.float32)
    a[::7, ::3] = np.nan
    a[1::11, ::5] = np.inf
    path = write(tmp_path / "f.tif", [a], gdal.GDT_Float32)
    reads = []
    real = rs.read_valid
    monkeypatch.setattr(rs, "read_valid", lambda *args: reads.append(args[2]) or real(*args))
    src = RasterSource.open(path)
    sampled = sum(win[2] * win[3] for win in reads)
    assert 0 < sampled <= 1.2 * bs.STATS_BLOCK_PX  # 6 Mpx raster: evenly spread blocks only
    assert len({win[1] for win in reads}) > 1 and len({win[0] for win in reads}) > 1
    lo, hi = src.stretch[0]
    assert lo == pytest.approx(-4.8, abs=0.05) and hi == pytest.approx(4.8, abs=0.05)
    img = src.read(CropSpec(0, 0, 1024, 1024))
    assert src.bands == (1, 1, 1) and (img[..., 0] == img[..., 2]).all()
    assert not img[:1024:7, :1024:3].any() and not img[1:1024:11, :1024:5].any()


def test_stretch_comes_from_an_overview_when_present(tmp_path):
    a = np.full((2500, 2000), 1000, np.uint16)
    path = write(tmp_path / "ovr.tif", [a], gdal.GDT_UInt16)
    ds = gdal.Open(path, gdal.GA_Update)
    ds.BuildOverviews("NEAREST", [2, 4])
    band = ds.GetRasterBand(1)
    ovr = band.GetOverview(0)  # 1250 x 1000 = 1.25 Mpx <= STATS_MAX_PX: the one used
    ovr.WriteArray(np.tile(np.arange(1000, dtype=np.uint16)[None] * 10, (1250, 1)))
    del ovr, band, ds
    src = RasterSource.open(path)
    assert src.stretch[0] == pytest.approx((np.percentile(np.arange(1000) * 10, 2), np.percentile(
        np.arange(1000) * 10, 98)))


def test_grey_two_band_and_user_choice(tmp_path):
    g = np.arange(100 * 120, dtype=np.uint8).reshape(100, 120)
    grey = RasterSource.open(write(tmp_path / "g.tif", [g]))
    img = grey.read(CropSpec(0, 0, 120, 100))
    assert grey.bands == (1, 1, 1) and all((img[..., c] == g).all() for c in range(3))
    two = RasterSource.open(write(tmp_path / "two.tif", [g, 255 - g]))
    img = two.read(CropSpec(0, 0, 120, 100))
    assert two.bands == (1, 2, 2) and (img[..., 0] == g).all() and (img[..., 2] == 255 - g).all()
    five = RasterSource.open(write(tmp_path / "five.tif", [g + i for i in range(5)]), bands=[5, 1, 3])
    img = five.read(CropSpec(0, 0, 120, 100))
    np.testing.assert_array_equal(img, np.stack([g + 4, g, g + 2], -1))


def test_alpha_band_blackens_transparent_pixels(tmp_path):
    g = np.full((50, 60), 200, np.uint8)
    alpha = np.full((50, 60), 255, np.uint8)
    alpha[:10] = 0
    src = RasterSource.open(write(tmp_path / "ga.tif", [g, alpha], interps=[gdal.GCI_GrayIndex,
                                                                          gdal.GCI_AlphaBand]))
    img = src.read(CropSpec(0, 0, 60, 50))
    assert src.bands == (1, 1, 1) and not img[:10].any() and (img[10:] == 200).all()


def test_palette_is_expanded(tmp_path):
    idx = np.zeros((40, 50), np.uint8)
    idx[:, 25:] = 2
    idx[:5] = 9  # nodata index
    path = str(tmp_path / "pal.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 50, 40, 1, gdal.GDT_Byte)
    ct = gdal.ColorTable()
    ct.SetColorEntry(0, (10, 20, 30, 255))
    ct.SetColorEntry(2, (200, 100, 50, 255))
    band = ds.GetRasterBand(1)
    band.SetRasterColorTable(ct)
    band.SetColorInterpretation(gdal.GCI_PaletteIndex)
    band.SetNoDataValue(9)
    band.WriteArray(idx)
    del band, ds
    src = RasterSource.open(path)
    assert src.palette is not None and src.stretch == (None, None, None)
    img = src.read(CropSpec(0, 0, 50, 40))
    assert (img[5:, :25] == (10, 20, 30)).all() and (img[5:, 25:] == (200, 100, 50)).all()
    assert not img[:5].any()
    coarse = src.read(CropSpec(0, 0, 25, 20, 2))  # indices are never averaged
    assert {tuple(p) for p in coarse[3:].reshape(-1, 3)} == {(10, 20, 30), (200, 100, 50)}


def test_edge_crop_is_padded_not_stretched(tmp_path):
    rng = np.random.default_rng(4)
    arrs = [rng.integers(1, 256, (1500, 1300), dtype=np.uint8) for _ in range(3)]
    src = RasterSource.open(write(tmp_path / "e.tif", arrs))
    crop = CropSpec(1000, 1200, 1024, 1024)
    img = src.read(crop)
    assert img.shape == (1024, 1024, 3) and crop.valid_size(1300, 1500) == (300, 300)
    np.testing.assert_array_equal(img[:300, :300], np.stack(arrs, -1)[1200:, 1000:])
    assert not img[300:].any() and not img[:, 300:].any()


def test_coarse_crop_is_averaged_while_reading(tmp_path):
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (1001, 1000), dtype=np.uint8)
    src = RasterSource.open(write(tmp_path / "c.tif", [a]))
    crop = CropSpec(0, 0, 501, 501, 2)
    img = src.read(crop)[..., 0]
    assert crop.valid_size(1000, 1001) == (500, 500)  # the half pixel past the edge stays black
    ref = a[:1000, :1000].reshape(500, 2, 500, 2).astype(float).mean(axis=(1, 3))
    assert np.abs(img[:500, :500] - ref).max() <= 1.0 and not img[500:].any() and not img[:, 500:].any()


def test_reading_from_threads_matches_sequential(tmp_path):
    rng = np.random.default_rng(6)
    arrs = [rng.integers(0, 65535, (2000, 2000), dtype=np.uint16) for _ in range(3)]
    src = RasterSource.open(write(tmp_path / "t.tif", arrs, gdal.GDT_UInt16))
    crops = list(CropGrid(2000, 2000).crops())
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(src.read, crops))
    for crop, img in zip(crops, parallel):
        np.testing.assert_array_equal(img, src.read(crop))


def test_unreadable_raster_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(RasterReadError, match=r"cannot open the raster .*bad\.tif.: it is not in a raster format"):
        RasterSource.open(str(bad))
    with pytest.raises(RasterReadError, match=r"missing\.tif': it does not exist"):
        RasterSource.open(str(tmp_path / "missing.tif"))
