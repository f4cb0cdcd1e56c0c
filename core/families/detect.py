"""Which family and role an ONNX file is, from its graph signature alone.

:func:`probe` reads only the graph's inputs and outputs (see :mod:`.signature`), so it is
cheap enough to validate a folder of models. :func:`expect` is what the encoder and decoder
facades call before opening a session; :func:`check_pair` refuses an encoder and a decoder of
different families with a message naming both files.
"""

from __future__ import annotations

import os
from typing import Dict, List, NamedTuple, Tuple

from ..errors import MissingDependencyError, ModelError
from . import onnx_session as ox
from .base import Family
from .efficientsam import EfficientSam
from .sam import Sam
from .sam2 import Sam2
from .signature import Signature, read_signature

FAMILIES: Tuple[Family, ...] = (Sam(), Sam2(), EfficientSam())
ROLES = ("encoder", "decoder")


class ModelKind(NamedTuple):
    """What a model file is: ``family`` (a :attr:`Family.name`) and ``role`` ("encoder"/"decoder")."""

    family: str
    role: str


def family(name: str) -> Family:
    """The family called ``name``; raises :class:`ModelError` for a name this plugin does not know."""
    for f in FAMILIES:
        if f.name == name:
            return f
    raise ModelError(f"unknown model family {name!r}; known: {', '.join(f.name for f in FAMILIES)}")


def title(name: str) -> str:
    """``"SAM 2 / 2.1"`` for ``"sam2"``: the family's name for messages."""
    return family(name).title


def _signature(path: str, role: str) -> Signature:
    """The graph's signature from the file; onnxruntime's reading if the file's header is odd."""
    try:
        return read_signature(path)
    except ModelError as parse_error:
        if not os.path.isfile(path):
            raise
        try:
            session = ox.open_session(path, role)
        except MissingDependencyError:
            raise parse_error from None
        return ox.signature(session)


def _describe(sig: Signature) -> str:
    ins, outs = sig
    return f"{', '.join(str(s) for s in ins.values()) or 'no input'} -> " \
           f"{', '.join(str(s) for s in outs.values()) or 'no output'}"


def identify(path: str, sig: Signature) -> Tuple[Family, str]:
    """``(family, role)`` of a signature, or :class:`ModelError` saying what was found and what is known."""
    for f in FAMILIES:
        role = f.role(*sig)
        if role is not None:
            return f, role
    raise ModelError(f"'{path}' is not a model this plugin knows: found {_describe(sig)}. {_known()}")


def _known(role: str = "") -> str:
    roles = [role] if role else list(ROLES)
    lines = [f"{f.title} {r}: {f.encoder_hint if r == 'encoder' else f.decoder_hint}" for f in FAMILIES for r in roles]
    return "Known: " + "; ".join(lines) + "."


def probe(path: os.PathLike) -> ModelKind:
    """Family and role of an ONNX model file, from its graph signature only (milliseconds).

    Raises:
        ModelError: missing, empty, unreadable, or a graph of no known family (the message
            names the file and lists what was found).
    """
    path = os.fspath(path)
    ox.check_file(path, "encoder or decoder")
    f, role = identify(path, _signature(path, "encoder or decoder"))
    return ModelKind(f.name, role)


def expect(path: os.PathLike, role: str) -> Family:
    """The family of ``path``, which must be a ``role`` ("encoder" or "decoder") file.

    Raises:
        ModelError: naming the file: missing, unreadable, unknown, or the other role
            (then saying so: "choose the encoder file").
    """
    path = os.fspath(path)
    ox.check_file(path, role)
    sig = _signature(path, role)
    found: List[Tuple[Family, str]] = [(f, r) for f in FAMILIES if (r := f.role(*sig)) is not None]
    if not found:
        article = "an" if role == "encoder" else "a"
        raise ModelError(f"'{path}' is not a SAM {role} exported by samexporter, nor {article} {role} of another "
                         f"family this plugin knows: found {_describe(sig)}. {_known(role)}")
    f, got = found[0]
    if got != role:
        article = "an" if role == "encoder" else "a"
        raise ModelError(f"'{path}' is a {f.title} {got}, not {article} {role}: choose the {role} file "
                         f"(the {f.title} {role} exported with it).")
    return f


def check_pair(encoder: os.PathLike, decoder: os.PathLike) -> Family:
    """The family of an encoder and decoder that work together; :class:`ModelError` naming both
    files when either has the wrong role or they belong to different families."""
    enc, dec = expect(encoder, "encoder"), expect(decoder, "decoder")
    if enc is not dec:
        raise ModelError(mismatch_message(os.fspath(encoder), enc, os.fspath(decoder), dec))
    return enc


def mismatch_message(encoder: str, enc: Family, decoder: str, dec: Family) -> str:
    return (f"the encoder '{encoder}' is a {enc.title} model but the decoder '{decoder}' is a {dec.title} "
            f"model: they cannot work together. Choose the {enc.title} decoder exported with this encoder, "
            f"or the {dec.title} encoder of that decoder.")


def entry_bytes() -> Dict[str, int]:
    """Bytes of one cached embedding bundle, by family name."""
    return {f.name: f.entry_bytes for f in FAMILIES}
