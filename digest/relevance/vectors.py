"""Vectors as the database stores them: float32, little-endian, L2-normalised.

Pure functions on numpy arrays; no Django.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["DTYPE", "from_bytes", "normalise", "stack", "to_bytes"]

DTYPE = np.dtype("<f4")
"""float32, little-endian: the byte layout of ``PaperEmbedding.vector`` and
``Subscriber.profile``."""

Matrix = npt.NDArray[np.float32]


def normalise(matrix: npt.ArrayLike) -> Matrix:
    """Rows of ``matrix`` (shape ``(n, d)`` or ``(d,)``) scaled to unit L2 norm, as float32;
    an all-zero row stays zero."""
    array = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    return np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)


def to_bytes(vector: npt.ArrayLike) -> bytes:
    """One vector (shape ``(d,)``) as ``4·d`` bytes of little-endian float32."""
    return np.asarray(vector, dtype=DTYPE).reshape(-1).tobytes()


def from_bytes(data: bytes | memoryview, dimensions: int | None = None) -> Matrix:
    """The vector stored in ``data``. Raises ``ValueError`` when its length is not a
    multiple of 4, or not ``4·dimensions`` when ``dimensions`` is given."""
    raw = bytes(data)
    if len(raw) % 4 or (dimensions is not None and len(raw) != 4 * dimensions):
        raise ValueError(f"a vector of {len(raw)} bytes is not {dimensions or 'n'} float32 values")
    return np.frombuffer(raw, dtype=DTYPE).astype(np.float32)


def stack(vectors: list[Matrix], dimensions: int) -> Matrix:
    """``vectors`` as one ``(len(vectors), dimensions)`` matrix (``(0, dimensions)`` when
    empty)."""
    if not vectors:
        return np.zeros((0, dimensions), dtype=np.float32)
    return np.vstack(vectors).astype(np.float32, copy=False)
