"""aisegmentation:encode — fill the embedding cache the dock uses, ahead of segmenting."""

from __future__ import annotations

from typing import Any, Dict

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterExtent,
)

from ..core.errors import SegmentationError
from ..core.families.providers import describe
from ..gui.text import plural
from .common import EXTENT, AlgorithmBase, encode

ENCODED, CACHED, SUPPORT = "ENCODED", "CACHED", "SUPPORT"


class EncodeAlgorithm(AlgorithmBase):
    """Encode every crop a click in an extent needs (the dock's "Encode Image"): the 1024 px grid
    and the coarser support crops."""

    def name(self) -> str:
        return "encode"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return "Encode raster (fill the embedding cache)"

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        return (
            "Runs the heavy SAM image encoder on every crop (1024 x 1024 pixels, overlapping by 256) "
            "of the raster or of EXTENT, and on the few coarser support crops that clicks on objects "
            "larger than the overlap need, and stores the embeddings in the cache the AI Segmentation "
            "panel uses, so that later clicks (refinements included) and the segmentation algorithms "
            "encode nothing more. Crops already cached are skipped. Canceling keeps the crops finished "
            "so far.\n"
            "Outputs: ENCODED (crops encoded now), CACHED (crops that already were), SUPPORT (how many "
            "of all those crops are support crops)."
        )

    def initAlgorithm(self, config: Any = None) -> None:  # noqa: N802 (QGIS API)
        self.add_raster_parameters()
        self.addParameter(QgsProcessingParameterExtent(
            EXTENT, "Extent to encode (default: the whole raster)", optional=True))
        self.add_model_parameters(decoder=False)
        self.addOutput(QgsProcessingOutputNumber(ENCODED, "Crops encoded"))
        self.addOutput(QgsProcessingOutputNumber(CACHED, "Crops already cached"))
        self.addOutput(QgsProcessingOutputNumber(SUPPORT, "Coarser support crops among them"))

    def processAlgorithm(self, parameters: Dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> Dict[str, Any]:
        layer = self.raster_layer(parameters, context)
        segmenter = self.segmenter(parameters, context, layer, feedback, decoder=False)
        extent = self.extent(parameters, context, layer)
        grid = segmenter.crops_in_extent(extent)
        if not grid:
            raise QgsProcessingException(f"EXTENT does not overlap '{layer.name()}'.")
        support = segmenter.crops_in_extent(extent, support=True)
        crops = grid + support
        todo = [c for c in crops if not segmenter.is_encoded(c)]
        counts = f"{plural(len(grid), 'grid crop')} and {plural(len(support), 'coarser support crop')}"
        feedback.pushInfo(f"{layer.name()}: {counts} (these for objects larger than a crop's overlap); "
                          f"{segmenter.estimate(crops).text}")
        done = 0
        try:
            for crop in todo:
                encode(segmenter, crop, feedback)
                done += 1
                feedback.setProgress(100.0 * done / len(todo))
        except QgsProcessingException:
            if not feedback.isCanceled():
                raise
            feedback.pushWarning(f"Canceled after {done} of {len(todo)} crops; they stay cached.")
        except SegmentationError as exc:
            raise QgsProcessingException(str(exc)) from None
        if done:
            feedback.pushInfo(describe(segmenter.runs_on())[0])
        return {ENCODED: done, CACHED: len(crops) - len(todo), SUPPORT: len(support)}
