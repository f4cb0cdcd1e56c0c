"""GDAL's Python exceptions on or off for a block, the previous state restored after it.

QGIS 3.44's Processing calls ``gdal.UseExceptions()`` for the whole process; QGIS 3.22 leaves
exceptions off. The plugin must behave the same either way, so its GDAL code is tested both ways.
The switch is process-wide (GDAL 3.6 has no per-thread one) and covers gdal, ogr and osr; GDAL
3.6 keeps one stack of their handlers, so they are turned on in that order and off in reverse.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

from osgeo import gdal, ogr, osr

MODES = ("exceptions off", "exceptions on")
_MODULES = (gdal, ogr, osr)


def _apply(states: Sequence[bool]) -> None:
    for module, on in reversed(list(zip(_MODULES, states))):
        if not on and module.GetUseExceptions():
            module.DontUseExceptions()
    for module, on in zip(_MODULES, states):
        if on and not module.GetUseExceptions():
            module.UseExceptions()


@contextmanager
def gdal_exceptions(on: bool) -> Iterator[None]:
    """GDAL, OGR and OSR exceptions ``on`` (or off) inside the block."""
    before = [bool(m.GetUseExceptions()) for m in _MODULES]
    _apply([on] * len(_MODULES))
    try:
        yield
    finally:
        _apply(before)


def set_mode(mode: str) -> None:
    """Switch to ``mode`` (one of :data:`MODES`) for good: for a child process."""
    _apply([mode == MODES[1]] * len(_MODULES))
