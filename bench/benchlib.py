"""What the bench scripts share (each runs as `python bench/<name>.py`, so this directory is on the path)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

MIB = 1 << 20


def write_random_file(path: Path, size: int) -> str:
    """``size`` random bytes (a 64 MiB random block repeated) into ``path``; their SHA-256 (hex)."""
    block = os.urandom(64 * MIB)
    sha = hashlib.sha256()
    with open(path, "wb") as fh:
        left = size
        while left:
            piece = memoryview(block)[: min(left, len(block))]
            fh.write(piece)
            sha.update(piece)
            left -= len(piece)
    return sha.hexdigest()
