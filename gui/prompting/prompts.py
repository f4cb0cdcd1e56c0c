"""Prompts of the object being segmented, with undo. Pure Python (no Qt), in raster CRS units."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, List, Optional, Tuple

Point = Tuple[float, float]
Box = Tuple[float, float, float, float]  # xmin, ymin, xmax, ymax

INCLUDE, EXCLUDE = 1, 0


@dataclass(frozen=True)
class PromptSet:
    """Points (x, y) with labels (1 include, 0 exclude) and an optional box, all in the raster CRS."""

    points: Tuple[Point, ...] = ()
    labels: Tuple[int, ...] = ()
    box: Optional[Box] = None

    @property
    def is_empty(self) -> bool:
        return not self.points and self.box is None

    @property
    def counts(self) -> Tuple[int, int]:
        """Number of include and exclude points."""
        n_in = sum(1 for label in self.labels if label == INCLUDE)
        return n_in, len(self.labels) - n_in

    @property
    def wants_candidates(self) -> bool:
        """One include click alone is ambiguous: SAM then offers three candidate masks."""
        return self.box is None and self.labels == (INCLUDE,)

    def with_point(self, x: float, y: float, label: int) -> PromptSet:
        if label not in (INCLUDE, EXCLUDE):
            raise ValueError(f"a point label is 1 (include) or 0 (exclude), got {label!r}")
        return replace(self, points=(*self.points, (float(x), float(y))), labels=(*self.labels, int(label)))

    def with_box(self, box: Box) -> PromptSet:
        x0, y0, x1, y1 = (float(v) for v in box)
        return replace(self, box=(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))


class PromptHistory:
    """The prompt set after each user action, each with its result; undo steps back one action.

    ``result`` is whatever the caller computed for a state (a segmentation), or
    None while it is not computed yet; undo shows the previous state's result
    again without recomputing it.
    """

    def __init__(self) -> None:
        self._states: List[PromptSet] = [PromptSet()]
        self._results: List[Any] = [None]

    @property
    def current(self) -> PromptSet:
        return self._states[-1]

    @property
    def result(self) -> Any:
        """Result of the current state, or None."""
        return self._results[-1]

    @result.setter
    def result(self, value: Any) -> None:
        self._results[-1] = value

    @property
    def previous_result(self) -> Any:
        """Latest result of an earlier state (what a new prompt refines), or None."""
        return next((r for r in reversed(self._results[:-1]) if r is not None), None)

    def _push(self, state: PromptSet) -> PromptSet:
        self._states.append(state)
        self._results.append(None)
        return state

    def add_point(self, x: float, y: float, label: int) -> PromptSet:
        return self._push(self.current.with_point(x, y, label))

    def set_box(self, box: Box) -> PromptSet:
        """Set (or replace) the box; points are kept, since a box and points combine."""
        return self._push(self.current.with_box(box))

    def undo(self) -> bool:
        """Drop the last action; False when there was nothing to undo."""
        if len(self._states) == 1:
            return False
        self._states.pop()
        self._results.pop()
        return True

    def clear(self) -> None:
        self._states = [PromptSet()]
        self._results = [None]
