"""What encoding a set of crops costs, and the wording of durations, sizes and map points (pure Python)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class EncodeEstimate:
    """What encoding a set of crops would cost.

    Attributes:
        total: crops in the set.
        to_encode: crops not cached yet.
        seconds: estimated seconds for them, or None before any crop was ever timed.
        cache_bytes: disk the new embeddings take.
        cache_limit: the cache's size cap; beyond it the oldest embeddings are evicted.
    """

    total: int
    to_encode: int
    seconds: Optional[float]
    cache_bytes: int
    cache_limit: int

    @property
    def text(self) -> str:
        when = f"about {format_duration(self.seconds)}" if self.seconds is not None else "time unknown yet"
        out = f"{self.to_encode} of {self.total} crops to encode ({when}, {format_bytes(self.cache_bytes)})"
        if self.cache_bytes > self.cache_limit:
            out += (f"; more than the {format_bytes(self.cache_limit)} embedding cache: the first crops "
                    "would be evicted, raise the cache size or encode a smaller extent")
        return out


def format_bytes(n: int) -> str:
    """``"23 MB"``, ``"1.4 GB"`` (decimal units)."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def format_point(x: float, y: float) -> str:
    """``"(512345.5, 5550090.25)"``: map coordinates in plain decimals (never ``5.55e+06``)."""
    return "(" + ", ".join(f"{v:.6f}".rstrip("0").rstrip(".") for v in (x, y)) + ")"


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"2 h 05 min"``."""
    s = max(0, round(seconds))
    if s < 90:
        return f"{s} s"
    if s < 5400:
        return f"{round(s / 60)} min"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
