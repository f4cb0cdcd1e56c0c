"""QGIS entry point. Kept thin: nothing heavy is imported until QGIS asks for the plugin."""


def classFactory(iface):  # noqa: N802 (name required by QGIS)
    from .ai_segmentation_plugin import AISegmentationPlugin

    return AISegmentationPlugin(iface)
