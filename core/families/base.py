"""The engine interface every model family implements, and the embedding bundle it passes around.

A family (SAM / MobileSAM, SAM 2.1, EfficientSAM) has an encoder, run once per image
(``encode(image) -> ImageEmbedding``), and a decoder, run per prompt
(``predict(bundle, prompts) -> Prediction``). Everything outside ``core.families`` sees only
these two classes and :class:`ImageEmbedding`; it never asks which family it has.

Prompt coordinates, in original-image pixels, come in two conventions (``continuous`` flag of
:meth:`FamilyDecoder.predict`):

- *reference* (default): exactly what the family's own predictor takes (``SamPredictor``,
  ``SAM2ImagePredictor``, EfficientSAM's ``predict_masks``), so results match it bit for bit.
  Each of them adds half a pixel of its own 1024 px frame, so a coordinate ``c`` lands at the
  continuous position ``c + 0.5 / s`` of the original image, ``s`` being the family's frame
  pixels per original pixel on that axis.
- *continuous*: positions on the image plane, pixel ``(i, j)`` covering ``[i, i+1) x [j, j+1)``
  (its centre is ``i + 0.5``). The family converts them exactly (``c = p - 0.5 / s``), so a
  click lands where it was made whatever the frame size. The plugin uses this one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..errors import ModelError, SegmentationError
from . import onnx_session as ox

Shape = Tuple[int, int]  # (h, w) in pixels
IMAGE_EMBEDDINGS = "image_embeddings"  # bundle name of the [1, 256, 64, 64] embedding every family has
EMBEDDING_SHAPE = (1, 256, 64, 64)
LOW_RES = 256  # side of every family's low-resolution mask logits
Matrices = Tuple[np.ndarray, np.ndarray]  # rows [H, 256], cols [W, 256]: logits = rows @ low @ cols.T


class ImageError(SegmentationError, ValueError):
    """The image handed to the encoder is not HxWx3 uint8."""


class PromptError(SegmentationError, ValueError):
    """Prompts that the decoder cannot take (no prompt, bad shapes, bad labels)."""


@dataclass(frozen=True)
class ImageEmbedding:
    """Encoder output for one image: the bundle of tensors its family's decoder needs.

    Attributes:
        embeddings: ``[1, 256, 64, 64]`` float32 image embedding (every family has one; it also
            serves image features and similarity).
        original_size: ``(h, w)`` of the image given to the encoder, in pixels.
        input_size: ``(h, w)`` of the image inside the encoder's 1024 px frame, in pixels
            (SAM: longest side 1024; SAM 2.1 and EfficientSAM: 1024 x 1024).
        family: name of the family that made it (``"sam"``, ``"sam2"``, ``"efficientsam"``).
        extras: the family's other tensors by name, float32 (SAM 2.1: ``high_res_feats_0``
            ``[1, 32, 256, 256]`` and ``high_res_feats_1`` ``[1, 64, 128, 128]``).
    """

    embeddings: np.ndarray
    original_size: Shape
    input_size: Shape
    family: str = "sam"
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def tensors(self) -> Dict[str, np.ndarray]:
        """Every tensor of the bundle by name, the image embedding as ``image_embeddings``."""
        return {IMAGE_EMBEDDINGS: self.embeddings, **self.extras}


class Prediction(NamedTuple):
    """Decoder output, with the semantics of the family's own predictor.

    Attributes:
        masks: ``[K, H, W]`` bool at the original image size (K=3 multimask, else 1).
        scores: ``[K]`` float32 predicted IoU of each mask.
        low_res_logits: ``[K, 256, 256]`` float32 logits, for refining with a later click.
    """

    masks: np.ndarray
    scores: np.ndarray
    low_res_logits: np.ndarray


class Prompt(NamedTuple):
    """Checked prompts in original-image pixels (reference convention).

    Attributes:
        points: ``[N, 2]`` float64 (x, y), N may be 0.
        labels: ``[N]`` float64, 1 include, 0 exclude.
        box: ``[4]`` float64 ``(x0, y0, x1, y1)`` or None.
    """

    points: np.ndarray
    labels: np.ndarray
    box: Optional[np.ndarray]


def check_image(image: Any) -> np.ndarray:
    """Return ``image`` as a C-contiguous HxWx3 uint8 array or raise :class:`ImageError`."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy image, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ImageError(f"expected an HxWx3 RGB image, got shape {tuple(image.shape)}")
    if image.dtype != np.uint8:
        raise ImageError(f"expected uint8 pixel values 0-255, got {image.dtype}")
    return np.ascontiguousarray(image)


