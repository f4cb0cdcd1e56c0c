"""The setup dialog's models part: the catalogue in one click, the models folder, the user's own models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from catalogue_cases import TINY, sam_catalogue
from hf_server import HubServer
from qgis.core import QgsSettings
from qgis.PyQt.QtCore import Qt

from tools.plugin_package import plugin_module

setup = plugin_module("gui.setup.setup_dialog")


@pytest.fixture
def clean_settings():
    """Keep the user's stored plugin settings out of (and unchanged by) the test."""
    s = QgsSettings()
    saved = {k: s.value(k) for k in s.allKeys() if k.startswith("ai_segmentation/")}
    for k in saved:
        s.remove(k)
    yield s
    for k in [k for k in s.allKeys() if k.startswith("ai_segmentation/")]:
        s.remove(k)
    for k, v in saved.items():
        s.setValue(k, v)


@pytest.fixture
def warnings(monkeypatch):
    """Message boxes are modal: collect what they would say instead."""
    said = []
    monkeypatch.setattr(setup.QMessageBox, "warning", lambda _parent, title, text: said.append((title, text)))
    return said


def dialog(qtbot, tmp_path, models_dir=None):
    dlg = setup.SetupDialog(None, models_dir=models_dir, profile_dir=str(tmp_path / "profile"))
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: not dlg.busy(), timeout=60000)
    return dlg


def rows(dlg):
    tree = dlg.panel.catalogue
    return [[tree.topLevelItem(i).text(c) for c in range(tree.columnCount())] for i in range(tree.topLevelItemCount())]


def select_model(dlg, model_id: str) -> None:
    tree = dlg.panel.catalogue
    item = next(tree.topLevelItem(i) for i in range(tree.topLevelItemCount())
                if tree.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole) == model_id)
    tree.setCurrentItem(item)
    item.setSelected(True)


def test_models_folder_is_in_the_profile_and_the_catalogue_is_listed(qgis_app, qtbot, tmp_path, warnings,
                                                                    monkeypatch):
    dlg = dialog(qtbot, tmp_path)
    assert dlg.models_dir == tmp_path / "profile" / "ai_segmentation" / "models"
    assert dlg.panel.folder_label.text() == str(dlg.models_dir)
    listed = rows(dlg)
    assert [r[0] for r in listed] == ["★ EfficientSAM-Ti", "SAM 2 Hiera-Tiny", "SAM 2 Hiera-Small",
                                      "SAM 2 Hiera-Base+"]  # fastest first, the default recommendation starred
    assert listed[0][1:4] == ["fast: 2.2 s per crop", "41 MB", "Apache-2.0"]
    assert all(r[4] == "not installed" for r in listed)
    files = [dlg.model_list.item(i).text() for i in range(dlg.model_list.count())]
    assert len(files) == 1 and files[0].startswith(f"No model files in {dlg.models_dir}")
    assert "copy" not in files[0] and "plugin" not in dlg.pair_label.text()
    select_model(dlg, "sam2_hiera_tiny")
    # as a family that only a newer plugin version runs
    monkeypatch.setattr(plugin_module("core.models.model_manager"), "RUNNABLE_FAMILIES", ("sam",))
    dlg.download_model()  # refused before any download
    qtbot.waitUntil(lambda: not dlg.busy(), timeout=10000)
    assert warnings[-1][1].startswith("SAM 2 Hiera-Tiny is a SAM 2 / 2.1 model, which this version of the plugin")
    assert not dlg.models_dir.exists() or list(dlg.models_dir.iterdir()) == []


def test_choosing_another_models_folder(qgis_app, qtbot, tmp_path, tiny_paths, clean_settings, monkeypatch):
    dlg = dialog(qtbot, tmp_path)
    chosen = tmp_path / "elsewhere" / "models"
    chosen.mkdir(parents=True)
    for key in TINY.values():
        shutil.copy(tiny_paths[key], chosen / tiny_paths[key].name)
    monkeypatch.setattr(setup.QFileDialog, "getExistingDirectory", lambda *_: str(chosen))
    with qtbot.waitSignal(dlg.modelsDirChanged) as blocker:
        dlg.panel.buttons["Choose folder…"].click()
    assert blocker.args == [str(chosen)] and dlg.models_dir == chosen
    assert clean_settings.value("ai_segmentation/models_dir") == str(chosen)
    qtbot.waitUntil(lambda: not dlg.busy(), timeout=60000)
    assert {Path(e.path).parent for e in dlg.entries} == {chosen}
    assert dlg.pair_label.text() == "Will use: tiny.encoder.preproc.onnx + tiny.decoder.onnx"
    assert dlg.panel.folder_label.text() == str(chosen)


