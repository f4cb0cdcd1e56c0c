"""Vector files that are never left half-written (GDAL/OGR and sqlite3 only, no QGIS).

Two kinds of write:

- :func:`append_feature` adds one feature in place, in one SQLite transaction,
  committed before it returns (a killed process keeps it; a failed one leaves
  the file as it was).
- :func:`rewrite_atomically` applies any other change (new file, new or
  replaced layer) to a copy in a hidden folder beside the target, then swaps
  it in with ``os.replace``. An existing GeoPackage is copied with SQLite's
  backup API, which honours other programs' locks and includes their
  committed WAL content, and is integrity-checked first.

Every failure is a :class:`StoreError` subclass whose message names the file
and what to do; OGR's own messages are captured, never printed.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import tempfile
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from osgeo import gdal, ogr, osr

from ..errors import SegmentationError

FieldSpec = Tuple[str, int]  # (name, ogr.OFT* type)
Feature = Tuple[bytes, Dict[str, object]]  # (WKB geometry, field values by name)

DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".shp": "ESRI Shapefile"}
_SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".qmd")
_BUSY_MS = 2000  # rides over a brief read lock held by QGIS drawing the layer
_LOW_SPACE = 64 * 1024  # below this many free bytes an ambiguous I/O error is a full disk


class StoreError(SegmentationError):
    """An output file could not be read or written; nothing was changed."""


class LayerExistsError(StoreError):
    """The layer already exists and ``overwrite`` was False: ask the user, then retry."""

    def __init__(self, path: str, layer_name: str) -> None:
        super().__init__(f"'{os.path.basename(path)}' already has a layer named '{layer_name}'. "
                         "Replace it, or choose another layer name.")
        self.path = path
        self.layer_name = layer_name


class ReadOnlyLocationError(StoreError):
    """The folder or file cannot be written by this user (permissions or read-only medium)."""


class StoreLockedError(StoreError):
    """Another program holds a lock on the file."""


class CorruptGeoPackageError(StoreError):
    """The file exists but is not a readable GeoPackage."""


class DiskFullError(StoreError):
    """No space left on the disk (or quota)."""


class StoreWriteError(StoreError):
    """Any other failure to read or write an output file."""


@contextmanager
def _ogr_errors() -> Iterator[List[str]]:
    """Collect GDAL/OGR error messages raised in the block instead of printing them.

    The block runs with GDAL's Python exceptions off in this thread (the None / error-code style
    this module checks), even where they were turned on for the whole process, as the Processing
    plugin of QGIS 3.44 does on import. GDAL < 3.7 has no per-thread switch: its default stays.
    """
    messages: List[str] = []

    def handler(err_class: int, _code: int, message: str) -> None:
        if err_class >= gdal.CE_Failure:
            messages.append(message)

    with ExitStack() as modes:
        for module in (gdal, ogr):
            if hasattr(module, "ExceptionMgr"):
                modes.enter_context(module.ExceptionMgr(useExceptions=False))
        gdal.PushErrorHandler(handler)
        try:
            yield messages
        finally:
            gdal.PopErrorHandler()


def _folder(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def _writable(path: str) -> bool:
    return os.access(_folder(path), os.W_OK) and (not os.path.exists(path) or os.access(path, os.W_OK))


def _free_bytes(folder: str) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return _LOW_SPACE  # unknown: do not guess "full"


def store_error(path: str, detail: str, exc: Optional[BaseException] = None) -> StoreError:
    """The specific :class:`StoreError` for a failure on ``path`` (from an OSError or OGR/SQLite text)."""
    name, folder = os.path.basename(path), _folder(path)
    code = exc.errno if isinstance(exc, OSError) else None
    low = detail.lower()
    # Windows refuses to replace a file another process has open (sharing/lock violation).
    if "locked" in low or "busy" in low or getattr(exc, "winerror", None) in (32, 33):
        return StoreLockedError(f"'{name}' is locked by another program (or a QGIS layer being edited). "
                                "Close it there, then try again. Nothing was changed.")
    if code in (errno.ENOSPC, errno.EDQUOT) or "disk is full" in low or "no space" in low:
        return DiskFullError(f"The disk holding '{folder}' is full: '{name}' was not changed. "
                             "Free some space or choose another folder, then try again.")
    if (code in (errno.EACCES, errno.EPERM, errno.EROFS) or "readonly" in low or "read-only" in low
            or "permission denied" in low or not _writable(path)):
        return ReadOnlyLocationError(f"Cannot write '{name}': the folder '{folder}' or the file is read-only "
                                     "for you. Choose a folder you can write to.")
    if any(s in low for s in ("not a database", "malformed", "corrupt", "not a geopackage", "as a geopackage",
                              "required geopackage tables")):
        return CorruptGeoPackageError(f"'{path}' is damaged or is not a GeoPackage ({detail}). "
                                      "It was left untouched; choose another file.")
    if _free_bytes(folder) < _LOW_SPACE:
        return DiskFullError(f"The disk holding '{folder}' is full ({detail}): '{name}' was not changed. "
                             "Free some space or choose another folder, then try again.")
    return StoreWriteError(f"'{path}' could not be read or written: {detail or 'unknown GDAL error'}. "
                           "Nothing was changed.")


def _require_writable(path: str) -> None:
    if not os.path.isdir(_folder(path)):
        raise StoreWriteError(f"The folder '{_folder(path)}' does not exist: choose another one.")
    if not _writable(path):
        raise store_error(path, "permission denied")


def _open_gpkg(path: str, update: bool, errors: List[str], shown: Optional[str] = None) -> gdal.Dataset:
    """Open a GeoPackage; failures are reported as about ``shown`` (default ``path``)."""
    flags = gdal.OF_VECTOR | (gdal.OF_UPDATE if update else 0)
    ds = gdal.OpenEx(path, flags, allowed_drivers=["GPKG"])
    if ds is None:
        detail = "; ".join(errors) or "GDAL does not recognise it as a GeoPackage"
        raise store_error(shown or path, detail)
    return ds


def layer_names(path: str) -> List[str]:
    """Names of the layers of an existing GeoPackage (opened read-only)."""
    with _ogr_errors() as errors:
        ds = _open_gpkg(path, False, errors)
        names = [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())]
        ds = None
    return names


def layer_info(path: str, layer_name: str) -> Tuple[str, List[str]]:
    """WKT of a GeoPackage layer's CRS and its field names (raises if the layer is missing)."""
    with _ogr_errors() as errors:
        ds, layer = _open_layer(path, layer_name, errors)
        srs = layer.GetSpatialRef()
        result = (srs.ExportToWkt() if srs else "", _field_names(layer))
        del layer, ds  # the layer first: it is only valid while its dataset is open
    return result


