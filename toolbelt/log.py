"""One logging facade: short messages to the message bar, details to QgsMessageLog.

Core code logs through ``logging.getLogger("ai_segmentation")``; :func:`install`
forwards those records to QgsMessageLog. Slots are wrapped with :func:`guarded`
so that a user never sees a traceback: a :class:`SegmentationError` becomes its
own message, anything else a short message with the traceback in the log.
"""

from __future__ import annotations

import functools
import logging
import traceback
from typing import Any, Callable, Optional

from qgis.core import Qgis, QgsMessageLog
from qgis.PyQt.QtCore import QCoreApplication, QThread

from ..core.errors import SegmentationError
from .metadata import plugin_name

LOGGER_NAME = "ai_segmentation"
_QGIS_LEVELS = (
    (logging.ERROR, Qgis.MessageLevel.Critical),
    (logging.WARNING, Qgis.MessageLevel.Warning),
    (logging.INFO, Qgis.MessageLevel.Info),
)
_bar: Any = None  # the QgsMessageBar messages are pushed to; None in headless use


def tag() -> str:
    """Tab name of the plugin's messages in the QGIS log panel."""
    return plugin_name()


def set_message_bar(bar: Any) -> None:
    """Message bar used by :func:`push` (``iface.messageBar()``), or None."""
    global _bar
    _bar = bar


def _in_gui_thread() -> bool:
    app = QCoreApplication.instance()
    return app is not None and QThread.currentThread() is app.thread()


def log(message: str, level: int = Qgis.MessageLevel.Info) -> None:
    """Write ``message`` to QgsMessageLog only (safe from any thread)."""
    QgsMessageLog.logMessage(message, tag(), level, notifyUser=level >= Qgis.MessageLevel.Warning)


def push(message: str, level: int = Qgis.MessageLevel.Info, details: str = "", duration: Optional[int] = None) -> None:
    """Show ``message`` in the message bar and log it, with ``details`` in the log only."""
    log(f"{message}\n{details}".rstrip(), level)
    if _bar is None or not _in_gui_thread():
        return
    if duration is None:
        duration = 5 if level in (Qgis.MessageLevel.Info, Qgis.MessageLevel.Success) else 10
    _bar.pushMessage(tag(), message, level, duration)


def info(message: str) -> None:
    push(message, Qgis.MessageLevel.Info)


def success(message: str) -> None:
    push(message, Qgis.MessageLevel.Success)


def warning(message: str, details: str = "") -> None:
    push(message, Qgis.MessageLevel.Warning, details)


def report_exception(exc: BaseException, context: str = "") -> None:
    """Tell the user what went wrong; the traceback goes to the log only."""
    prefix = f"{context}: " if context else ""
    if isinstance(exc, SegmentationError):
        push(prefix + str(exc), Qgis.MessageLevel.Warning)
        return
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    push(
        f"{prefix}unexpected error ({type(exc).__name__}: {exc}); details are in the log panel",
        Qgis.MessageLevel.Critical,
        details,
    )


def guarded(func: Callable) -> Callable:
    """Decorate a Qt slot so that no exception escapes to the user as a traceback.

    Qt passes extra positional arguments to some slots (e.g. ``checked``); the
    wrapper keeps the wrapped signature so that PyQt calls it with the right ones.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            report_exception(exc)
            return None

    return wrapper


class QgsLogHandler(logging.Handler):
    """Forwards Python logging records to QgsMessageLog (thread-safe: it only logs)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = next((q for py, q in _QGIS_LEVELS if record.levelno >= py), Qgis.MessageLevel.Info)
            log(self.format(record), level)
        except Exception:  # a broken log call must never break the caller
            self.handleError(record)


def install() -> QgsLogHandler:
    """Attach a :class:`QgsLogHandler` to the "ai_segmentation" logger and return it."""
    handler = QgsLogHandler()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return handler


def uninstall(handler: Optional[logging.Handler]) -> None:
    """Detach a handler returned by :func:`install` (safe to call twice)."""
    if handler is not None:
        logging.getLogger(LOGGER_NAME).removeHandler(handler)
