"""Python packages: the subprocess gate, the interpreter choice, and the ONNX Runtime package that fits
the machine. :mod:`core.dependency_manager` is the entry point (detection and install)."""
