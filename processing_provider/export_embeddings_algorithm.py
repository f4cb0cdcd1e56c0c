"""aisegmentation:export_embeddings — the encoder's image features of an extent as a GeoTIFF."""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from ..core.embeddings.embedding_export import (
    EmbeddingExportError,
    ExportCancelledError,
    check_output_path,
    export_embeddings,
)
from ..core.embeddings.features import CellGrid, image_features, raster_bounds
from ..core.errors import SegmentationError
from ..core.qgis_compat import NUMBER_INTEGER
from ..core.raster.crops import CropSpec
from ..core.segment.segmenter import RasterSegmenter
from .common import CANCELED, EXTENT, OUTPUT, AlgorithmBase, encode

COMPONENTS, FLOAT16 = "COMPONENTS", "FLOAT16"


def encode_crops(segmenter: RasterSegmenter, crops: List[CropSpec], feedback: QgsProcessingFeedback,
                 share: float) -> None:
    """Encode the crops not cached yet, reporting progress over the first ``share`` (0..100) percent."""
    todo = [c for c in crops if not segmenter.is_encoded(c)]
    if todo:
        feedback.pushInfo(f"{segmenter.source.name}: {segmenter.estimate(crops).text}")
    for n, crop in enumerate(todo, 1):
        encode(segmenter, crop, feedback)
        feedback.setProgress(share * n / len(todo))


def progress_to(feedback: QgsProcessingFeedback, start: float, end: float) -> Callable[[float], None]:
    """A 0..1 progress callback mapped onto ``start``..``end`` percent of the algorithm."""
    return lambda f: feedback.setProgress(start + (end - start) * f)


class ExportEmbeddingsAlgorithm(AlgorithmBase):
    """Stitched SAM embeddings of an extent: every channel, or principal components."""

    def name(self) -> str:
        return "export_embeddings"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return "Export image embeddings (features) as a GeoTIFF"

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        return (
            "Writes the SAM image embeddings of EXTENT (default: the whole raster) as a georeferenced "
            "GeoTIFF, for clustering, classification or finding similar areas without training. One "
            "cell per embedding cell (16 x 16 raster pixels on full crops), stitched across the "
            "overlapping 1024 px crops with weights that fade out towards each crop's edges, so there "
            "are no seams; cells off the raster are nodata (NaN). Crops not encoded yet are encoded "
            "first, into the cache the panel uses.\n"
            "COMPONENTS: the number of principal components to write (default 3, which QGIS shows as "
            "an RGB image), fitted on a sample of the extent's cells; 0 writes all 256 channels as "
            "they are.\n"
            "FLOAT16: half-precision floats (half the file size) instead of float32."
        )

    def initAlgorithm(self, config: Any = None) -> None:  # noqa: N802 (QGIS API)
        self.add_raster_parameters()
        self.addParameter(QgsProcessingParameterExtent(
            EXTENT, "Extent (default: the whole raster)", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            COMPONENTS, "Principal components to write (0: all 256 embedding channels)", NUMBER_INTEGER, 3,
            minValue=0, maxValue=256))
        self.addParameter(QgsProcessingParameterBoolean(FLOAT16, "Half-precision floats (float16)", False))
        self.add_model_parameters(decoder=False)
        self.addParameter(QgsProcessingParameterRasterDestination(OUTPUT, "Embeddings GeoTIFF"))

    def processAlgorithm(self, parameters: Dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> Dict[str, Any]:
        layer = self.raster_layer(parameters, context)
        try:
            path = check_output_path(self.parameterAsOutputLayer(parameters, OUTPUT, context))
            segmenter = self.segmenter(parameters, context, layer, decoder=False)
            src = segmenter.source
            extent = self.extent(parameters, context, layer)
            crops = segmenter.crops_in_extent(extent)
            if not crops:
                raise QgsProcessingException(f"EXTENT does not overlap '{layer.name()}'.")
            encode_crops(segmenter, crops, feedback, 50.0)

            def features(crop: CropSpec):
                return image_features(segmenter.embedding(crop))

            grid = CellGrid.of(crops[0], features(crops[0]), src.width, src.height)
            window = grid.window(raster_bounds(src.width, src.height, src.geotransform, extent))
            meta = {"AISEG_ENCODER": os.path.basename(segmenter.encoder_path), "AISEG_SOURCE": layer.name()}
            result = export_embeddings(
                path, crops, features, grid, window, src.geotransform, src.crs_wkt,
                self.parameterAsInt(parameters, COMPONENTS, context),
                self.parameterAsBool(parameters, FLOAT16, context), meta, feedback.isCanceled,
                progress_to(feedback, 50.0, 100.0))
        except ExportCancelledError:
            raise QgsProcessingException(CANCELED) from None
        except (EmbeddingExportError, SegmentationError) as exc:
            raise QgsProcessingException(f"Export embeddings: {exc}") from None
        cols, rows = result.size
        feedback.pushInfo(f"Wrote {result.bands} bands of {cols} x {rows} cells to {result.path}.")
        if result.explained:
            shares = ", ".join(f"{100 * e:.1f} %" for e in result.explained)
            feedback.pushInfo(f"Share of the variance per component: {shares}.")
        return {OUTPUT: result.path}
