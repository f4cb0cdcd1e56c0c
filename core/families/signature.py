"""A model's graph inputs and outputs read straight from the ONNX file, without onnxruntime.

Reading the protobuf's graph header skips every weight (a seek each), so it takes
milliseconds even for a 2.5 GB ViT-H encoder, where opening a session takes seconds and
gigabytes. Only the fields needed are decoded: ``ModelProto.graph`` (7) ->
``GraphProto.input`` (11), ``output`` (12) and the names of ``initializer`` (5), which
are not inputs the caller feeds. Anything else is skipped by its wire type.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Dict, Iterator, List, Set, Tuple

from .. import fs_checks as fs
from ..errors import ModelError
from .onnx_session import TensorSpec

Signature = Tuple[Dict[str, TensorSpec], Dict[str, TensorSpec]]  # inputs, outputs by name

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class _MalformedError(Exception):
    pass


def _varint(f: BinaryIO) -> int:
    shift = result = 0
    while True:
        b = f.read(1)
        if not b:
            raise _MalformedError("file ends inside a number")
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise _MalformedError("number longer than 64 bits")


def _fields(f: BinaryIO, end: int) -> Iterator[Tuple[int, int, int]]:
    """``(field, wire type, value)`` up to offset ``end``; for LEN fields the value is the
    payload's length and the file stands at its start (the caller reads or skips it)."""
    while f.tell() < end:
        key = _varint(f)
        field, wire = key >> 3, key & 7
        if wire == _VARINT:
            yield field, wire, _varint(f)
        elif wire == _LEN:
            n = _varint(f)
            start = f.tell()
            if start + n > end:
                raise _MalformedError("a field runs past its message")
            yield field, wire, n
            f.seek(start + n)  # no-op if the caller read it whole
        elif wire in (_I64, _I32):
            f.seek(8 if wire == _I64 else 4, os.SEEK_CUR)
        else:
            raise _MalformedError(f"unknown wire type {wire}")
    if f.tell() != end:
        raise _MalformedError("a message runs past its end")


def _sub(f: BinaryIO, n: int) -> int:
    return f.tell() + n


def _string(f: BinaryIO, n: int) -> str:
    data = f.read(n)
    if len(data) != n:
        raise _MalformedError("file ends inside a string")
    return data.decode("utf-8", "replace")


def _value_info(f: BinaryIO, n: int) -> Tuple[str, int]:
    """ValueInfoProto -> (name, rank); rank -1 when the type is not a tensor with a shape."""
    name, rank = "", -1
    for field, wire, v in _fields(f, _sub(f, n)):
        if field == 1 and wire == _LEN:
            name = _string(f, v)
        elif field == 2 and wire == _LEN:  # TypeProto
            for tf, tw, tv in _fields(f, _sub(f, v)):
                if tf == 1 and tw == _LEN:  # tensor_type
                    for sf, sw, sv in _fields(f, _sub(f, tv)):
                        if sf == 2 and sw == _LEN:  # TensorShapeProto
                            rank = sum(1 for df, dw, _ in _fields(f, _sub(f, sv)) if df == 1 and dw == _LEN)
    return name, rank


def _initializer_name(f: BinaryIO, n: int) -> str:
    for field, wire, v in _fields(f, _sub(f, n)):
        if field == 8 and wire == _LEN:  # TensorProto.name; raw_data (9) is skipped by a seek
            return _string(f, v)
    return ""


def _graph(f: BinaryIO, n: int) -> Signature:
    inputs: List[Tuple[str, int]] = []
    outputs: List[Tuple[str, int]] = []
    weights: Set[str] = set()
    for field, wire, v in _fields(f, _sub(f, n)):
        if wire != _LEN:
            continue
        if field == 11:
            inputs.append(_value_info(f, v))
        elif field == 12:
            outputs.append(_value_info(f, v))
        elif field == 5:
            weights.add(_initializer_name(f, v))
    ins = {name: TensorSpec(name, rank) for name, rank in inputs if name not in weights}
    outs = {name: TensorSpec(name, rank) for name, rank in outputs}
    return ins, outs


def read_signature(path: str) -> Signature:
    """Graph inputs (initializers left out) and outputs of the ONNX file ``path``, with their ranks.

    Raises:
        ModelError: the file is missing, empty, or not a readable ONNX model (garbage, truncated).
    """
    path = os.fspath(path)
    fs.check_readable_file(path, "model file", ModelError)
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as f:
            graphs = []
            for field, wire, v in _fields(f, size):
                if field == 7 and wire == _LEN:
                    graphs.append(_graph(f, v))
    except (_MalformedError, OSError, UnicodeError) as exc:
        raise ModelError(f"'{path}' could not be loaded: it is not a valid ONNX file, or it is truncated "
                         f"({size} bytes): {exc}") from None
    if len(graphs) != 1 or not graphs[0][0] or not graphs[0][1]:
        raise ModelError(f"'{path}' could not be loaded: it is not a valid ONNX file, or it is truncated "
                         f"({size} bytes): no graph with inputs and outputs found")
    return graphs[0]
