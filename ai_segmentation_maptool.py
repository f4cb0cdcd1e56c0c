"""Map tool collecting SAM prompts: left click includes, right click excludes, a left drag draws a box.

The tool only turns mouse and keyboard input into signals in canvas CRS map
units; the controller reprojects them to the raster CRS and segments.
"""

from __future__ import annotations

from typing import Callable, List, Optional

from qgis.core import QgsPointXY
from qgis.gui import QgsMapCanvas, QgsMapMouseEvent, QgsMapTool, QgsRubberBand
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QEvent, QObject, QPoint, QRect, Qt, QTimer, pyqtSignal
from qgis.PyQt.QtGui import QColor, QKeyEvent
from qgis.PyQt.QtWidgets import QAbstractSpinBox, QComboBox, QLineEdit, QPlainTextEdit, QTextEdit, QWidget

from .core.qgis_compat import GEOMETRY_POLYGON
from .gui.prompting.prompts import EXCLUDE, INCLUDE

DRAG_THRESHOLD_PX = 6  # a press that moves less than this is a click, not a box
HOVER_INTERVAL_MS = 150  # at most one hover preview per interval

# (key, modifiers) -> command; while the tool is active they are taken before QGIS's own
# shortcuts and Tab focus navigation, on the canvas and in the panel (not in its text fields).
KEY_COMMANDS = {
    (Qt.Key.Key_S, Qt.KeyboardModifier.NoModifier): "save",
    (Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier): "undo",
    (Qt.Key.Key_Escape, Qt.KeyboardModifier.NoModifier): "clear",
    (Qt.Key.Key_Tab, Qt.KeyboardModifier.NoModifier): "next_mask",
    (Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier): "previous_mask",
}


_MODIFIERS = (Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier
              | Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.MetaModifier)


def is_text_entry(widget: QObject) -> bool:
    """True for widgets where the user types: their keys are never taken (only Esc leaves them)."""
    if isinstance(widget, QComboBox):
        return widget.isEditable()
    return isinstance(widget, (QLineEdit, QAbstractSpinBox, QTextEdit, QPlainTextEdit))


def key_command(event: QKeyEvent) -> Optional[str]:
    """The command bound to a key event, or None (compared as enums: PyQt6 has no int flags)."""
    mods = event.modifiers() & _MODIFIERS
    for (key, wanted), command in KEY_COMMANDS.items():
        if event.key() == key and mods == wanted:
            return command
    return None


class SegmentationMapTool(QgsMapTool):
    """Collects prompts on the canvas.

    Signals (coordinates in the canvas CRS, map units):
        point_clicked(x, y, label): a click; label 1 include (left), 0 exclude (right).
        box_drawn(xmin, ymin, xmax, ymax): a left drag.
        hovered(x, y): the cursor rested there (only when ``hover_enabled``; throttled).
        command_key(name): "save", "undo", "clear", "next_mask" or "previous_mask".

    ``key_widgets`` returns the widgets (besides the canvas) whose keys the tool takes while it is
    active, with their children: the plugin's panel. In a text field only Esc is taken: it gives
    the keyboard back to the map.
    """

    point_clicked = pyqtSignal(float, float, int)
    box_drawn = pyqtSignal(float, float, float, float)
    hovered = pyqtSignal(float, float)
    command_key = pyqtSignal(str)

    def __init__(self, canvas: QgsMapCanvas) -> None:
        super().__init__(canvas)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.hover_enabled = False
        self.key_widgets: Callable[[], List[QWidget]] = list
        self._watched: List[QWidget] = []
        self._press: Optional[QPoint] = None
        self._press_map: Optional[QgsPointXY] = None
        self._band: Optional[QgsRubberBand] = None
        self._hover_at: Optional[tuple] = None
        self._hover_timer = QTimer(self)
        self._hover_timer.setSingleShot(True)
        self._hover_timer.setInterval(HOVER_INTERVAL_MS)
        self._hover_timer.timeout.connect(self._emit_hover)

    # --- mouse ---

    def canvasPressEvent(self, e: QgsMapMouseEvent) -> None:  # noqa: N802 (Qt override)
        if e.button() == Qt.MouseButton.LeftButton:
            self._press = QPoint(e.pixelPoint())
            self._press_map = QgsPointXY(e.mapPoint())

    def canvasMoveEvent(self, e: QgsMapMouseEvent) -> None:  # noqa: N802
        pos = e.pixelPoint()
        if self._press is not None and e.buttons() & Qt.MouseButton.LeftButton:
            if self._band is not None or (pos - self._press).manhattanLength() >= DRAG_THRESHOLD_PX:
                self._drag_band().setToCanvasRectangle(QRect(self._press, pos).normalized())
            return
        if self.hover_enabled:
            point = e.mapPoint()
            self._hover_at = (point.x(), point.y())
            if not self._hover_timer.isActive():
                self._hover_timer.start()

    def canvasReleaseEvent(self, e: QgsMapMouseEvent) -> None:  # noqa: N802
        point = e.mapPoint()
        x, y = point.x(), point.y()  # copy now: the event's point dies with the event
        if e.button() == Qt.MouseButton.RightButton:
            self.point_clicked.emit(x, y, EXCLUDE)
            return
        if e.button() != Qt.MouseButton.LeftButton or self._press_map is None:
            return
        start, dragged = self._press_map, self._band is not None
        self._end_drag()
        if dragged:
            self.box_drawn.emit(min(start.x(), x), min(start.y(), y), max(start.x(), x), max(start.y(), y))
        else:
            self.point_clicked.emit(x, y, INCLUDE)

    def _drag_band(self) -> QgsRubberBand:
        if self._band is None:
            self._band = QgsRubberBand(self.canvas(), GEOMETRY_POLYGON)
            self._band.setStrokeColor(QColor(255, 170, 0))
            self._band.setFillColor(QColor(255, 170, 0, 40))
            self._band.setWidth(2)
        return self._band

    def _end_drag(self) -> None:
        self._press = None
        self._press_map = None
        if self._band is not None:
            self.canvas().scene().removeItem(self._band)
            self._band = None

    def _emit_hover(self) -> None:
        if self.hover_enabled and self._hover_at is not None and self._press is None:
            self.hovered.emit(*self._hover_at)

    # --- keyboard ---

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        """Take the tool's keys before shortcuts and Tab focus navigation do (text fields keep theirs)."""
        if event.type() not in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            return False
        if is_text_entry(watched):
            if key_command(event) != "clear":
                return False
            if event.type() == QEvent.Type.KeyPress:
                self.canvas().setFocus()  # leave the field; Esc again clears
            event.accept()
            return True
        command = key_command(event)
        if command is None:
            return False
        if event.type() == QEvent.Type.KeyPress:
            self.command_key.emit(command)
        event.accept()
        return True

    def activate(self) -> None:
        super().activate()
        self._watched = [self.canvas()]
        for widget in self.key_widgets():
            self._watched += [widget, *widget.findChildren(QWidget)]
        for widget in self._watched:
            widget.installEventFilter(self)

    def deactivate(self) -> None:
        for widget in self._watched:
            if not sip.isdeleted(widget):
                widget.removeEventFilter(self)
        self._watched = []
        self._hover_timer.stop()
        self._end_drag()
        super().deactivate()
