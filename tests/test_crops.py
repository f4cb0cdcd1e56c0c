"""Crop grid, crop choice for prompts, re-centring on objects cut by a crop edge."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from core.raster.crops import (
    RECENTRE_CONTEXT,
    CropGrid,
    CropSpec,
    crops_in_extent,
    mask_bounds,
    touches_interior_edge,
)

ROOT = Path(__file__).resolve().parents[1]
UTM_GT = (500000.0, 0.5, 0.0, 5000000.0, 0.0, -0.5)


def origins(crops):
    crops = list(crops)
    return sorted({c.col0 for c in crops}), sorted({c.row0 for c in crops})


def test_grid_overlaps_and_ends_at_the_raster_edge():
    crops = list(CropGrid(3000, 2000).crops())
    assert origins(crops) == ([0, 768, 1536, 1976], [0, 768, 976])
    assert all((c.width, c.height, c.scale) == (1024, 1024, 1) for c in crops)
    assert all(c.valid_size(3000, 2000) == (1024, 1024) for c in crops)  # no padding on the grid
    assert origins(CropGrid(1025, 1024).crops()) == ([0, 1], [0])


def test_small_raster_is_one_crop_of_its_size():
    assert list(CropGrid(500, 300).crops()) == [CropSpec(0, 0, 500, 300, 1)]
    assert list(CropGrid(1024, 700).crops()) == [CropSpec(0, 0, 1024, 700, 1)]
    assert [(c.col0, c.height) for c in CropGrid(3000, 700).crops()] == [(0, 700), (768, 700), (1536, 700),
                                                                         (1976, 700)]
    assert CropGrid(500, 300).max_scale == 1 and CropGrid(3000, 700).max_scale == 4


def test_best_crop_has_the_largest_margin():
    grid = CropGrid(3000, 3000)
    # x = 1000: crop 0 leaves 24 px to its right edge, crop 768 leaves 232 px
    assert grid.best_crop(np.array([[1000.0, 500.0]])) == CropSpec(768, 0, 1024, 1024)
    # near the raster's left edge the edge is no cut: crop 0 wins over crop 768 (not holding x=100)
    assert grid.best_crop(np.array([[100.0, 2950.0]])) == CropSpec(0, 1976, 1024, 1024)
    # all prompts in one crop, with the margin of the worst one
    assert grid.best_crop(np.array([[800.0, 900.0], [1700.0, 950.0]])) == CropSpec(768, 768, 1024, 1024)


def test_prompts_too_far_apart_use_a_coarser_grid_crop():
    grid = CropGrid(5000, 5000)
    crop = grid.best_crop(np.array([[100.0, 100.0], [1900.0, 1900.0]]))
    assert crop.scale == 2 and crop.col0 <= 100 and crop.source_bounds[2] >= 1900
    whole = grid.best_crop(np.array([[10.0, 10.0], [4990.0, 4990.0]]))
    assert whole == CropSpec(0, 0, 625, 625, 8)


def test_interior_edges_and_touching():
    grid = CropGrid(3000, 3000)
    edges = grid.interior_edges(CropSpec(0, 768, 1024, 1024))
    assert edges == (False, True, True, True)
    mask = np.zeros((1024, 1024), bool)
    mask[500:600, 0:50] = True  # on the left edge, which is the raster's edge: not a cut
    assert not touches_interior_edge(mask, edges)
    mask[500:600, 1000:1024] = True
    assert touches_interior_edge(mask, edges)
    assert not touches_interior_edge(mask, grid.interior_edges(CropSpec(0, 0, 750, 750, 4)))


def disk(crop: CropSpec, centre, radius):
    """A disk object of the source raster rasterised on a crop's frame."""
    f = np.arange(crop.width) * crop.scale + crop.col0 + crop.scale / 2
    r = np.arange(crop.height) * crop.scale + crop.row0 + crop.scale / 2
    return (f[None] - centre[0]) ** 2 + (r[:, None] - centre[1]) ** 2 <= radius**2


