"""File-system conditions reach the user as the plugin's own messages (issue #13, item 1).

Real files throughout: missing, folders where files are expected and the reverse, permission
bits that apply (a child without root's DAC override, see ``fs_cases``), truncated and garbage
GeoTIFFs, a real full disk (a private 512 KiB tmpfs). Each message names the path and says what
to do; nothing is left behind.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from fs_cases import permissions_apply, run_script, small_disk
from osgeo import gdal
from qgis.core import QgsCoordinateReferenceSystem, QgsSettings
from qgis.PyQt.QtCore import QSettings

from core import fs_checks as fs
from core.errors import ModelError
from core.output.gpkg_io import StoreWriteError
from core.raster.crops import CropSpec
from core.raster.raster_source import RasterReadError, RasterSource
from core.segment.cache_location import CacheLocationError, open_cache
from core.segment.embedding_cache import EmbeddingCache
from core.segment.segmenter import RasterSegmenter
from tools.plugin_package import plugin_module

ODD = "dossier été"  # paths with spaces and non-ASCII characters


def listing(folder: Path) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def geotiff(path: Path, width: int = 1300, height: int = 900, options=()) -> Path:
    """A 3-band UInt16 GeoTIFF (random values 100..4000), georeferenced in UTM 33N."""
    ds = gdal.GetDriverByName("GTiff").Create(str(path), width, height, 3, gdal.GDT_UInt16, list(options))
    ds.SetGeoTransform((500000.0, 0.5, 0.0, 5000000.0, 0.0, -0.5))
    rng = np.random.default_rng(1)
    for b in range(3):
        ds.GetRasterBand(b + 1).WriteArray(rng.integers(100, 4000, (height, width)).astype(np.uint16))
    del ds
    return path


def truncated(src: Path, dst: Path, keep: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


# --- the helper's messages ---------------------------------------------------------------------


@pytest.mark.parametrize("code, words, advice", [
    (errno.ENOSPC, "the disk is full", "free some space"),
    (errno.EROFS, "the disk is read-only", "choose a folder on a writable disk"),
    (errno.EACCES, "permission denied", "choose a folder you can write to"),
    (errno.EISDIR, "it is a folder, not a file", "choose a file"),
    (errno.EIO, "input/output error", "check the disk"),
])
def test_os_errors_become_plugin_messages(tmp_path, code, words, advice):
    path = str(tmp_path / ODD / "out.gpkg")
    exc = fs.os_error(OSError(code, os.strerror(code)), "write", "output file", path)
    assert isinstance(exc, fs.FileAccessError) and exc.path == path
    assert str(exc).startswith(f"cannot write the output file '{path}': {words}")
    assert advice in str(exc).split("; ")[-1]


def test_not_a_folder_names_the_file_in_the_way(tmp_path):
    (tmp_path / "plain").write_text("x")
    path = str(tmp_path / "plain" / "sub" / "f.onnx")
    exc = fs.os_error(OSError(errno.ENOTDIR, "Not a directory"), "read", "SAM encoder file", path)
    assert str(exc) == f"cannot read the SAM encoder file '{path}': '{tmp_path / 'plain'}' is a file, not a " \
                       "folder; check the path"
    assert exc.kind == fs.NOT_A_FOLDER


def test_check_output_file_before_any_work(tmp_path):
    folder = tmp_path / ODD
    folder.mkdir()
    (folder / "a folder.gpkg").mkdir()
    (folder / "plain").write_text("x")
    before = listing(tmp_path)
    cases = {
        folder / "a folder.gpkg": "it is a folder; choose a file name",
        folder / "missing" / "out.gpkg": f"the folder '{folder / 'missing'}' does not exist; create it, or choose",
        folder / "plain" / "out.gpkg": f"'{folder / 'plain'}' is a file, not a folder; choose another folder",
        folder / "out.xyz": "'.xyz' is not a supported format; use .gpkg, .shp",
    }
    for path, words in cases.items():
        with pytest.raises(fs.FileAccessError) as info:
            fs.check_output_file(str(path), "output file", (".gpkg", ".shp"))
        assert str(info.value).startswith(f"cannot write the output file '{path}': ")
        assert words in str(info.value)
    assert fs.check_output_file(str(folder / "ok.gpkg"), "output file") == str(folder / "ok.gpkg")
    assert listing(tmp_path) == before  # the write test left nothing


def test_read_only_and_unreadable_are_real(tmp_path):
    """Permission bits applied to a child (root's DAC override dropped)."""
    ro = tmp_path / "lecture seule"
    ro.mkdir()
    (ro / "model.onnx").write_bytes(b"x" * 64)
    secret = tmp_path / "secret.onnx"
    secret.write_bytes(b"x" * 64)
    prefix = permissions_apply()
    ro.chmod(0o555)
    secret.chmod(0o000)
    try:
        result = run_script(f"""
        from core import fs_checks as fs
        def attempt(fn):
            try:
                fn()
                return "ok"
            except fs.FileAccessError as exc:
                return [exc.kind, str(exc)]
        ro, secret = {str(ro)!r}, {str(secret)!r}
        print(json.dumps({{
            "output": attempt(lambda: fs.check_output_file(os.path.join(ro, "out.gpkg"), "output file")),
            "folder": attempt(lambda: fs.check_folder(ro, "embedding cache folder")),
            "create": attempt(lambda: fs.check_folder(os.path.join(ro, "sub"), "output folder", create=True)),
            "read": attempt(lambda: fs.check_readable_file(secret, "SAM encoder file")),
            "readable in ro": attempt(lambda: fs.check_readable_file(os.path.join(ro, "model.onnx"), "model")),
        }}))
        """, tmp_path, prefix)
    finally:
        ro.chmod(0o755)
        secret.chmod(0o644)
    out = os.path.join(ro, "out.gpkg")
    assert result["output"] == [fs.DENIED, f"cannot write the output file '{out}': permission denied; "
                                           "choose a folder you can write to"]
    assert result["folder"] == [fs.DENIED, f"cannot write the embedding cache folder '{ro}': permission denied; "
                                           "choose a folder you can write to"]
    assert result["create"][1].startswith(f"cannot create the output folder '{ro / 'sub'}': permission denied")
    assert result["read"] == [fs.DENIED, f"cannot read the SAM encoder file '{secret}': permission denied; "
                                         "give yourself read access to it, or copy it to a folder of yours"]
    assert result["readable in ro"] == "ok"
    assert sorted(os.listdir(ro)) == ["model.onnx"]


def test_full_disk_is_found_before_writing(tmp_path):
    disk = tmp_path / "petit disque"
    disk.mkdir()
    result = run_script(f"""
    from core import fs_checks as fs
    disk = {str(disk)!r}
    fd = os.open(os.path.join(disk, "filler"), os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk to the last byte
        while os.write(fd, b"x" * 4096):
            pass
    except OSError:
        os.close(fd)
    try:
        fs.check_output_file(os.path.join(disk, "out.gpkg"), "output file")
        got = "ok"
    except fs.FileAccessError as exc:
        got = [exc.kind, str(exc)]
    print(json.dumps({{"got": got, "files": sorted(os.listdir(disk))}}))
    """, tmp_path, small_disk(disk))
    out = os.path.join(disk, "out.gpkg")
    assert result["got"] == [fs.FULL, f"cannot write the output file '{out}': the disk is full (0 bytes free); "
                                      "free some space, or choose a folder on another disk"]
    assert result["files"] == ["filler"]


# --- rasters -----------------------------------------------------------------------------------


def test_raster_files_that_cannot_be_opened(tmp_path):
    folder = tmp_path / ODD
    folder.mkdir()
    (folder / "folder.tif").mkdir()
    (folder / "notes.tif").write_text("not a raster")
    (folder / "garbage.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 20)
    (folder / "plain").write_text("x")
    cases = {
        "missing.tif": "cannot read the raster '{p}': it does not exist; check the path, or choose the file again",
        "folder.tif": "cannot read the raster '{p}': it is a folder, not a file; choose the file itself",
        "plain/x.tif": "cannot read the raster '{p}': '" + str(folder / "plain") + "' is a file, not a folder",
        "notes.tif": "cannot open the raster '{p}': it is not in a raster format GDAL knows; check that this is "
                     "the raster file (GDAL: ",
        "garbage.tif": "cannot open the raster '{p}': the file is damaged or truncated (GDAL: ",
    }
    for name, words in cases.items():
        path = str(folder / name)
        with pytest.raises(RasterReadError) as info:
            RasterSource.open(path)
        assert str(info.value).startswith(words.format(p=path)), str(info.value)


def test_unreadable_raster(tmp_path):
    path = geotiff(tmp_path / f"{ODD}.tif", 64, 64)
    prefix = permissions_apply()
    path.chmod(0o000)
    try:
        result = run_script(f"""
        from core.raster.raster_source import RasterReadError, RasterSource
        try:
            RasterSource.open({str(path)!r})
            print(json.dumps({{"got": "ok"}}))
        except RasterReadError as exc:
            print(json.dumps({{"got": str(exc)}}))
        """, tmp_path, prefix)
    finally:
        path.chmod(0o644)
    assert result["got"] == (f"cannot read the raster '{path}': permission denied; give yourself read access "
                             "to it, or copy it to a folder of yours")


def test_truncated_geotiff_names_the_rows(tmp_path):
    """Before: only GDAL's "IReadBlock failed ... TIFFReadEncodedStrip() failed"."""
    path = truncated(geotiff(tmp_path / "good.tif"), tmp_path / f"{ODD} cut.tif", 0.6)
    with pytest.raises(RasterReadError) as info:  # the stretch reads the strip cut in the middle
        RasterSource.open(str(path))
    message = str(info.value)
    assert message.startswith(f"the raster '{path}' could not be read at row ")
    assert 530 <= int(message.split(" at row ")[1].split(":")[0]) <= 540  # 60 % of 900 one-row strips
    assert ": the file is damaged or truncated (GDAL: " in message and "TIFFReadEncodedStrip() failed" in message
    assert message.endswith("); replace it with a good copy")


def test_damaged_tiles_are_found_while_opening(tmp_path):
    good = geotiff(tmp_path / "tiled.tif", options=["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256",
                                                    "COMPRESS=DEFLATE"])
    path = truncated(good, tmp_path / "tiled cut.tif", 0.5)
    with pytest.raises(RasterReadError) as info:
        RasterSource.open(str(path))
    message = str(info.value)
    assert message.startswith(f"the raster '{path}' could not be read at rows ")
    rows = message.split("at rows ")[1].split(":")[0]
    first, last = (int(v) for v in rows.split("-"))
    assert last - first == 255 and first % 256 == 0  # one tile row, as GDAL reported it
    assert "the file is damaged or truncated" in message


def test_a_raster_gone_while_in_use(tmp_path):
    path = geotiff(tmp_path / "gone.tif", 300, 200)
    src = RasterSource.open(str(path))
    path.unlink()
    with pytest.raises(RasterReadError) as info:
        src.read(CropSpec(0, 0, 300, 200))
    assert str(info.value) == f"cannot read the raster '{path}': it does not exist; check the path, or choose " \
                              "the file again"


# --- models and the cache ----------------------------------------------------------------------


def test_unreadable_encoder_is_named_before_hashing(tmp_path, tiny_paths):
    """Before: the cache key hashed the file first (PermissionError from open), and the family probe
    called it "not a valid ONNX file, or truncated"."""
    enc = tmp_path / ODD / "tiny.encoder.onnx"
    enc.parent.mkdir()
    enc.write_bytes(Path(tiny_paths["encoder_preproc"]).read_bytes())
    raster = geotiff(tmp_path / "r.tif", 300, 200)
    prefix = permissions_apply()
    enc.chmod(0o000)
    try:
        result = run_script(f"""
        from core.segment.embedding_cache import EmbeddingCache
        from core.errors import ModelError
        from core.raster.raster_source import RasterSource
        from core.sam_encoder import SamEncoder
        from core.segment.segmenter import RasterSegmenter
        enc, cache = {str(enc)!r}, EmbeddingCache({str(tmp_path / "cache")!r})
        seg = RasterSegmenter(RasterSource.open({str(raster)!r}), enc, {str(tiny_paths["decoder"])!r}, cache)
        out = {{}}
        for name, fn in [("segmenter", lambda: seg.is_encoded(seg.crops_in_extent()[0])),
                         ("hash", lambda: cache.encoder_hash(enc)), ("session", lambda: SamEncoder(enc))]:
            try:
                fn()
                out[name] = "ok"
            except ModelError as exc:
                out[name] = str(exc)
        print(json.dumps(out))
        """, tmp_path, prefix)
    finally:
        enc.chmod(0o644)
    want = (f"cannot read the SAM encoder file '{enc}': permission denied; give yourself read access to it, "
            "or copy it to a folder of yours")
    assert result == {"segmenter": want, "hash": want, "session": want}
    assert not (tmp_path / "cache").exists()  # nothing written


def test_encoder_that_is_a_folder(tmp_path, tiny_paths):
    raster = RasterSource.open(str(geotiff(tmp_path / "r.tif", 300, 200)))
    folder = tmp_path / "models.onnx"
    folder.mkdir()
    seg = RasterSegmenter(raster, str(folder), str(tiny_paths["decoder"]), EmbeddingCache(str(tmp_path / "c")))
    with pytest.raises(ModelError) as info:
        seg.is_encoded(seg.crops_in_extent()[0])
    assert str(info.value) == (f"cannot read the SAM encoder file '{folder}': it is a folder, not a file; "
                               "choose the file itself")
    with pytest.raises(ModelError, match="it is a folder"):
        EmbeddingCache(str(tmp_path / "c")).encoder_hash(str(folder))


def test_cache_location_that_is_a_file_falls_back(tmp_path, monkeypatch, tiny_paths):
    """XDG_CACHE_HOME pointing at a file. Before: NotADirectoryError from os.makedirs on the first save."""
    blocker = tmp_path / "cache-home"
    blocker.write_text("a file, not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    wanted = blocker / "qgis-ai-segmentation"
    with pytest.raises(CacheLocationError) as info:
        open_cache("", 10**9, fallback=False)
    assert str(info.value) == (f"cannot create the embedding cache folder '{wanted}': '{blocker}' is a file, not "
                               "a folder; choose another embedding cache folder in Settings > Options > AI "
                               "Segmentation")
    cache, warning = open_cache("", 10**9)
    assert warning.startswith(f"Cannot create the embedding cache folder '{wanted}': '{blocker}' is a file")
    assert warning.endswith(f"Until then, embeddings are kept in the temporary folder '{cache.directory}' for "
                            "this session only.")
    assert cache.directory != str(wanted) and os.path.isdir(cache.directory)
    assert open_cache("", 10**9)[0].directory == cache.directory  # one stand-in for the session
    # Segmentation works on it: encode, then decode from the stand-in cache.
    src = RasterSource.open(str(geotiff(tmp_path / "r.tif", 300, 200)))
    seg = RasterSegmenter(src, str(tiny_paths["encoder_preproc"]), str(tiny_paths["decoder"]), cache)
    crop = seg.crops_in_extent()[0]
    seg.encode(crop)
    assert seg.is_encoded(crop) and list(Path(cache.directory, "embeddings").rglob("*.npy"))
    # A cache made on the blocked folder directly keeps working from memory and says why.
    direct = EmbeddingCache(str(wanted))
    seg = RasterSegmenter(src, str(tiny_paths["encoder_preproc"]), str(tiny_paths["decoder"]), direct)
    seg.encode(crop)
    assert seg.is_encoded(crop) and seg.embedding(crop).embeddings.shape == (1, 256, 64, 64)
    assert direct.write_problem == (f"cannot write the embedding cache folder '{wanted}': '{blocker}' is a file, "
                                    "not a folder; choose another embedding cache folder in Settings > Options > "
                                    "AI Segmentation")
    assert blocker.read_text() == "a file, not a folder"


def test_read_only_cache_falls_back_and_hashes_still_work(tmp_path, tiny_paths):
    ro = tmp_path / "cache lecture seule"
    ro.mkdir()
    prefix = permissions_apply()
    ro.chmod(0o555)
    try:
        result = run_script(f"""
        from core.segment.cache_location import open_cache
        from core.segment.embedding_cache import EmbeddingCache
        cache, warning = open_cache({str(ro)!r}, 10**9)
        direct = EmbeddingCache({str(ro)!r})
        print(json.dumps({{"folder": cache.directory, "warning": warning,
                           "hash": direct.encoder_hash({str(tiny_paths["decoder"])!r})}}))
        """, tmp_path, prefix)
    finally:
        ro.chmod(0o755)
    assert result["warning"].startswith(f"Cannot write the embedding cache folder '{ro}': permission denied; "
                                        "choose another embedding cache folder in Settings > Options")
    assert result["folder"] != str(ro) and len(result["hash"]) == 64  # the memo file could not be written
    assert os.listdir(ro) == []


def test_cache_that_cannot_be_listed_or_cleared(tmp_path, tiny_paths):
    """The Options page shows the cache size and clears it. Before: a PermissionError traceback
    from os.scandir, and a clear that silently left everything in place."""
    folder = tmp_path / "cache partagé"
    cache = EmbeddingCache(str(folder))
    src = RasterSource.open(str(geotiff(tmp_path / "r.tif", 300, 200)))
    seg = RasterSegmenter(src, str(tiny_paths["encoder_preproc"]), str(tiny_paths["decoder"]), cache)
    seg.encode(seg.crops_in_extent()[0])
    entries = folder / "embeddings"
    (sub,) = list(entries.iterdir())
    prefix = permissions_apply()
    sub.chmod(0o555)  # its entries cannot be deleted
    entries.chmod(0o311)  # nor listed
    try:
        result = run_script(f"""
        from core import fs_checks as fs
        from core.segment.embedding_cache import EmbeddingCache
        cache = EmbeddingCache({str(folder)!r})
        size = cache.size_bytes()
        os.chmod({str(entries)!r}, 0o755)
        try:
            cache.clear()
            cleared = "ok"
        except fs.FileAccessError as exc:
            cleared = str(exc)
        print(json.dumps({{"size": size, "cleared": cleared}}))
        """, tmp_path, prefix)
    finally:
        entries.chmod(0o755)
        sub.chmod(0o755)
    assert result["size"] == 0
    assert result["cleared"] == (f"cannot clear the embedding cache folder '{folder}': permission denied; give "
                                 "yourself write access to it, or delete it by hand")
    assert len(list(sub.iterdir())) == 2  # the entry is still whole


def test_full_cache_disk_keeps_embeddings_in_memory(tmp_path, tiny_paths):
    """A real full disk under the cache: segmentation goes on from memory, and says why."""
    disk = tmp_path / "disque"
    disk.mkdir()
    raster = geotiff(tmp_path / "r.tif", 300, 200)
    result = run_script(f"""
    import numpy as np
    from core.segment.embedding_cache import EmbeddingCache
    from core.raster.raster_source import RasterSource
    from core.segment.segmenter import MapPrompt, RasterSegmenter
    cache = EmbeddingCache({str(disk)!r})
    seg = RasterSegmenter(RasterSource.open({str(raster)!r}), {str(tiny_paths["encoder_preproc"])!r},
                          {str(tiny_paths["decoder"])!r}, cache)
    crop = seg.crops_in_extent()[0]
    seg.encode(crop)
    gt = seg.source.geotransform
    result = seg.segment(MapPrompt(((gt[0] + 100 * gt[1], gt[3] + 80 * gt[5]),), (1,)))
    files = sorted(os.path.relpath(os.path.join(d, f), {str(disk)!r}) for d, _, fs in os.walk({str(disk)!r})
                   for f in fs)
    print(json.dumps({{"encoded": seg.is_encoded(crop), "masks": list(result.masks.shape),
                       "problem": cache.write_problem, "files": files}}))
    """, tmp_path, small_disk(disk))
    assert result["encoded"] and result["masks"][0] == 3
    assert result["problem"] == (f"cannot write the embedding cache folder '{disk}': the disk is full; choose "
                                 "another embedding cache folder in Settings > Options > AI Segmentation")
    assert not [f for f in result["files"] if f.endswith(".npy") or ".tmp-" in f]  # no partial entry left


# --- the dock's output and export ---------------------------------------------------------------


def test_output_geopackage_wrong_types(tmp_path, qgis_app):
    from core.output.output_store import OutputStore

    crs = QgsCoordinateReferenceSystem("EPSG:32633")
    (tmp_path / "a folder.gpkg").mkdir()
    (tmp_path / "plain").write_text("x")
    before = listing(tmp_path)
    with pytest.raises(StoreWriteError) as info:  # before: "is damaged or is not a GeoPackage"
        OutputStore(str(tmp_path / "a folder.gpkg"), "objects", crs)
    assert str(info.value) == (f"cannot write the GeoPackage '{tmp_path / 'a folder.gpkg'}': it is a folder; "
                               "choose a file name")
    with pytest.raises(StoreWriteError) as info:  # before: "the folder ... does not exist"
        OutputStore(str(tmp_path / "plain" / "s.gpkg"), "objects", crs)
    assert f"'{tmp_path / 'plain'}' is a file, not a folder" in str(info.value)
    assert listing(tmp_path) == before


def test_dock_output_folder_that_cannot_be_made(tmp_path, qgis_app):
    """Before: NotADirectoryError from os.makedirs when the first object was saved."""
    output = plugin_module("gui.output")
    store_error = plugin_module("core.output.gpkg_io").StoreWriteError
    (tmp_path / "plain").write_text("x")
    path = tmp_path / "plain" / "ai_segmentation" / "ai_segmentation.gpkg"
    manager = output.OutputManager(store_path=lambda: str(path))
    with pytest.raises(store_error) as info:
        manager.save(b"", QgsCoordinateReferenceSystem("EPSG:32633"), plugin_module("core.output.output_store")
                     .ObjectAttributes(), "objects")
    assert str(info.value) == (f"cannot create the output folder '{path.parent}': '{tmp_path / 'plain'}' is a "
                               "file, not a folder; check the path")


# --- settings ----------------------------------------------------------------------------------


def test_settings_file_problems(tmp_path):
    """Before: QSettings failed silently (defaults on load, nothing saved, no word)."""
    profile = tmp_path / "profil"
    profile.mkdir()
    ini = profile / "QGIS3.ini"
    ini.write_text("[ai_segmentation]\nthreads=3\n")
    unreadable = tmp_path / "unreadable.ini"
    unreadable.write_text("[ai_segmentation]\nthreads=3\n")
    (tmp_path / "folder.ini").mkdir()
    prefix = permissions_apply()
    profile.chmod(0o555)
    ini.chmod(0o444)
    unreadable.chmod(0o000)
    try:
        result = run_script(f"""
        import logging
        from qgis.core import QgsSettings
        from qgis.PyQt.QtCore import QSettings
        from tools.plugin_package import plugin_module
        S = plugin_module("toolbelt.settings")
        logged = []
        logging.getLogger("ai_segmentation").addHandler(type("H", (logging.Handler,), {{
            "emit": lambda self, r: logged.append(r.getMessage())}})())
        out = {{}}
        for name in ({str(ini)!r}, {str(unreadable)!r}, {str(tmp_path / "folder.ini")!r}):
            s = QgsSettings(name, QSettings.Format.IniFormat)
            threads = S.Settings.load(s).threads
            try:
                S.Settings(threads=7).save(s)
                saved = "ok"
            except S.SettingsError as exc:
                saved = str(exc)
            out[os.path.basename(name)] = [threads, saved]
        out["logged"] = logged
        print(json.dumps(out))
        """, tmp_path, prefix, qgis=True)
    finally:
        profile.chmod(0o755)
        ini.chmod(0o644)
        unreadable.chmod(0o644)
    assert result["QGIS3.ini"] == [3, f"cannot write the QGIS profile folder '{profile}': permission denied; make "
                                      "it a folder you can write to (the AI Segmentation settings were not saved)"]
    assert ini.read_text() == "[ai_segmentation]\nthreads=3\n"
    threads, saved = result["unreadable.ini"]
    assert threads == 0 and saved.startswith(f"cannot write the QGIS settings file '{unreadable}': permission denied")
    folder = tmp_path / "folder.ini"
    assert result["folder.ini"][1] == (f"cannot write the QGIS settings file '{folder}': it is a folder; remove or "
                                       "rename that folder (the AI Segmentation settings were not saved)")
    assert result["logged"] == [
        f"Cannot read the QGIS settings file '{unreadable}': permission denied; give yourself read access to it. "
        "The AI Segmentation settings are at their defaults until then.",
        f"Cannot read the QGIS settings file '{folder}': it is a folder, not a file; choose the file itself. "
        "The AI Segmentation settings are at their defaults until then."]


def test_settings_save_reaches_the_disk(tmp_path, qgis_app):
    settings = plugin_module("toolbelt.settings")
    ini = tmp_path / ODD / "QGIS3.ini"
    s = QgsSettings(str(ini), QSettings.Format.IniFormat)
    settings.Settings(threads=5).save(s)  # the profile folder is made, the file written now
    assert "threads=5" in ini.read_text()