def check_prompt(points: Optional[Sequence[Sequence[float]]], labels: Optional[Sequence[int]],
                 box: Optional[Sequence[float]]) -> Prompt:
    """Validate points ``[N, 2]``, labels ``[N]`` (1/0) and a box ``(x0, y0, x1, y1)``."""
    coords = np.zeros((0, 2), np.float64)
    labs = np.zeros((0,), np.float64)
    if points is not None and len(points):
        coords = np.asarray(points, np.float64).reshape(-1, 2)
        if labels is None:
            raise PromptError("points were given without labels (1 include, 0 exclude)")
        labs = np.asarray(labels, np.float64).reshape(-1)
        if labs.shape[0] != coords.shape[0]:
            raise PromptError(f"{coords.shape[0]} points but {labs.shape[0]} labels")
        if not np.isin(labs, (0, 1)).all():
            raise PromptError(f"point labels must be 1 (include) or 0 (exclude), got {sorted(set(labs))}")
    b = None
    if box is not None:
        b = np.asarray(box, np.float64).reshape(-1)
        if b.shape[0] != 4:
            raise PromptError(f"a box is (x0, y0, x1, y1), got {b.shape[0]} values")
    if not coords.shape[0] and b is None:
        raise PromptError("no prompt: give at least one point or a box")
    if not np.isfinite(coords).all() or (b is not None and not np.isfinite(b).all()):
        raise PromptError("prompt coordinates must be finite numbers")
    return Prompt(coords, labs, b)


