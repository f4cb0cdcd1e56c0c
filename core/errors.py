"""Exceptions whose messages are written for the user, never raw tracebacks."""


class SegmentationError(Exception):
    """Base of every error the plugin reports to the user."""


class ModelError(SegmentationError):
    """A model file is missing, unreadable, or not the SAM ONNX file expected."""


class MissingDependencyError(SegmentationError):
    """A runtime dependency (onnxruntime) is not installed."""