def _open_layer(path: str, layer_name: str, errors: List[str]) -> Tuple[gdal.Dataset, ogr.Layer]:
    """A GeoPackage opened read-only and one of its layers (raises if the layer is missing)."""
    ds = _open_gpkg(path, False, errors)
    layer = ds.GetLayerByName(layer_name)
    if layer is None:
        ds = None
        raise StoreWriteError(f"'{os.path.basename(path)}' has no layer '{layer_name}'")
    return ds, layer


def _field_names(layer: ogr.Layer) -> List[str]:
    defn = layer.GetLayerDefn()
    return [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]


def check_layer_free(path: str, layer_name: str, driver: str, overwrite: bool) -> None:
    """Raise :class:`LayerExistsError` if writing ``layer_name`` to ``path`` would replace data and
    ``overwrite`` is False (a whole file for single-layer formats); also rejects unreadable GeoPackages."""
    if not os.path.exists(path):
        return
    exists = layer_name in layer_names(path) if driver == "GPKG" else True
    if exists and not overwrite:
        raise LayerExistsError(path, layer_name)


def _set_values(feature: ogr.Feature, values: Mapping[str, object]) -> None:
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            offset = value.utcoffset()
            # OGR's time zone flag: 0 unknown, 100 UTC, +-1 per 15 minutes.
            tz = 0 if offset is None else 100 + int(offset.total_seconds()) // 900
            feature.SetField(name, value.year, value.month, value.day, value.hour, value.minute,
                             value.second + value.microsecond / 1e6, tz)
        else:
            feature.SetField(name, value)


