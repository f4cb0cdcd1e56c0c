"""The raster-wide stretch on huge, mostly empty rasters (issue #13, item 3).

Every raster here is a 100,000 x 100,000 px VRT (10 gigapixels) over one small real GeoTIFF, so
it costs nothing on disk; what GDAL reads for the statistics is counted through ``read_valid``.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import pytest
from osgeo import gdal

from core.raster import band_sample as bs
from core.raster import raster_source as rs
from core.raster.raster_source import RasterSource

SIZE = 100_000
TILE = 500


def tile(path: Path, values: Optional[np.ndarray] = None) -> np.ndarray:
    """A small UInt16 GeoTIFF (default: a ramp of 100..4099); returns its values."""
    a = values if values is not None else (np.arange(TILE * TILE).reshape(TILE, TILE) % 4000 + 100).astype(np.uint16)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), a.shape[1], a.shape[0], 1, gdal.GDT_UInt16)
    ds.GetRasterBand(1).WriteArray(a)
    del ds
    return a


def vrt(path: Path, sources: List[Tuple[str, Tuple[int, int, int, int], Tuple[int, int, int, int]]],
        nodata: Optional[float]) -> str:
    """A SIZE x SIZE UInt16 VRT with ``(file, src rect, dst rect)`` simple sources."""
    parts = "".join(
        f'<SimpleSource><SourceFilename relativeToVRT="1">{name}</SourceFilename><SourceBand>1</SourceBand>'
        f'<SrcRect xOff="{s[0]}" yOff="{s[1]}" xSize="{s[2]}" ySize="{s[3]}"/>'
        f'<DstRect xOff="{d[0]}" yOff="{d[1]}" xSize="{d[2]}" ySize="{d[3]}"/></SimpleSource>'
        for name, s, d in sources)
    nd = "" if nodata is None else f"<NoDataValue>{nodata}</NoDataValue>"
    path.write_text(f'<VRTDataset rasterXSize="{SIZE}" rasterYSize="{SIZE}">'
                    f'<SRS>EPSG:32633</SRS><GeoTransform>500000, 1, 0, 5000000, 0, -1</GeoTransform>'
                    f'<VRTRasterBand dataType="UInt16" band="1">{nd}{parts}</VRTRasterBand></VRTDataset>')
    return str(path)


def overlaps(a: Tuple[int, int, int, int], b: Tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.fixture
def reads(monkeypatch) -> List[Tuple[int, int, int, int]]:
    """Every window read for the statistics."""
    seen: List[Tuple[int, int, int, int]] = []
    real = rs.read_valid
    monkeypatch.setattr(rs, "read_valid", lambda *args: seen.append(args[2]) or real(*args))
    return seen


@pytest.mark.parametrize("nodata", [None, 0])
@pytest.mark.parametrize("corner", [(0, 0), (SIZE - TILE, SIZE - TILE), (37_013, 61_009)])
def test_sparse_vrt_finds_the_one_tile(tmp_path, reads, nodata, corner):
    """Before the fix: (0, 0) without nodata (the empty area reads as valid zeros), (0, 255)
    'unstretched' with nodata 0 (no valid pixel in the evenly spread blocks)."""
    a = tile(tmp_path / "tile.tif")
    path = vrt(tmp_path / "huge.vrt", [("tile.tif", (0, 0, TILE, TILE), (*corner, TILE, TILE))], nodata)
    src = RasterSource.open(path)
    lo, hi = np.percentile(a, [2, 98])
    assert src.stretch[0] == pytest.approx((lo, hi), abs=12), src.stretch  # 4000 levels: within 0.3 %
    assert src.warnings == () and src.notice is None
    read = sum(w[2] * w[3] for w in reads)
    assert read <= 2 * TILE * TILE  # only blocks that hold data were read
    # The image is stretched: mid-ramp values come out grey, not black or white.
    crop = src.read(rs.CropSpec(corner[0], corner[1], 512, 512))
    assert 100 < crop[:TILE, :TILE].mean() < 155 and crop[:TILE, :TILE].std() > 50


def test_stretch_is_deterministic(tmp_path):
    tile(tmp_path / "tile.tif")
    path = vrt(tmp_path / "huge.vrt", [("tile.tif", (0, 0, TILE, TILE), (51_111, 20_202, TILE, TILE))], None)
    assert RasterSource.open(path).stretch == RasterSource.open(path).stretch  # it is in cache keys


def test_keeps_sampling_until_enough_valid_pixels(tmp_path, reads):
    """Coverage says data everywhere (one source spans the raster), but only a 1 % patch is not
    nodata, away from the first evenly spread blocks. Before the fix: no valid pixel, (0, 255)."""
    a = np.zeros((1000, 1000), np.uint16)
    patch = np.tile(1000 + 20 * np.arange(100, dtype=np.uint16), (100, 1))  # 1000..2980 by column
    a[430:530, 610:710] = patch
    tile(tmp_path / "sparse.tif", a)
    path = vrt(tmp_path / "huge.vrt", [("sparse.tif", (0, 0, 1000, 1000), (0, 0, SIZE, SIZE))], 0)
    src = RasterSource.open(path)
    first = bs.spread_blocks(SIZE, SIZE, (128, 128))
    patch_area = (61_000, 43_000, 10_000, 10_000)
    assert not any(overlaps(w, patch_area) for w in first)  # the first round alone misses the patch
    lo, hi = src.stretch[0]  # a handful of blocks, each ~1.3 patch columns wide: within the patch's range
    assert 1000 <= lo < hi <= 2980 and hi - lo >= 200, src.stretch
    assert src.warnings == ()
    assert sum(w[2] * w[3] for w in reads) <= bs.STATS_MAX_READ_PX


def test_no_valid_pixel_in_the_sample_is_said_and_bounded(tmp_path, reads):
    """All nodata, spread over the whole raster: the sampling stops at its pixel bound and says so."""
    tile(tmp_path / "empty.tif", np.zeros((1000, 1000), np.uint16))
    path = vrt(tmp_path / "huge.vrt", [("empty.tif", (0, 0, 1000, 1000), (0, 0, SIZE, SIZE))], 0)
    src = RasterSource.open(path)
    assert src.stretch[0] == (0.0, 65535.0)  # the data type's range, never (0, 0)
    (note,) = src.warnings
    assert note.startswith("No valid pixel was found in the sampled part of band 1 of ")
    assert path in note and "falls back to the data type's range 0..65535" in note
    assert "Build Overviews" in note and note in src.notice
    read = sum(w[2] * w[3] for w in reads)
    assert 0.9 * bs.STATS_MAX_READ_PX <= read <= bs.STATS_MAX_READ_PX
    assert len({w[1] for w in reads}) > 20 and len({w[0] for w in reads}) > 20  # spread over the raster


@pytest.mark.parametrize("covered", [False, True])
def test_a_raster_without_data_is_said(tmp_path, reads, covered):
    """No source at all (GDAL reports every block empty), or one all-nodata tile (read whole)."""
    tile(tmp_path / "empty.tif", np.zeros((TILE, TILE), np.uint16))
    sources = [("empty.tif", (0, 0, TILE, TILE), (9_000, 9_000, TILE, TILE))] if covered else []
    path = vrt(tmp_path / "huge.vrt", sources, 0)
    src = RasterSource.open(path)
    assert src.stretch[0] == (0.0, 65535.0)
    (note,) = src.warnings
    why = "every pixel is nodata or masked" if covered else "no part of it holds data"
    assert note == (f"Band 1 of '{path}' holds no valid pixel ({why}): it shows black. "
                    "Check the band choice and the layer's nodata value.")
    assert sum(w[2] * w[3] for w in reads) <= (2 * TILE * TILE if covered else 0)


def test_ordinary_rasters_keep_the_evenly_spread_sample(tmp_path, reads):
    """A fully covered raster reads the same evenly spread blocks as before (cache keys unchanged)."""
    rng = np.random.default_rng(5)
    a = rng.integers(200, 3000, (1000, 1000)).astype(np.uint16)
    tile(tmp_path / "full.tif", a)
    path = vrt(tmp_path / "huge.vrt", [("full.tif", (0, 0, 1000, 1000), (0, 0, SIZE, SIZE))], None)
    src = RasterSource.open(path)
    assert reads == bs.spread_blocks(SIZE, SIZE, (128, 128))
    ds = gdal.Open(path)
    sample = np.concatenate([ds.ReadAsArray(*w).ravel() for w in reads])
    del ds
    assert src.stretch[0] == tuple(np.percentile(sample, [2, 98]))
