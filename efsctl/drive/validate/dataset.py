"""How much a validation does (``--quick``, the default, ``--size``) and the models it uploads.

The model set spans sizes evenly on a log scale, from a few KiB to the largest size, half of
them safetensors files (a header and one U8 tensor, so the consumer's analysis runs on them),
half raw bytes; every file is random, so no two share a checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

KiB, MiB = 1024, 1024 * 1024
SMALLEST = 4 * KiB


@dataclass(frozen=True)
class Profile:
    """The sizes and counts of one validation."""

    quick: bool
    models: int            # how many models claim 1 uploads
    largest: int           # the largest of them (bytes)
    requests_per_level: int
    levels: tuple[int, ...] = (1, 2, 4, 8, 16)
    background_size: int = 64 * KiB   # each upload made while claim 3's load runs
    atomic_size: int = 256 * KiB      # each version claim 4 overwrites with
    atomic_rounds: int = 2
    atomic_readers: int = 2
    settle_s: float = 0.3             # claim 4 keeps reading this long after the last version lands
    parallel_uploads: int = 4

    def sizes(self) -> list[int]:
        """``models`` sizes from SMALLEST to ``largest``, evenly spaced on a log scale."""
        low = min(SMALLEST, self.largest)
        if self.models == 1:
            return [self.largest]
        ratio = (self.largest / low) ** (1 / (self.models - 1))
        sizes = [low * ratio ** i for i in range(self.models)]
        return [int(round(s / KiB)) * KiB if s >= KiB else int(round(s)) for s in sizes[:-1]] + [self.largest]

    def to_dict(self) -> dict[str, Any]:
        return {"quick": self.quick, "models": self.models, "sizes": self.sizes(), "largest": self.largest,
                "requests_per_level": self.requests_per_level, "levels": list(self.levels),
                "background_size": self.background_size, "atomic_size": self.atomic_size,
                "atomic_rounds": self.atomic_rounds, "atomic_readers": self.atomic_readers}


QUICK = Profile(quick=True, models=4, largest=1 * MiB, requests_per_level=12)
DEFAULT = Profile(quick=False, models=8, largest=32 * MiB, requests_per_level=120, background_size=1 * MiB,
                  atomic_size=4 * MiB, atomic_rounds=6, atomic_readers=3, settle_s=1.0)


def profile(quick: bool, largest: int | None = None) -> Profile:
    chosen = QUICK if quick else DEFAULT
    return replace(chosen, largest=largest) if largest else chosen


@dataclass
class ModelFile:
    name: str
    path: Path
    size: int
    sha256: str
    format: str
    # filled in by the upload:
    uploaded_s: float | None = None
    latency_s: float | None = None
    on_efs: bool = False
    error: str | None = None
    reason: str | None = None


@dataclass
class Dataset:
    models: list[ModelFile] = field(default_factory=list)

    @property
    def arrived(self) -> list[ModelFile]:
        return [m for m in self.models if m.on_efs]

    @property
    def total_bytes(self) -> int:
        return sum(m.size for m in self.models)


RANDOM_BLOCK = 64 * MiB   # a larger file repeats one random block of this size (os.urandom is slow)


def random_file(path: Path, size: int, fmt: str = "binary") -> str:
    """Write ``size`` random bytes to ``path`` (as a safetensors file when ``fmt`` says so and the
    size allows a header); returns the SHA-256. Past :data:`RANDOM_BLOCK` the bytes repeat a
    random block: still unlike any other file's, and gigabytes are written in seconds."""
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        if fmt == "safetensors":
            head = _safetensors_header(size)
            fh.write(head)
            digest.update(head)
            size -= len(head)
        block = memoryview(os.urandom(min(max(size, 0), RANDOM_BLOCK)))
        while size > 0:
            piece = block[:min(size, len(block))]
            fh.write(piece)
            digest.update(piece)
            size -= len(piece)
    return digest.hexdigest()


def _safetensors_header(total: int) -> bytes:
    """The header of a safetensors file of ``total`` bytes holding one U8 tensor."""
    length = total
    for _ in range(4):  # the header's length depends on the tensor's, which depends on the header's
        raw = json.dumps({"__metadata__": {"source": "efsctl validate"},
                          "weights": {"dtype": "U8", "shape": [length], "data_offsets": [0, length]}},
                         separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        if 8 + len(raw) + length == total:
            break
        length = max(0, total - 8 - len(raw))
    return struct.pack("<Q", len(raw)) + raw


def build(workdir: Path, sizes: list[int], name: Any) -> Dataset:
    """The model files in ``workdir``; ``name(relative)`` gives each its model name."""
    models = []
    for index, size in enumerate(sizes):
        fmt = "safetensors" if index % 2 == 0 and size >= 512 else "binary"
        relative = f"models/{index:02d}-{_size_tag(size)}.{'safetensors' if fmt == 'safetensors' else 'bin'}"
        path = workdir / relative.replace("/", "_")
        models.append(ModelFile(name(relative), path, size, random_file(path, size, fmt), fmt))
    return Dataset(models)


def _size_tag(size: int) -> str:
    if size >= MiB and size % MiB == 0:
        return f"{size // MiB}MiB"
    if size >= KiB and size % KiB == 0:
        return f"{size // KiB}KiB"
    return f"{size}B"
