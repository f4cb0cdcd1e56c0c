"""Qt-free segmentation engine and GIS helpers of the AI Segmentation plugin."""
