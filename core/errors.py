"""Exceptions whose messages are written for the user, never raw tracebacks."""


class SegmentationError(Exception):
    """Base of every error the plugin reports to the user."""


class ModelError(SegmentationError):
    """A model file is missing, unreadable, or not the SAM ONNX file expected."""


class MissingDependencyError(SegmentationError):
    """A runtime dependency (onnxruntime) is not installed."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (onnxruntime's can run to pages), at most 300 chars."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
