"""The "AI Segmentation" Processing provider (id ``aisegmentation``)."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..toolbelt.metadata import icon_path, plugin_name
from .encode_algorithm import EncodeAlgorithm
from .export_coco_algorithm import ExportCocoAlgorithm
from .export_embeddings_algorithm import ExportEmbeddingsAlgorithm
from .find_similar_algorithm import FindSimilarAlgorithm
from .segment_everything_algorithm import SegmentEverythingAlgorithm
from .segment_prompts_algorithm import SegmentPromptsAlgorithm


class AISegmentationProvider(QgsProcessingProvider):
    """Algorithms usable from the Toolbox, the Modeler and ``qgis_process``."""

    def id(self) -> str:
        return "aisegmentation"

    def name(self) -> str:
        return plugin_name()

    def icon(self) -> QIcon:
        return QIcon(icon_path())

    def loadAlgorithms(self) -> None:  # noqa: N802 (QGIS API)
        for algorithm in (EncodeAlgorithm(), SegmentPromptsAlgorithm(), SegmentEverythingAlgorithm()):
            self.addAlgorithm(algorithm)
        self.addAlgorithm(FindSimilarAlgorithm())
        self.addAlgorithm(ExportEmbeddingsAlgorithm())
        self.addAlgorithm(ExportCocoAlgorithm())
