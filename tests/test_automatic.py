"""core.segment.amg_utils and core.segment.automatic: Meta's automatic mask generator in numpy, on tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from family_models import FAMILY_FILES, family_params
from sam_cases import make_image

from core.families.base import PointRunner
from core.families.transforms import bicubic_matrix, postprocess_matrices, resized_shape
from core.raster.crops import CropGrid
from core.sam_encoder import SamEncoder
from core.segment import amg_utils as au
from core.segment import automatic as amg
from core.segment.automatic import AmgParams, CropRegion, MaskRecord
from tools.plugin_package import plugin_module

# --- Meta's building blocks ---


def test_point_grid_is_metas():
    assert np.allclose(au.point_grid(2), [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    g = au.point_grid(32)
    assert g.shape == (1024, 2) and np.isclose(g.min(), 1 / 64) and np.isclose(g.max(), 1 - 1 / 64)
    assert np.allclose(g[:32, 1], 1 / 64)  # row by row: x varies first


def test_stability_score():
    logits = np.full((2, 4, 5), -5.0)
    logits[0, :2, :2] = 3.0  # 4 pixels > +1
    logits[0, 2, :2] = 0.5  # 2 more > -1
    assert np.allclose(au.stability_score(logits, 0.0, 1.0), [4 / 6, 0.0])
    assert np.isclose(au.stability_score(logits[0], 0.0, 0.25), 6 / 6)


def test_nms_suppresses_above_threshold_only_and_keeps_score_order():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 12], [20, 20, 30, 30], [0, 0, 10, 20]], float)
    scores = np.array([0.5, 0.9, 0.7, 0.6])
    # IoU(1, 0) = 100/120 = 0.833; IoU(1, 3) = 120/200 = 0.6 (not > 0.6: kept)
    assert au.nms(boxes, scores, 0.6).tolist() == [1, 2, 3]
    assert au.nms(boxes, scores, 0.9).tolist() == [1, 2, 3, 0]
    # Zero-area boxes give IoU 0/0 = NaN, which suppresses nothing (torchvision's kernel).
    assert au.nms(np.array([[5, 5, 5, 5], [5, 5, 5, 5]], float), np.array([1.0, 0.5]), 0.1).tolist() == [0, 1]
    assert au.nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_near_crop_edge_ignores_image_edges():
    crop, image = (0, 0, 100, 100), (0, 0, 200, 100)
    boxes = np.array([
        [10, 10, 50, 50],  # inside
        [50, 10, 99, 50],  # at the crop's right edge, inside the image: near
        [10, 0, 50, 50],  # at the top, which is also the image's: not near
        [10, 10, 50, 81],  # within 20 px of the bottom, an image edge: not near
        [10, 10, 79, 50],  # 21 px from the right edge
    ], float)
    assert au.near_crop_edge(boxes, crop, image).tolist() == [False, True, False, False, False]


def _partition(labels: np.ndarray) -> set:
    return {frozenset(zip(*np.nonzero(labels == k))) for k in range(1, labels.max() + 1)}


def test_label_components_is_8_connected():
    m = np.zeros((6, 7), bool)
    m[0, 0] = m[1, 1] = m[2, 2] = True  # a diagonal: one component
    m[0, 4:7] = True
    m[4:6, 0:2] = True
    m[5, 3] = True  # touches nothing (gap at column 2)
    labels, sizes = au.label_components(m)
    assert labels.max() == 4 and sizes.tolist() == [3, 3, 4, 1]  # numbered in raster order
    assert labels[0, 0] == labels[2, 2] == 1 and labels[0, 4] == 2 and labels[5, 3] == 4
    assert (labels > 0).tolist() == m.tolist()
    assert au.label_components(np.zeros((3, 3), bool))[1].size == 0


def test_label_components_matches_scipy_on_random_masks():
    from scipy import ndimage  # the reference labelling: a test dependency (requirements-dev.txt)
    rng = np.random.default_rng(0)
    for density in (0.3, 0.5, 0.7):
        m = rng.random((60, 80)) < density
        ours, sizes = au.label_components(m)
        ref, n = ndimage.label(m, structure=np.ones((3, 3)))
        assert ours.max() == n and _partition(ours) == _partition(ref)
        assert sizes.tolist() == [int((ours == k).sum()) for k in range(1, n + 1)]


def test_remove_small_regions_holes_and_islands():
    m = np.zeros((20, 20), bool)
    m[2:12, 2:12] = True
    m[5, 5] = False  # a 1-pixel hole
    m[6:9, 7:10] = False  # a 9-pixel hole
    m[15:17, 15:17] = True  # a 4-pixel island
    filled, changed = au.remove_small_regions(m, 5, "holes")
    assert changed and filled[5, 5] and not filled[7, 8] and filled[15, 15]
    kept, changed = au.remove_small_regions(m, 5, "islands")
    assert changed and not kept[15:17, 15:17].any() and kept[2, 2]
    same, changed = au.remove_small_regions(m, 1, "islands")
    assert not changed and same is m
    # Every island small: the largest stays.
    only, changed = au.remove_small_regions(m, 1000, "islands")
    assert changed and only[2, 2] and not only[15, 15]
    # A padded tight mask: the outside ring is never a hole, however small.
    ring = np.pad(np.ones((3, 3), bool), 1)
    ring[2, 2] = False
    out, changed = au.remove_small_regions(ring, 1000, "holes", outside=True)
    assert changed and out[2, 2] and not out[0, 0]


# --- one crop ---


def _blob_logits(rng, n=3) -> np.ndarray:
    """Smooth random low-res logits crossing 0 (blobs of various sizes)."""
    yy, xx = np.mgrid[:256, :256]
    out = []
    for _ in range(n):
        cy, cx, r = rng.uniform(0, 256), rng.uniform(0, 256), rng.uniform(5, 90)
        out.append((r - np.hypot(yy - cy, xx - cx)) / 10.0)
    return np.array(out, np.float32)


@pytest.mark.parametrize("kind", ["sam", "bicubic"])
@pytest.mark.parametrize("frame", [(1024, 1024), (300, 420), (700, 1024)])
def test_windowed_upscale_equals_postprocess_masks(frame, kind):
    """Exactly the family's upscaled logits (Sam.postprocess_masks; EfficientSAM's bicubic, whose
    negative lobes rule the window out) over the window, and only <= floor outside it."""
    rng = np.random.default_rng(sum(frame))
    h, w = frame
    for region in [(0, 0, w, h), (37, 11, w - 50, h - 7)]:
        crop = CropRegion((100, 200), frame, (region[0] + 100, region[1] + 200, region[2] + 100, region[3] + 200))
        if kind == "sam":
            rows, cols = postprocess_matrices(resized_shape(h, w), frame)  # Sam.postprocess_masks, in full
        else:
            rows, cols = bicubic_matrix(256, h).astype(np.float32), bicubic_matrix(256, w).astype(np.float32)
        up = amg._Upscaler(crop, (rows, cols))
        ridge = np.full((256, 256), -30.0, np.float32)
        ridge[100, 40:200] = -1.05  # just below the floor, between very negative logits: cubic rings above it
        for low in [*_blob_logits(rng, 4), ridge]:
            full = (rows @ low @ cols.T)[region[1]:region[3], region[0]:region[2]]
            for floor in (0.0, -1.0):
                found = up.logits(low, floor)
                if found is None:
                    assert (full <= floor).all()
                    continue
                logits, col0, row0 = found
                r0, c0 = row0 - crop.region[1], col0 - crop.region[0]
                inside = np.zeros(full.shape, bool)
                inside[r0:r0 + logits.shape[0], c0:c0 + logits.shape[1]] = True
                assert np.allclose(logits, full[inside].reshape(logits.shape), atol=1e-5)
                assert (full[~inside] <= floor).all() and (logits > floor).any()


# --- tiles: a fake decoder that sees a synthetic scene ---

W, H = 1792, 1000  # CropGrid: two 1024 px tiles across (origins 0 and 768), one down


def _scene() -> np.ndarray:
    """Raster-sized label map: 1 a disc inside tile A, 2 a disc in the overlap, 3 a long bar
    across both tiles (longer than the overlap), 4 a disc cut by A's right edge but whole in B."""
    yy, xx = np.mgrid[:H, :W]
    labels = np.zeros((H, W), np.int32)
    labels[np.hypot(xx - 300, yy - 300) < 60] = 1
    labels[np.hypot(xx - 890, yy - 200) < 50] = 2
    labels[(xx >= 500) & (xx < 1300) & (yy >= 600) & (yy < 700)] = 3
    labels[np.hypot(xx - 1040, yy - 450) < 60] = 4
    return labels


