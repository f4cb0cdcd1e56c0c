"""Name and version of the plugin, read from metadata.txt (their single source of truth)."""

from __future__ import annotations

import configparser
from functools import lru_cache
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def _general() -> dict:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(PLUGIN_DIR / "metadata.txt", encoding="utf-8")
    return dict(parser["general"]) if parser.has_section("general") else {}


def plugin_name() -> str:
    """Display name of the plugin ("AI Segmentation")."""
    return _general().get("name", "AI Segmentation")


def plugin_version() -> str:
    """Version string of the plugin, e.g. "0.1.0"."""
    return _general().get("version", "0")


def icon_path(name: str = "icon.svg") -> str:
    """Absolute path of an icon in resources/icons."""
    return str(PLUGIN_DIR / "resources" / "icons" / name)