def _make_feature(layer: ogr.Layer, wkb: bytes, values: Mapping[str, object]) -> ogr.Feature:
    feature = ogr.Feature(layer.GetLayerDefn())
    geometry = ogr.CreateGeometryFromWkb(wkb)
    if geometry is None:
        raise StoreWriteError("the geometry to save is not valid WKB")
    feature.SetGeometry(ogr.ForceToMultiPolygon(geometry))
    _set_values(feature, values)
    return feature


def append_feature(path: str, layer_name: str, wkb: bytes, values: Mapping[str, object]) -> int:
    """Add one feature to a GeoPackage layer and commit it before returning.

    Args:
        wkb: (Multi)Polygon WKB in the layer's CRS.
        values: field values by name; ``datetime`` values keep their time zone.

    Returns:
        The new feature's fid.
    """
    _require_writable(path)
    with _ogr_errors() as errors:
        ds = _open_gpkg(path, True, errors)
        layer = feature = None
        try:
            result = ds.ExecuteSQL(f"PRAGMA busy_timeout = {_BUSY_MS}")
            if result is not None:
                ds.ReleaseResultSet(result)
            layer = ds.GetLayerByName(layer_name)
            if layer is None:
                raise StoreWriteError(f"'{os.path.basename(path)}' has no layer '{layer_name}'")
            feature = _make_feature(layer, wkb, values)
            if layer.StartTransaction() != 0:
                raise store_error(path, "; ".join(errors))
            if layer.CreateFeature(feature) != 0 or layer.CommitTransaction() != 0:
                layer.RollbackTransaction()
                raise store_error(path, "; ".join(errors))
            return feature.GetFID()
        finally:
            feature = layer = ds = None  # closes the file: GDAL flushes the layer's extent here


def read_features(path: str, layer_name: str) -> List[Feature]:
    """All features of a GeoPackage layer as [(WKB, values by field name)]."""
    with _ogr_errors() as errors:
        ds, layer = _open_layer(path, layer_name, errors)
        names = _field_names(layer)
        features: List[Feature] = []
        for f in layer:
            geometry = f.GetGeometryRef()
            if geometry is not None:
                values = {n: f.GetField(i) for i, n in enumerate(names) if f.IsFieldSetAndNotNull(i)}
                features.append((bytes(geometry.ExportToIsoWkb(ogr.wkbNDR)), values))
        del layer, ds
    return features


def write_layer(ds: gdal.Dataset, name: str, srs_wkt: str, fields: Sequence[FieldSpec],
                features: Sequence[Feature], overwrite: bool) -> None:
    """Create (or, with ``overwrite``, replace) layer ``name`` in an open dataset and fill it."""
    existing = [i for i in range(ds.GetLayerCount()) if ds.GetLayer(i).GetName() == name]
    if existing:
        if not overwrite:
            raise LayerExistsError(ds.GetDescription(), name)
        ds.DeleteLayer(existing[0])
    srs = None
    if srs_wkt:
        srs = osr.SpatialReference()
        srs.ImportFromWkt(srs_wkt)
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    layer = ds.CreateLayer(name, srs, ogr.wkbMultiPolygon)
    if layer is None:
        raise StoreWriteError(f"could not create layer '{name}': {gdal.GetLastErrorMsg()}")
    for field_name, field_type in fields:
        layer.CreateField(ogr.FieldDefn(field_name, field_type))
    # Drivers may launder names (Shapefile keeps 10 characters): map by position.
    defn = layer.GetLayerDefn()
    renamed = {spec[0]: defn.GetFieldDefn(i).GetName() for i, spec in enumerate(fields)}
    layer.StartTransaction()
    for wkb, values in features:
        stored = {renamed[k]: v for k, v in values.items() if k in renamed}
        if layer.CreateFeature(_make_feature(layer, wkb, stored)) != 0:
            layer.RollbackTransaction()
            raise StoreWriteError(f"could not write a feature: {gdal.GetLastErrorMsg()}")
    if layer.CommitTransaction() != 0:
        raise StoreWriteError(f"could not commit layer '{name}': {gdal.GetLastErrorMsg()}")


