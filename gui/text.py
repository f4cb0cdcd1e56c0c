"""Wording shared by the panel's messages. Pure Python."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """``"1 object"``, ``"2 objects"``, ``"0 objects"`` (nouns taking a plain "s")."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
