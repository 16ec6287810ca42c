"""Buffers whose data starts on a cache line.

NumPy aligns an array's data to 16 bytes; an array at 32 mod 64 splits every 64-byte (AVX-512)
load and store of its elements across two cache lines.  The flat parameter vector and the
engine's workspaces are allocated here.  Measured: a digits fit whose per-thread weights and
workspaces sat at 32 mod 64 took 51.8 ms, aligned 49.7 ms (alternating fits, one process).
"""
from __future__ import annotations

import numpy as np

__all__ = ["ALIGN", "zeros"]

#: bytes: one cache line, one AVX-512 vector
ALIGN = 64


def zeros(shape, dtype):
    """``np.zeros(shape, dtype)`` with its data at a multiple of :data:`ALIGN` bytes."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.zeros(n * dtype.itemsize + ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + n * dtype.itemsize].view(dtype).reshape(shape)