def _snapshot(src: str, dst: str) -> None:
    """Copy GeoPackage ``src`` to ``dst`` with SQLite's backup API (lock-aware, WAL-complete),
    after an integrity check."""
    source = target = None
    try:
        uri = Path(src).absolute().as_uri() + "?mode=ro"
        source = sqlite3.connect(uri, uri=True, timeout=_BUSY_MS / 1000)
        status = source.execute("PRAGMA quick_check").fetchone()[0]
        if status != "ok":
            raise CorruptGeoPackageError(f"'{src}' is damaged ({status}). "
                                         "It was left untouched; choose another file.")
        target = sqlite3.connect(dst)
        source.backup(target)
    except sqlite3.Error as exc:
        raise store_error(src, str(exc)) from exc
    finally:
        for conn in (source, target):
            if conn is not None:
                conn.close()


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rewrite_atomically(path: str, edit: Callable[[gdal.Dataset], None], driver: str = "GPKG") -> None:
    """Apply ``edit`` to a copy of ``path`` (or to a new file) and swap the result in.

    A GeoPackage keeps its other layers (it is copied first); other formats are
    written anew. On any failure ``path`` is untouched and the copy is removed.

    Raises:
        StoreError: a specific subclass (read-only, locked, corrupt, disk full, ...).
        LayerExistsError: raised by ``edit`` (:func:`write_layer` without overwrite).
    """
    _require_writable(path)
    target = Path(path)
    try:
        work = Path(tempfile.mkdtemp(prefix=".ai_segmentation_", dir=_folder(path)))
    except OSError as exc:
        raise store_error(path, exc.strerror or str(exc), exc) from exc
    try:
        tmp = str(work / target.name)
        keep = driver == "GPKG" and target.exists()
        if keep:
            _snapshot(path, tmp)
        with _ogr_errors() as errors:
            if keep:
                ds = _open_gpkg(tmp, True, errors, shown=path)
            else:
                ds = gdal.GetDriverByName(driver).Create(tmp, 0, 0, 0, gdal.GDT_Unknown)
                if ds is None:
                    raise store_error(path, "; ".join(errors))
            try:
                edit(ds)
            except StoreWriteError as exc:  # e.g. "disk is full" while writing: classify it
                raise store_error(path, str(exc)) from exc
            finally:
                ds = None  # close: the file is complete only now
            if errors:
                raise store_error(path, "; ".join(errors))
        parts = _SHAPEFILE_PARTS if driver == "ESRI Shapefile" else (target.suffix,)
        produced = [work / (target.stem + s) for s in parts if (work / (target.stem + s)).exists()]
        for p in produced:
            _fsync(str(p))
        wal = Path(f"{path}-wal")
        if driver == "GPKG" and wal.exists() and wal.stat().st_size > 0:
            # A live WAL journal would be replayed onto the new file and corrupt it.
            raise store_error(path, "locked: another program has it open in WAL mode")
        for s in parts:  # a replaced shapefile must not keep the old one's index or sidecars
            old = target.with_suffix(s)
            if old.exists() and not (work / old.name).exists():
                old.unlink()
        for p in produced:
            os.replace(p, target.parent / p.name)
    except LayerExistsError as exc:
        raise LayerExistsError(path, exc.layer_name) from None
    except OSError as exc:
        raise store_error(path, exc.strerror or str(exc), exc) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
