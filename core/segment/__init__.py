"""Segmenting one raster: the segmenter, its embedding cache, encode tasks, automatic masks."""