def _fake_decoder(scene: np.ndarray, crop: CropRegion, calls: list):
    """decode(point) as the tile sees it: +5 logits on the object under the point, -5 elsewhere."""
    h, w = crop.frame
    scale = resized_shape(h, w)[0] / h
    centres = (np.arange(256) * 4 + 1.5) / scale  # low-res pixel centres in frame pixels
    rows = np.clip(centres, 0, h - 1).astype(int) + crop.origin[1]
    cols = np.clip(centres, 0, w - 1).astype(int) + crop.origin[0]
    seen = scene[np.ix_(rows, cols)]

    def decode(point):
        calls.append(point + crop.origin)
        x, y = (np.asarray(point) + crop.origin).astype(int)
        label = scene[y, x]
        low = np.where((seen == label) & (label > 0), 5.0, -5.0).astype(np.float32)
        return np.array([0.95, 0.9, 0.5], np.float32), np.stack([low, low, low])

    return PointRunner(decode, postprocess_matrices(resized_shape(h, w), (h, w)))


def _run(extent_box, params, scene=None):
    scene = _scene() if scene is None else scene
    grid = CropGrid(W, H)
    crops = [r for c in grid.crops() if (r := amg.crop_region((c.col0, c.row0), (c.height, c.width), extent_box))]
    whole, parts, calls = [], [], []
    for i, crop in enumerate(crops):
        points = amg.crop_points(crops, i, params.points_per_side)
        w_, p_ = amg.crop_masks(_fake_decoder(scene, crop, calls), crops, i, points, extent_box, params)
        whole += w_
        parts += p_
    return crops, amg.combine(crops, whole, parts, params), calls


