"""Typed parameters the dock emits; the controller acts on them. Pure Python.

Refinement options are :class:`core.segment.mask_ops.RefineParams`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

SCOPE_RASTER = "raster"
SCOPE_VISIBLE = "visible"


@dataclass(frozen=True)
class SourceChoice:
    """The raster to segment, and its 1-based bands shown as R, G, B (None: the raster's default)."""

    layer_id: Optional[str]
    bands: Optional[Tuple[int, int, int]] = None


@dataclass(frozen=True)
class EncodeRequest:
    """What to encode ahead of clicking: the whole raster or the visible extent."""

    scope: str = SCOPE_RASTER


@dataclass(frozen=True)
class OutputChoice:
    """Layer that saved masks go to; None creates one in the plugin's GeoPackage on first save."""

    layer_id: Optional[str] = None


CRS_LAYER = "layer"
CRS_PROJECT = "project"


@dataclass(frozen=True)
class ExportChoice:
    """Where "Export…" writes: a file (``.gpkg``, ``.geojson`` or ``.shp``), the layer name inside a
    GeoPackage, and the CRS: :data:`CRS_LAYER` (the output layer's, the raster's) or :data:`CRS_PROJECT`."""

    path: str
    layer_name: str
    crs: str = CRS_LAYER