def test_one_click_download_installs_and_selects_the_pair(qgis_app, qtbot, tmp_path, tiny_paths, warnings):
    hub = HubServer({f"tiny_{role}.onnx": tiny_paths[key].read_bytes() for role, key in TINY.items()})
    try:
        dlg = dialog(qtbot, tmp_path, models_dir=str(tmp_path / "models"))
        dlg.catalogue = sam_catalogue(tiny_paths, hub.base, pinned=False)
        dlg.refresh_models()
        qtbot.waitUntil(lambda: not dlg.busy(), timeout=60000)
        assert rows(dlg)[0][0] == "★ Tiny SAM" and rows(dlg)[0][4] == "not installed"
        select_model(dlg, "tiny")
        with qtbot.waitSignal(dlg.modelsChanged, timeout=60000) as blocker:
            dlg.panel.buttons["Download"].click()
        folder = tmp_path / "models" / "tiny"
        assert blocker.args == [str(folder / "tiny_encoder.onnx"), str(folder / "tiny_decoder.onnx")]
        qtbot.waitUntil(lambda: not dlg.busy(), timeout=60000)
        assert rows(dlg)[0][4] == "installed" and warnings == []
        assert dlg.pair_label.text() == "Will use: tiny_encoder.onnx + tiny_decoder.onnx"
        assert dlg.progress.maximum() == 1  # idle again
    finally:
        hub.close()


def test_adding_and_removing_an_own_model(qgis_app, qtbot, tmp_path, tiny_paths, warnings):
    own = tmp_path / "finetuned"
    own.mkdir()
    enc, dec = own / "roofs_enc.onnx", own / "roofs_dec.onnx"
    shutil.copy(tiny_paths["encoder_preproc"], enc)
    shutil.copy(tiny_paths["decoder"], dec)
    dlg = dialog(qtbot, tmp_path)
    dlg.add_model_files("Roofs", str(dec), str(enc))  # swapped: refused with the reason
    qtbot.waitUntil(lambda: not dlg.busy(), timeout=60000)
    assert warnings[-1] == ("Adding 'Roofs'", "'roofs_dec.onnx' is a SAM / MobileSAM decoder, not the encoder: choose "
                                              "the encoder file for the encoder")
    with qtbot.waitSignal(dlg.modelsChanged, timeout=60000) as blocker:
        dlg.add_model_files("Roofs", str(enc), str(dec))
    assert blocker.args == [str(enc), str(dec)]
    qtbot.waitUntil(lambda: not dlg.busy(), timeout=60000)
    assert dlg.panel.custom_list.item(0).text() == "Roofs (sam): ready"
    assert "Roofs" in dlg.record().custom
    dlg.panel.custom_list.item(0).setSelected(True)
    dlg.remove_model()
    qtbot.waitUntil(lambda: not dlg.busy(), timeout=60000)
    assert dlg.record().custom == {} and enc.is_file()  # the files stay
    assert dlg.panel.custom_list.item(0).text().startswith("None yet")


def test_settings_move_the_old_plugin_folder_default_to_the_profile(qgis_app, clean_settings, tmp_path):
    settings, models = plugin_module("toolbelt.settings"), plugin_module("toolbelt.models")
    profile_default = models.default_models_dir()
    assert profile_default.endswith(str(Path("ai_segmentation") / "models"))
    assert settings.Settings.load().models_dir == profile_default  # nothing stored
    clean_settings.setValue("ai_segmentation/models_dir", str(models.LEGACY_MODELS_DIR))  # 0.1's default
    assert settings.Settings.load().models_dir == profile_default
    clean_settings.setValue("ai_segmentation/models_dir", str(tmp_path))  # the user's choice is kept
    assert settings.Settings.load().models_dir == str(tmp_path)
    assert models.search_folders(str(tmp_path)) == [str(tmp_path), str(models.LEGACY_MODELS_DIR)]