def _object_of(scene, rec: MaskRecord) -> int:
    values, counts = np.unique(scene[rec.row0:rec.row0 + rec.mask.shape[0], rec.col0:rec.col0 + rec.mask.shape[1]]
                               [rec.mask], return_counts=True)
    return int(values[np.argmax(counts)])


def test_each_object_comes_out_once_whole_across_tiles():
    scene = _scene()
    crops, records, calls = _run((0, 0, W, H), AmgParams(points_per_side=24))
    assert [c.origin for c in crops] == [(0, 0), (768, 0)]
    objects = sorted(_object_of(scene, r) for r in records)
    assert objects == [1, 2, 3, 4]
    for r in records:
        k = _object_of(scene, r)
        truth = scene == k
        got = r.window((0, 0, W, H))
        iou = (got & truth).sum() / (got | truth).sum()
        assert iou > 0.94, (k, iou)  # the bar is one mask, merged from both tiles' parts
    # Every grid point was decoded once: by the tile whose centre is nearest.
    pts = np.array(calls)
    assert len({tuple(p) for p in pts.round(6)}) == len(pts)
    assert len(pts) < 2 * 24 * 24


def test_extent_clips_masks_and_its_edges_are_image_edges():
    box = (200, 150, 1200, 650)  # cuts the bar (3) at y=650 and x=1200, disc 1 whole, disc 2 whole
    scene = _scene()
    crops, records, _ = _run(box, AmgParams(points_per_side=24))
    assert [c.region for c in crops] == [(200, 150, 1024, 650), (768, 150, 1200, 650)]
    assert sorted(_object_of(scene, r) for r in records) == [1, 2, 3, 4]
    for r in records:
        x0, y0, x1, y1 = r.bounds
        assert box[0] <= x0 and box[1] <= y0 and x1 <= box[2] and y1 <= box[3]
    bar = next(r for r in records if _object_of(scene, r) == 3)
    assert bar.bounds[0] <= 504 and bar.bounds[2] == 1200 and bar.bounds[3] == 650


def test_filters_and_min_region_area():
    # A threshold above every fake score (0.95, 0.9, 0.5) keeps nothing.
    assert _run((0, 0, W, H), AmgParams(points_per_side=8, pred_iou_thresh=0.96))[1] == []
    scene = _scene()
    scene[295:305, 295:305] = 0  # a 100-pixel hole in disc 1
    _, records, _ = _run((0, 0, 1000, 1000), AmgParams(points_per_side=24), scene)
    disc = next(r for r in records if _object_of(scene, r) == 1)
    _, cleaned, _ = _run((0, 0, 1000, 1000), AmgParams(points_per_side=24, min_mask_region_area=400), scene)
    disc_filled = next(r for r in cleaned if _object_of(scene, r) == 1)
    assert disc_filled.mask.sum() > disc.mask.sum()
    assert disc_filled.window(disc.bounds)[disc.mask].all()


def test_params_are_checked():
    with pytest.raises(amg.AmgParamError, match="pred_iou_thresh"):
        AmgParams(pred_iou_thresh=1.5)
    with pytest.raises(amg.AmgParamError, match="points per side"):
        AmgParams(points_per_side=0)


# --- parity with Meta's SamAutomaticMaskGenerator ---