def test_object_straddling_a_crop_edge_is_recentred_and_whole():
    grid = CropGrid(4000, 4000)
    centre, radius = (1650.0, 1200.0), 300.0  # crosses x = 1792, the right edge of crop 768
    first = grid.best_crop(np.array([centre]))
    assert first == CropSpec(768, 768, 1024, 1024)
    cut = disk(first, centre, radius)
    assert touches_interior_edge(cut, grid.interior_edges(first))
    c0, r0, c1, r1 = mask_bounds(cut, first)
    assert (c0, r0, c1, r1) == (1350, 900, 1792, 1500)  # cut at x = 1792
    crop = grid.recentre((c0, r0, c1, r1))
    assert crop == CropSpec(1056, 704, 1024, 1024)  # centred on the box, origin snapped to 32 px
    whole = disk(crop, centre, radius)
    assert not touches_interior_edge(whole, grid.interior_edges(crop))  # the object is whole now
    assert whole.sum() == pytest.approx(np.pi * radius**2, rel=0.01)
    assert mask_bounds(whole, crop) == (1350, 900, 1950, 1500)


def test_recentre_goes_coarser_for_large_objects_and_stays_inside():
    grid = CropGrid(6000, 5000)
    big = grid.recentre((1000, 1000, 2500, 1800))
    assert big.scale == 2 and big.col0 % (RECENTRE_CONTEXT // 2 * 2) == 0
    c0, r0, c1, r1 = big.source_bounds
    assert c0 <= 1000 - 64 and c1 >= 2500 + 64 and r0 <= 1000 - 64 and r1 >= 1800 + 64
    edge = grid.recentre((5900, 4950, 5990, 5000))
    assert edge == CropSpec(6000 - 1024, 5000 - 1024, 1024, 1024)
    assert grid.recentre((0, 0, 6000, 5000)) == CropSpec(0, 0, 750, 625, 8)


def test_crops_in_extent():
    src = SimpleNamespace(width=3000, height=2000, geotransform=UTM_GT)
    assert len(crops_in_extent(src)) == 12
    # 100 x 100 m around pixel (1000, 500): inside crops 0 and 768 of the first row only
    ext = (500000 + 475, 5000000 - 275, 500000 + 525, 5000000 - 225)
    assert crops_in_extent(src, ext) == [CropSpec(0, 0, 1024, 1024), CropSpec(768, 0, 1024, 1024)]
    assert crops_in_extent(src, (0.0, 0.0, 10.0, 10.0)) == []
    assert len(crops_in_extent(src, (400000.0, 4000000.0, 600000.0, 6000000.0))) == 12
    assert len(crops_in_extent(src, stride=1024)) == 3 * 2


def test_crop_spec_validation():
    with pytest.raises(ValueError):
        CropSpec(-1, 0, 1024, 1024)
    with pytest.raises(ValueError):
        CropSpec(0, 0, 2048, 1024)
    with pytest.raises(ValueError, match="stride"):
        CropGrid(100, 100, stride=0)



def _best_crop_within(seconds, width, height, pixels):
    """``CropGrid(width, height).best_crop(pixels)`` in a child Python killed after ``seconds`` (a hang
    fails the test instead of blocking it): ``("ok", crop as a dict)`` or ``(error type, message)``."""
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        sys.path.insert(0, {str(ROOT)!r})
        from core.raster.crops import CropGrid
        try:
            crop = CropGrid({width}, {height}).best_crop(np.array(json.loads({json.dumps(pixels)!r}), float))
            print(json.dumps(["ok", crop.as_dict()]))
        except Exception as exc:
            print(json.dumps([type(exc).__name__, str(exc)]))
    """)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"best_crop({pixels}) still ran after {seconds} s (an endless loop)")
    assert out.returncode == 0, out.stderr
    return tuple(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize("pixels", [
    [[-0.5, 100.0]],  # left of the raster
    [[100.0, 100.0], [3000.5, 100.0]],  # one position just past the right edge
    [[100.0, 100.0], [5000.0, 100.0]],  # and far past it
    [[100.0, 2000.5]],  # below
    [[float("nan"), 10.0]],  # not a position
])
def test_best_crop_refuses_positions_off_the_raster(pixels):
    kind, message = _best_crop_within(30, 3000, 2000, pixels)
    assert kind == "ValueError", message
    assert "outside the 3000 x 2000 px raster" in message


def test_best_crop_takes_the_raster_edges():
    assert _best_crop_within(30, 3000, 2000, [[0.0, 0.0], [3000.0, 2000.0]]) == (
        "ok", CropSpec(0, 0, 750, 500, 4).as_dict())
    assert _best_crop_within(30, 3000, 2000, [[3000.0, 2000.0]]) == ("ok", CropSpec(1976, 976, 1024, 1024).as_dict())
