"""Content analysis of a model file: its format from header bytes, plus byte entropy.

``analyse(fd, size)`` reads a bounded amount whatever the file size: a 64 KiB head, an
entropy sample of at most 1 MiB (16 windows spread over the file), and the format's own
structure within that format's budget (see the ``efs_fmt_*`` modules). Nothing is unpickled
or executed. A file that is not of a format falls through to the next one, ending at
``binary``; a file of a format whose header breaks its rules is that format with
``"valid": false`` and the ``error``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Dict, Tuple

import efs_fmt_hdf5
import efs_fmt_onnx
import efs_fmt_pickle
import efs_fmt_tensors
import efs_fmt_text
from efs_read import pread_exact

HEAD_BYTES = 64 << 10
SAMPLE_BYTES = 1 << 20
SAMPLE_WINDOWS = 16
HDF5_SIGNATURE = efs_fmt_hdf5.SIGNATURE

Analysis = Dict[str, Any]


# --------------------------------------------------------------------------- entropy


def byte_entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte (0.0 for no data)."""
    n = len(data)
    if not n:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values()) + 0.0


def read_sample(fd: int, size: int) -> bytes:
    """The whole file up to SAMPLE_BYTES, else SAMPLE_WINDOWS windows spread evenly over it."""
    if size <= SAMPLE_BYTES:
        return pread_exact(fd, size, 0)
    window = SAMPLE_BYTES // SAMPLE_WINDOWS
    span = size - window
    return b"".join(pread_exact(fd, window, i * span // (SAMPLE_WINDOWS - 1)) for i in range(SAMPLE_WINDOWS))


# --------------------------------------------------------------------------- entry point

# Formats with magic bytes first, most specific first; each returns None when it is not its format.
_BY_MAGIC = (("gguf", efs_fmt_tensors.gguf), ("npy", efs_fmt_tensors.npy), ("hdf5", efs_fmt_hdf5.hdf5))
_BY_STRUCTURE = (("safetensors", efs_fmt_tensors.safetensors), ("onnx", efs_fmt_onnx.onnx))


def detect(fd: int, size: int, head: bytes, sample: bytes) -> Tuple[str, Analysis]:
    """(format, format-specific analysis) from the head, the sample and bounded reads."""
    if size == 0:
        return "empty", {}
    for fmt, probe in _BY_MAGIC:
        found = probe(fd, size, head)
        if found is not None:
            return fmt, found
    for probe in (efs_fmt_pickle.zip_archive, efs_fmt_pickle.pickle):
        named = probe(fd, size, head)
        if named is not None:
            return named
    for fmt, probe in _BY_STRUCTURE:
        found = probe(fd, size, head)
        if found is not None:
            return fmt, found
    text = efs_fmt_text.text(lambda n, offset: pread_exact(fd, n, offset), size,
                             sample if size <= SAMPLE_BYTES else head)
    if text is not None:
        return text
    return "binary", {}


def analyse(fd: int, size: int) -> Tuple[str, Analysis]:
    """Format and analysis of an open file of ``size`` bytes; entropy comes first in the dict."""
    sample = read_sample(fd, size)
    head = sample[:HEAD_BYTES] if size <= SAMPLE_BYTES else pread_exact(fd, HEAD_BYTES, 0)
    fmt, details = detect(fd, size, head, sample)
    analysis: Analysis = {"entropy_bits_per_byte": round(byte_entropy(sample), 4), "sample_bytes": len(sample)}
    analysis.update(details)
    return fmt, analysis