def check_mask_input(mask_input: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """``[1, 256, 256]`` (any shape of 65536 values) low-res logits -> ``[1, 1, 256, 256]`` float32."""
    if mask_input is None:
        return None
    m = np.asarray(mask_input, np.float32)
    if m.size != LOW_RES * LOW_RES:
        raise PromptError(f"mask_input must be [1, 256, 256] logits, got shape {m.shape}")
    return np.ascontiguousarray(m.reshape(1, 1, LOW_RES, LOW_RES))


class PointRunner:
    """One include point at a time on one image, for "segment everything" (see core.segment.automatic).

    ``runner(point)``: ``(x, y)`` in the image's pixels, reference convention (as the family's
    automatic mask generator feeds its predictor) -> ``(scores [3], low-res logits [3, 256, 256])``.
    ``runner.matrices``: :data:`Matrices` taking those logits to the image size, as the family's
    predictor upscales them.
    """

    def __init__(self, decode: Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]], matrices: Matrices) -> None:
        self._decode = decode
        self.matrices = matrices

    def __call__(self, point: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        return self._decode(point)


class FamilyEncoder(ABC):
    """A family's encoder on an open ONNX Runtime session.

    Subclasses set :attr:`outputs` (graph output name -> bundle name) and implement
    :meth:`prepare`.
    """

    outputs: ClassVar[Dict[str, str]] = {}
    preprocess_in_graph = False  # True when the graph normalises (and pads) the image itself

    def __init__(self, family: Family, path: str, session: Any) -> None:
        self.family = family
        self.path = path
        self.session = session

    @abstractmethod
    def prepare(self, image: np.ndarray) -> Tuple[Dict[str, np.ndarray], Shape]:
        """HxWx3 uint8 -> (graph feed, ``input_size``)."""

    def encode(self, image: np.ndarray, cancel: Optional[ox.CancelToken] = None) -> ImageEmbedding:
        """Encode an HxWx3 uint8 RGB image of any size, as the family's own predictor does.

        ``cancel`` stops the run from another thread within about one graph node
        (:class:`onnx_session.EncodeCancelledError` is raised then).
        """
        image = check_image(image)
        feed, input_size = self.prepare(image)
        names = list(self.outputs)
        values = ox.run_cancellable(self.session, names, feed, cancel, self.path)
        tensors = {}
        for name, value in zip(names, values):
            key = self.outputs[name]
            want = self.family.bundle_shapes[key]
            if tuple(value.shape) != want:
                raise ModelError(f"'{self.path}' returned {name} of shape {tuple(value.shape)}, expected {want}")
            tensors[key] = np.ascontiguousarray(value, dtype=np.float32)
        main = tensors.pop(IMAGE_EMBEDDINGS)
        return ImageEmbedding(main, (int(image.shape[0]), int(image.shape[1])), input_size,
                              self.family.name, tensors)


class FamilyDecoder(ABC):
    """A family's prompt decoder on an open ONNX Runtime session."""

    def __init__(self, family: Family, path: str, session: Any) -> None:
        self.family = family
        self.path = path
        self.session = session

    @abstractmethod
    def coord_scale(self, original: Shape) -> Tuple[float, float]:
        """``(sx, sy)``: the family's frame pixels per original pixel, for the half-pixel shift."""

    @abstractmethod
    def decode(self, bundle: ImageEmbedding, prompt: Prompt, mask: Optional[np.ndarray],
               multimask: bool) -> Tuple[np.ndarray, np.ndarray]:
        """Checked prompt (reference convention) -> ``(scores [K], low-res logits [K, 256, 256])``."""

    @abstractmethod
    def upscale(self, low_res: np.ndarray, bundle: ImageEmbedding) -> np.ndarray:
        """``[K, 256, 256]`` logits -> ``[K, H, W]`` bool masks at ``bundle.original_size``."""

    @abstractmethod
    def matrices(self, original: Shape, input_size: Shape) -> Matrices:
        """The family's upscaling of low-res logits to ``original`` as two matrices."""

    @abstractmethod
    def point_runner(self, bundle: ImageEmbedding) -> PointRunner:
        """A fast single-include-point decoder on ``bundle`` (for "segment everything")."""

    def check_bundle(self, bundle: ImageEmbedding) -> None:
        """Raise :class:`PromptError` unless ``bundle`` holds this family's tensors with their shapes."""
        got = bundle.tensors
        for name, shape in self.family.bundle_shapes.items():
            if name not in got or tuple(got[name].shape) != shape:
                found = tuple(got[name].shape) if name in got else "nothing"
                raise PromptError(f"the embedding's {name} must have shape {shape}, got {found}")

    def reference_coords(self, coords: np.ndarray, original: Shape) -> np.ndarray:
        """Continuous positions ``[..., 2]`` -> the reference convention: ``c = p - 0.5 / s``."""
        sx, sy = self.coord_scale(original)
        return np.asarray(coords, np.float64) - (0.5 / sx, 0.5 / sy)

    def blank_bundle(self) -> ImageEmbedding:
        """A zero embedding of a 1024 x 1024 image, to warm the decoder up."""
        shapes = dict(self.family.bundle_shapes)
        main = np.zeros(shapes.pop(IMAGE_EMBEDDINGS), np.float32)
        extras = {k: np.zeros(s, np.float32) for k, s in shapes.items()}
        return ImageEmbedding(main, (1024, 1024), (1024, 1024), self.family.name, extras)

    def predict(self, bundle: ImageEmbedding, points: Optional[Sequence[Sequence[float]]] = None,
                labels: Optional[Sequence[int]] = None, box: Optional[Sequence[float]] = None,
                mask_input: Optional[np.ndarray] = None, multimask: bool = True,
                continuous: bool = False) -> Prediction:
        """Masks for prompts in original-image pixels (see the module docstring for ``continuous``)."""
        self.check_bundle(bundle)
        prompt = check_prompt(points, labels, box)
        if continuous:
            size = bundle.original_size
            b = None if prompt.box is None else self.reference_coords(prompt.box.reshape(2, 2), size).ravel()
            prompt = Prompt(self.reference_coords(prompt.points, size), prompt.labels, b)
        scores, low = self.decode(bundle, prompt, check_mask_input(mask_input), multimask)
        low = np.ascontiguousarray(low, np.float32)
        return Prediction(self.upscale(low, bundle), np.ascontiguousarray(scores, np.float32), low)


class Family(ABC):
    """One model family: how to recognise its files and how to run them."""

    name = ""  # stable id, stored in cache entries
    title = ""  # for messages: "SAM / MobileSAM"
    bundle_shapes: ClassVar[Dict[str, Tuple[int, ...]]] = {}  # bundle tensors (IMAGE_EMBEDDINGS first)
    encoder_hint = ""  # "input image [1,3,1024,1024] -> ..." for unknown-graph messages
    decoder_hint = ""

    @abstractmethod
    def role(self, inputs: Dict[str, ox.TensorSpec], outputs: Dict[str, ox.TensorSpec]) -> Optional[str]:
        """``"encoder"``, ``"decoder"`` or None for a graph signature."""

    @abstractmethod
    def encoder(self, path: str, session: Any) -> FamilyEncoder:
        """The encoder on an open session of a file :meth:`role` called an encoder."""

    @abstractmethod
    def decoder(self, path: str, session: Any, threads: Optional[int]) -> FamilyDecoder:
        """The decoder on an open session of a file :meth:`role` called a decoder."""

    @property
    def entry_bytes(self) -> int:
        """Bytes one cached bundle takes: float16 tensors, .npy header and sidecar."""
        return sum(2 * int(np.prod(s)) for s in self.bundle_shapes.values()) + 1024

