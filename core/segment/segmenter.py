"""Prompts in map coordinates -> georeferenced SAM masks, with cached, lazily encoded crops.

Flow: :meth:`RasterSegmenter.segment` picks the grid crop that holds the
prompts with the largest margin, decodes on its cached embedding, and when the
best mask touches a crop edge beyond which the raster continues, decodes
again on a crop that holds the mask whole (:meth:`RasterSegmenter.refinement`:
re-centred on it, coarser if the object is larger than a crop, or an already
encoded support crop). Any crop it needs that is not cached raises
:class:`NotEncodedError` naming it: encode it (in a QgsTask, see
``encode_task``) and call again. The GUI runs the same steps one at a time
(:meth:`~RasterSegmenter.first_step`, :meth:`~RasterSegmenter.decode_step`,
:meth:`~RasterSegmenter.refinement`) so that the first mask shows at once.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Collection, List, Optional, Tuple

import numpy as np

from .. import fs_checks as fs
from ..errors import ModelError, SegmentationError
from ..families import detect
from ..families.onnx_session import CancelToken, EncodeCancelledError
from ..families.providers import ManagedSession, ProviderChoice
from ..raster.crops import DEFAULT_STRIDE, CropGrid, CropSpec, crops_in_extent, mask_bounds, touches_interior_edge
from ..raster.geo import Extent, GeoTransform, extent_to_pixel_bounds, map_to_pixel
from ..raster.raster_source import RasterSource
from ..sam_decoder import PromptError, SamDecoder
from ..sam_encoder import ImageEmbedding, SamEncoder
from .embedding_cache import EmbeddingCache, entry_bytes, make_key
from .encode_estimate import EncodeEstimate, format_point

MAX_RECENTRES = 3  # re-centred / coarser decodes after the first, per prompt
_LOG = logging.getLogger("ai_segmentation")


@dataclass(frozen=True)
class MapPrompt:
    """Prompts in the raster CRS (map units); for a raster without georeferencing, in
    QGIS's pixel frame ``(column, -row)``.

    Attributes:
        points: ``(x, y)`` clicks.
        labels: one per point, 1 include, 0 exclude.
        box: ``(xmin, ymin, xmax, ymax)``.
    """

    points: Tuple[Tuple[float, float], ...] = ()
    labels: Tuple[int, ...] = ()
    box: Optional[Tuple[float, float, float, float]] = None


@dataclass
class Segmentation:
    """Masks of one prompt, on the pixel grid of the crop they were decoded on.

    Attributes:
        masks: ``[K, H, W]`` bool (K=3 multimask, else 1), ``(H, W)`` = crop frame size;
            pixels outside the raster are False.
        scores: ``[K]`` float32 predicted IoU.
        low_res_logits: ``[K, 256, 256]`` float32, fed back when refining.
        geotransform: GDAL geotransform of the mask grid, in the raster CRS.
        crs_wkt: the raster CRS ("" if unknown).
        crop: the crop the masks were decoded on.
    """

    masks: np.ndarray
    scores: np.ndarray
    low_res_logits: np.ndarray
    geotransform: GeoTransform
    crs_wkt: str
    crop: CropSpec

    @property
    def best(self) -> int:
        """Index of the highest-scoring mask."""
        return int(np.argmax(self.scores))


@dataclass(frozen=True)
class Step:
    """One decode of a segmentation: the crop, and the logits of an earlier mask to refine.

    Attributes:
        crop: the crop to decode on.
        mask_input: ``[1, 256, 256]`` float32 logits of the previous mask on the same crop, or None.
    """

    crop: CropSpec
    mask_input: Optional[np.ndarray] = None


class NotEncodedError(SegmentationError):
    """The crop needed for a prompt is not encoded yet; encode ``crop`` and call again."""

    def __init__(self, crop: CropSpec) -> None:
        super().__init__(f"this part of the raster is not encoded yet (crop {crop.as_dict()})")
        self.crop = crop


class OutsideRasterError(SegmentationError):
    """A prompt lies outside the raster."""


class RasterSegmenter:
    """A SAM-family model on one raster: lazy models, one embedding bundle per crop, cached on disk.

    Args:
        source: the raster (see :meth:`RasterSource.open`).
        encoder_path, decoder_path: ONNX files of one model family, loaded on first use.
        cache: where embeddings live.
        threads: ONNX Runtime intra-op threads (None: its default).
        stride: grid step in source pixels (see :mod:`crops`).
        provider: execution provider of both models (default: the CPU; see
            :mod:`core.families.providers`). It is not part of the cache key: every provider here
            computes in float32, and the entries are float16, whose rounding (1e-3) is far
            coarser than the providers' differences (embedding cosine >= 0.9999).
    """

    def __init__(self, source: RasterSource, encoder_path: str, decoder_path: str, cache: EmbeddingCache,
                 threads: Optional[int] = None, stride: int = DEFAULT_STRIDE,
                 provider: Optional[ProviderChoice] = None) -> None:
        self.source = source
        self.encoder_path = os.fspath(encoder_path)
        self.decoder_path = os.fspath(decoder_path)
        self.cache = cache
        self.threads = threads
        self.provider = provider
        self.grid = CropGrid(source.width, source.height, stride=stride)
        # One lock per model: a click must not wait while a task loads the (slow) encoder.
        self._encoder_lock, self._decoder_lock = threading.Lock(), threading.Lock()
        self._encoder: Optional[SamEncoder] = None
        self._decoder: Optional[SamDecoder] = None
        self._family: Optional[str] = None

    # --- models and keys ---

    def family(self) -> str:
        """The encoder's model family (read from its graph header once, in milliseconds)."""
        if self._family is None:
            fs.check_readable_file(self.encoder_path, "SAM encoder file", ModelError)  # before probe and hash
            self._family = detect.probe(self.encoder_path).family
        return self._family

    def _get_encoder(self) -> SamEncoder:
        with self._encoder_lock:
            if self._encoder is None:
                self._encoder = SamEncoder(self.encoder_path, self.threads, self.provider)
            return self._encoder

    def _get_decoder(self) -> SamDecoder:
        with self._decoder_lock:
            if self._decoder is None:
                decoder = SamDecoder(self.decoder_path, self.threads, self.provider)
                family = self.family()
                if decoder.family.name != family:
                    raise ModelError(detect.mismatch_message(self.encoder_path, detect.family(family),
                                                             self.decoder_path, decoder.family))
                self._decoder = decoder
            return self._decoder

    def runs_on(self) -> List[Tuple[str, ManagedSession]]:
        """``(role, session)`` of the models loaded so far (see :func:`providers.describe`)."""
        loaded = (("encoder", self._encoder), ("decoder", self._decoder))
        return [(role, model.session) for role, model in loaded if model is not None]

    def prepare(self) -> None:
        """Load the decoder and run it once, so the first click answers at full speed.

        Optional (everything loads lazily); the GUI may call it when the map tool
        is activated. Costs about 0.2-0.4 s; never loads the encoder (but checks that it
        belongs with the decoder: :class:`ModelError` naming both files otherwise).
        """
        decoder = self._get_decoder()
        decoder.predict(decoder.blank_embedding(), [[512.0, 512.0]], [1], multimask=True)

    def _key(self, crop: CropSpec) -> str:
        return make_key({"source": self.source.identity(), "crop": crop.as_dict(), "family": self.family(),
                         "encoder": self.cache.encoder_hash(self.encoder_path)})

    # --- prompts ---

    def _prompt_pixels(self, prompt: MapPrompt) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Points ``[N, 2]`` and box ``[4]`` as continuous source pixels; raises if outside."""
        if not len(prompt.points) and prompt.box is None:
            raise PromptError("no prompt: click on the raster or draw a box")
        if len(prompt.points) != len(prompt.labels):
            raise PromptError(f"{len(prompt.points)} points but {len(prompt.labels)} labels")
        w, h, gt = self.source.width, self.source.height, self.source.geotransform
        pts = map_to_pixel(gt, prompt.points) if len(prompt.points) else np.zeros((0, 2))
        outside = [i for i, (c, r) in enumerate(pts) if not (0 <= c < w and 0 <= r < h)]
        if outside:
            x, y = prompt.points[outside[0]]
            raise OutsideRasterError(f"the point {format_point(x, y)} is outside the raster "
                                     f"'{self.source.name}'; click on the raster")
        box = None
        if prompt.box is not None:
            c0, r0, c1, r1 = extent_to_pixel_bounds(gt, prompt.box)
            box = np.array([max(c0, 0.0), max(r0, 0.0), min(c1, float(w)), min(r1, float(h))])
            if box[2] <= box[0] or box[3] <= box[1]:
                raise OutsideRasterError(f"the box {tuple(prompt.box)} does not overlap the raster "
                                         f"'{self.source.name}'")
        return pts, box

    @staticmethod
    def _all_pixels(pts: np.ndarray, box: Optional[np.ndarray]) -> np.ndarray:
        return pts if box is None else np.concatenate([pts, box.reshape(2, 2)])

    def _holds(self, crop: CropSpec, pixels: np.ndarray) -> bool:
        w, h = crop.valid_size(self.source.width, self.source.height)
        f = crop.to_frame(pixels)
        return bool(((f >= 0) & (f <= (w, h))).all())

    def crop_for(self, prompt: MapPrompt) -> CropSpec:
        """The grid crop holding all of the prompt with the largest margin (finest scale first)."""
        return self.grid.best_crop(self._all_pixels(*self._prompt_pixels(prompt)))

    def crops_in_extent(self, extent: Optional[Extent] = None, support: bool = False) -> List[CropSpec]:
        """Grid crops covering ``extent`` (raster CRS; None = whole raster), for "Encode Image";
        with ``support``, the coarser crops that clicks on large objects there also need."""
        return crops_in_extent(self.source, extent, self.grid.stride, support)

    # --- encoding ---

    def is_encoded(self, crop: CropSpec) -> bool:
        """True if ``crop``'s embedding is in the cache."""
        return self.cache.contains(self._key(crop))

    def encode(self, crop: CropSpec, is_canceled: Callable[[], bool] = lambda: False) -> None:
        """Encode ``crop`` and cache it; thread-safe, for a QgsTask (GDAL opened in this thread).

        Does nothing if the crop is cached. ``is_canceled`` is checked before the
        read and before the encoder runs; when it is a :class:`CancelToken`, cancelling
        it also stops a running encode within about a second. A cancelled call writes
        nothing.
        """
        key = self._key(crop)
        if is_canceled() or self.cache.contains(key):
            return
        rgb = self.source.read(crop)
        encoder = self._get_encoder()
        if is_canceled():
            return
        start = time.perf_counter()
        try:
            embedding = encoder.encode(rgb, is_canceled if isinstance(is_canceled, CancelToken) else None)
        except EncodeCancelledError:
            _LOG.info("Encoding crop %s of %s cancelled", crop.as_dict(), self.source.uri)
            return
        seconds = time.perf_counter() - start
        self.cache.put(key, embedding, {"uri": self.source.uri, "crop": crop.as_dict(),
                                        "bands": list(self.source.bands)})
        self.cache.record_encode_seconds(self.cache.encoder_hash(self.encoder_path), seconds)
        _LOG.info("Encoded crop %s of %s in %.1f s", crop.as_dict(), self.source.uri, seconds)

    def seconds_per_crop(self) -> Optional[float]:
        """Encode time per crop measured earlier with this encoder (any session), or None."""
        return self.cache.encode_seconds(self.cache.encoder_hash(self.encoder_path))

    def estimate(self, crops: List[CropSpec]) -> EncodeEstimate:
        """Crops left to encode and the time they would take, so the GUI can ask first."""
        todo = sum(1 for c in crops if not self.is_encoded(c))
        per_crop = self.seconds_per_crop()
        return EncodeEstimate(len(crops), todo, None if per_crop is None else todo * per_crop,
                              todo * entry_bytes(self.family()), self.cache.max_bytes)

    def embedding(self, crop: CropSpec) -> ImageEmbedding:
        """The cached embedding of ``crop``; raises :class:`NotEncodedError` (also if damaged)."""
        emb = self.cache.get(self._key(crop))
        if emb is None:
            raise NotEncodedError(crop)
        return emb

    # --- decoding ---

    def _decode(self, crop: CropSpec, pts: np.ndarray, labels: Tuple[int, ...], box: Optional[np.ndarray],
                mask_input: Optional[np.ndarray], multimask: bool) -> Segmentation:
        emb = self.embedding(crop)
        # Continuous frame positions: the family shifts them by half a pixel of its own frame.
        fpts = crop.to_frame(pts) if len(pts) else None
        fbox = crop.to_frame(box.reshape(2, 2)).ravel() if box is not None else None
        pred = self._get_decoder().predict(emb, fpts, list(labels) if len(pts) else None, fbox,
                                           mask_input, multimask, continuous=True)
        masks = pred.masks.copy()
        w, h = crop.valid_size(self.source.width, self.source.height)
        masks[:, h:, :] = False  # padding beyond the raster's edge
        masks[:, :, w:] = False
        return Segmentation(masks, pred.scores, pred.low_res_logits,
                            crop.geotransform(self.source.geotransform), self.source.crs_wkt, crop)

    def first_step(self, prompt: MapPrompt, previous: Optional[Segmentation] = None) -> Step:
        """Where ``prompt`` is decoded first: ``previous``'s crop (refining its best mask) when it
        holds the prompt, else the grid crop holding it with the largest margin. Cheap (no I/O).

        Raises:
            OutsideRasterError, PromptError: no prompt, or one off the raster.
        """
        pixels = self._all_pixels(*self._prompt_pixels(prompt))
        if previous is not None and self._holds(previous.crop, pixels):
            return Step(previous.crop, previous.low_res_logits[previous.best][None])
        return Step(self.grid.best_crop(pixels))

    def decode_step(self, step: Step, prompt: MapPrompt, multimask: bool = True) -> Segmentation:
        """Decode ``prompt`` on ``step``'s crop from its cached embedding (thread-safe).

        Raises:
            NotEncodedError: the crop is not cached.
        """
        pts, box = self._prompt_pixels(prompt)
        return self._decode(step.crop, pts, prompt.labels, box, step.mask_input, multimask)

    def refinement(self, seg: Segmentation, prompt: MapPrompt, index: Optional[int] = None,
                   seen: Collection[CropSpec] = (), allow_encode: bool = True) -> Optional[Step]:
        """The next crop to decode on when mask ``index`` (default the best) is cut by an edge of
        its crop beyond which the raster continues; None when it is whole or no crop helps.

        Cached crops win: the re-centred crop, then a grid or support crop holding the object
        at the same scale or up to 4x coarser (so after "Encode Image" no click encodes). Else
        the re-centred crop, which needs an encode (only if ``allow_encode``), else any coarser
        cached support crop. Crops in ``seen`` are never proposed again.
        """
        mask = seg.masks[seg.best if index is None else index]
        if not touches_interior_edge(mask, self.grid.interior_edges(seg.crop)):
            return None
        pixels = self._all_pixels(*self._prompt_pixels(prompt))
        c0, r0, c1, r1 = mask_bounds(mask, seg.crop)
        lo, hi = pixels.min(axis=0), pixels.max(axis=0)
        bounds = (min(c0, math.floor(lo[0])), min(r0, math.floor(lo[1])),
                  max(c1, math.ceil(hi[0])), max(r1, math.ceil(hi[1])))
        target = self.grid.recentre(bounds)
        scales = [target.scale << k for k in range(16) if target.scale << k <= self.grid.max_scale]

        def fresh(crops: List[Optional[CropSpec]]) -> List[CropSpec]:
            return [c for c in crops if c is not None and c not in seen]

        near = fresh([target] + [self.grid.holding(bounds, s) for s in scales[:3]])
        cached = next((c for c in near if self.is_encoded(c)), None)
        if cached is not None:
            return Step(cached)
        if allow_encode and target in near:
            return Step(target)
        coarse = fresh([self.grid.holding(bounds, s) for s in scales[3:]])
        return next((Step(c) for c in coarse if self.is_encoded(c)), None)

    def segment(self, prompt: MapPrompt, previous: Optional[Segmentation] = None,
                multimask: bool = True) -> Segmentation:
        """Masks for ``prompt`` from cached embeddings only (the steps above, run to the end).

        Args:
            prompt: points/box in the raster CRS.
            previous: the last result for the same object; its crop is kept when it
                holds the new prompt, and its best logits then refine the mask.
            multimask: three candidate masks if True, else one.
        Raises:
            NotEncodedError: a needed crop (first, re-centred or coarser) is not cached.
            OutsideRasterError: a point, or the whole box, is off the raster.
        """
        step = self.first_step(prompt, previous)
        seen = {step.crop}
        seg = self.decode_step(step, prompt, multimask)
        for _ in range(MAX_RECENTRES):
            step = self.refinement(seg, prompt, seen=seen)
            if step is None:
                return seg
            _LOG.debug("Mask touches the edge of crop %s; decoding on %s", seg.crop.as_dict(), step.crop.as_dict())
            seen.add(step.crop)
            seg = self.decode_step(step, prompt, multimask)
        return seg


def segment_encoding(segmenter: RasterSegmenter, prompt: MapPrompt, multimask: bool,
                     encode: Callable[[CropSpec], None]) -> Segmentation:
    """:meth:`RasterSegmenter.segment`, calling ``encode(crop)`` for each crop it asks for first (the
    map tool's lazy encoding), in a task or Processing; ``encode`` may raise to stop (a cancel).

    Raises:
        SegmentationError: a crop still missing after its encode (the cache cannot keep it, or
            the encode was cancelled).
    """
    asked: List[CropSpec] = []
    while True:
        try:
            return segmenter.segment(prompt, multimask=multimask)
        except NotEncodedError as exc:
            if exc.crop in asked:
                raise SegmentationError(
                    f"the embedding of crop {exc.crop.as_dict()} could not be kept in the cache "
                    f"'{segmenter.cache.directory}': check that it is writable and not full") from None
            asked.append(exc.crop)
            encode(exc.crop)
