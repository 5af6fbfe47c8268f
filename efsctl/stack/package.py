"""The handlers' deployment package: a byte-for-byte reproducible zip.

Same sources, same bytes, same ``CodeSha256`` (base64 of the zip's SHA-256, as Lambda reports
it), so an unchanged handler is never uploaded again. Every ``*.py`` directly in the
``lambda_code`` package directory except ``__init__.py`` goes to the zip root, sorted, with a
fixed timestamp (1980-01-01) and fixed permissions. ``lambda_code`` is located, never imported.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from efsctl.errors import ConfigError

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # regular file, rw-r--r--


@dataclass(frozen=True)
class Package:
    zip_bytes: bytes
    sha256: str  # base64, as Lambda's CodeSha256
    files: tuple[str, ...]


def code_directory() -> Path:
    spec = importlib.util.find_spec("lambda_code")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("The handler sources (the lambda_code package) are not installed.",
                          "Reinstall efsctl.")
    return Path(list(spec.submodule_search_locations)[0])


def code_sha256(zip_bytes: bytes) -> str:
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


def build_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the mode bits mean the same everywhere
            archive.writestr(info, files[name], compresslevel=9)
    return buffer.getvalue()


def build(directory: Path | None = None) -> Package:
    directory = directory or code_directory()
    files = {path.name: path.read_bytes() for path in sorted(directory.glob("*.py"))
             if path.is_file() and path.name != "__init__.py"}
    data = build_zip(files)
    return Package(zip_bytes=data, sha256=code_sha256(data), files=tuple(sorted(files)))