ROOT = Path(__file__).resolve().parents[1]
# segment_anything 1.0's SamAutomaticMaskGenerator(tiny_sam.build_tiny_sam(seed=0), points_per_side=6,
# pred_iou_thresh=0.15, stability_score_thresh=0.0, stability_score_offset=0.1, box_nms_thresh=1.0)
# .generate(make_image(300, 420)), in output order: (point x, point y, predicted_iou, area,
# stability_score). Every box is the whole image (random weights).
META_GOLDEN = [
    (245, 175, 0.232381, 73322, 0.00209), (385, 175, 0.22104, 73882, 4.8e-05), (175, 25, 0.217172,
    77535, 0.003937), (315, 175, 0.209085, 84648, 0.003445), (105, 75, 0.206865, 89686, 0.020747), (385,
    25, 0.205141, 91057, 0.003485), (35, 175, 0.204833, 89500, 0.010381), (175, 75, 0.204644, 94518,
    0.011405), (105, 25, 0.202694, 76492, 0.005929), (105, 125, 0.201687, 72458, 0.001889), (175, 275,
    0.200523, 99835, 0.004516), (385, 75, 0.19991, 97720, 0.007675), (245, 125, 0.199894, 84648,
    0.005921), (245, 225, 0.199543, 84181, 0.006716), (315, 275, 0.199449, 86058, 0.00901), (35, 25,
    0.198973, 89804, 0.006849), (385, 225, 0.197497, 87242, 0.002564), (35, 275, 0.195868, 80531,
    0.007549), (315, 75, 0.195574, 77275, 0.000167), (175, 225, 0.195318, 94101, 0.000429), (35, 75,
    0.195208, 94459, 0.005397), (315, 25, 0.194533, 87677, 0.001587), (245, 75, 0.193902, 90608,
    0.002484), (315, 125, 0.192991, 84704, 0.005342), (385, 125, 0.19248, 85753, 0.001111), (105, 175,
    0.191654, 78995, 0.002294), (105, 225, 0.19111, 93796, 0.008905), (245, 25, 0.190207, 90165,
    0.004087), (175, 175, 0.188202, 93277, 0.009485), (35, 225, 0.187896, 85081, 0.009532), (315, 225,
    0.187806, 81799, 0.0015), (105, 275, 0.186653, 99146, 0.02273), (245, 275, 0.181019, 93130,
    0.013319), (175, 125, 0.180698, 94602, 0.012342), (35, 125, 0.176363, 88117, 0.005326), (385, 275,
    0.172344, 78257, 0.015107),
]




def test_one_crop_matches_metas_generator(tiny_paths, encoder):
    """Same masks, order and scores as segment_anything on the same weights (torch vs ONNX Runtime:
    a few pixels at logit ~0 may differ)."""
    pkg_amg = plugin_module("core.segment.automatic")
    decoder = plugin_module("processing_provider.point_decoder").PointDecoder(tiny_paths["decoder"])
    h, w = 300, 420
    emb = encoder.encode(make_image(h, w))
    params = pkg_amg.AmgParams(points_per_side=6, pred_iou_thresh=0.15, stability_score_thresh=0.0,
                               stability_score_offset=0.1, box_nms_thresh=1.0)
    crops = [pkg_amg.crop_region((0, 0), (h, w), (0, 0, w, h))]
    points = pkg_amg.crop_points(crops, 0, 6)
    whole, parts = pkg_amg.crop_masks(decoder.point_runner(emb), crops, 0, points, (0, 0, w, h), params)
    records = pkg_amg.combine(crops, whole, parts, params)
    assert parts == [] and len(records) == len(META_GOLDEN)
    for r, (x, y, iou, area, stability) in zip(records, META_GOLDEN):
        assert np.allclose(r.point, (x, y)) and abs(r.score - iou) < 2e-6
        assert r.bounds == (0, 0, w, h) and abs(int(r.mask.sum()) - area) <= 4
        assert abs(r.stability - stability) < 2e-4  # a few of ~90k pixels at +/-0.1 may differ


@pytest.mark.parametrize("family", [f for f in family_params() if f != "sam"])
def test_every_family_segments_everything_as_its_predictor_would(family):
    """Each object of crop_masks is the family's own predict() mask for its grid point (same
    upscaling, same score), kept or dropped by Meta's filters: the generator is family-agnostic."""
    files = FAMILY_FILES[family]
    decoder = plugin_module("processing_provider.point_decoder").PointDecoder(files["decoder"][0])
    h, w = 300, 420
    bundle = SamEncoder(files["encoder"][0]).encode(make_image(h, w))
    params = AmgParams(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                       stability_score_offset=0.5, box_nms_thresh=1.0)
    crops = [amg.crop_region((0, 0), (h, w), (0, 0, w, h))]
    points = amg.crop_points(crops, 0, 4)
    whole, parts = amg.crop_masks(decoder.point_runner(bundle), crops, 0, points, (0, 0, w, h), params)
    records = whole + parts
    assert len(records) >= len(points)  # no filter on: every non-empty candidate is an object
    for r in records:
        pred = decoder.predict(bundle, [r.point], [1], multimask=True)
        k = int(np.argmin(np.abs(pred.scores - r.score)))
        assert abs(pred.scores[k] - r.score) < 1e-6
        full = np.zeros((h, w), bool)
        full[r.row0 : r.row0 + r.mask.shape[0], r.col0 : r.col0 + r.mask.shape[1]] = r.mask
        assert np.count_nonzero(full ^ pred.masks[k]) <= 5  # matrices vs the ORT resize graph at logit ~0
