"""Write a package directory: the handlers' zip, the template or configuration, a README.

A directory is written only if it is new, empty, or an earlier ``efsctl package`` output (it
holds the manifest :data:`MANIFEST`, listing what that run wrote). Files the user put there
(``terraform.tfstate``, a packaged template...) are never touched; a file an earlier run wrote
and this one does not is removed only if it is unchanged since. Each file is replaced
atomically, the manifest last.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from efsctl import __version__
from efsctl.errors import ConfigError
from efsctl.stack import package as packaging
from efsctl.stack.iac import FORMATS, cloudformation, readme, terraform
from efsctl.stack.iac.mapping import Defaults
from efsctl.state import StateStore

MANIFEST = ".efsctl-package.json"
ZIP_NAME = "handlers.zip"
README_NAME = "README.md"


@dataclass
class Packaged:
    directory: Path
    format: str
    defaults: Defaults
    code_sha256: str
    files: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)   # an earlier run's files, unchanged, no longer written
    kept: list[str] = field(default_factory=list)      # an earlier run's files the user changed: left alone

    def to_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "format": self.format, "stack": self.defaults.stack,
                "parameters": {"stack_name": self.defaults.stack, "vpc_cidr": self.defaults.vpc_cidr,
                               "memory": self.defaults.memory, "architecture": self.defaults.architecture},
                "code_sha256": self.code_sha256, "files": self.files, "removed": self.removed, "kept": self.kept,
                "deploy": readme.commands(self.format, self.defaults.stack)}


def package(directory: Path, fmt: str, stack: str, store: StateStore,
            code: packaging.Package | None = None) -> Packaged:
    """Write the stack ``stack`` into ``directory``, its parameters defaulting to the settings
    `up` remembered for it (the state file's ``settings``; the model's defaults without one)."""
    return write_package(directory, fmt, defaults_for(stack, store), code)


def defaults_for(stack: str, store: StateStore) -> Defaults:
    from efsctl.stack.deploy import UpSettings  # the same validation as `up`'s options

    state = store.load(stack)
    settings = UpSettings.from_dict(state.settings if state else {}).validated()
    base = Defaults(stack)
    return Defaults(stack, vpc_cidr=settings.vpc_cidr or base.vpc_cidr, memory=settings.memory or base.memory,
                    architecture=settings.architecture or base.architecture)


def render(fmt: str, defaults: Defaults, code: packaging.Package) -> dict[str, bytes]:
    """Every file of the package, by name."""
    if fmt == "cloudformation":
        texts = {cloudformation.TEMPLATE_FILE: cloudformation.render(
            defaults, code_uri=ZIP_NAME, code=code.zip_bytes, code_sha256=code.sha256)}
    elif fmt == "terraform":
        texts = terraform.render(defaults, zip_path=ZIP_NAME, code=code.zip_bytes, code_sha256=code.sha256)
    else:
        raise ValueError(fmt)
    texts[README_NAME] = readme.text(fmt, defaults, code.sha256, sorted(texts))
    return {ZIP_NAME: code.zip_bytes, **{name: text.encode() for name, text in texts.items()}}


def write_package(directory: Path, fmt: str, defaults: Defaults, code: packaging.Package | None = None) -> Packaged:
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    code = code or packaging.build()
    files = render(fmt, defaults, code)
    earlier = _claim(directory, files)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        _write(directory / name, data)
    result = Packaged(directory, fmt, defaults, code.sha256, files=sorted(files))
    for name, digest in sorted(earlier.items()):
        if name in files:
            continue
        path = directory / name
        if path.is_file() and _sha256(path.read_bytes()) == digest:
            path.unlink()
            result.removed.append(name)
        elif path.exists():
            result.kept.append(name)
    manifest = {"generator": "efsctl package", "version": __version__, "format": fmt, "stack": defaults.stack,
                "files": {name: _sha256(data) for name, data in sorted(files.items())}}
    _write(directory / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return result


def _claim(directory: Path, files: dict[str, bytes]) -> dict[str, str]:
    """The earlier run's files (name -> sha256), or refuse a directory that is not ours to write."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is a file, not a directory.", "Name a new or empty directory.")
    if not directory.exists() or not any(directory.iterdir()):
        return {}
    earlier = _manifest(directory)
    if earlier is None:
        raise ConfigError(f"{directory} is not empty and is not an earlier `efsctl package` output, so nothing "
                          "was written there.", "Name a new or empty directory.")
    theirs = sorted(name for name in files if name not in earlier and (directory / name).exists())
    if theirs:
        raise ConfigError(f"{directory} has {', '.join(theirs)}, which an earlier `efsctl package` did not write, "
                          "so nothing was written there.", "Move it away, or name a new or empty directory.")
    return earlier


def _manifest(directory: Path) -> dict[str, str] | None:
    try:
        data = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("generator") != "efsctl package" or \
            not isinstance(data.get("files"), dict):
        return None
    return {str(k): str(v) for k, v in data["files"].items() if "/" not in str(k) and not str(k).startswith(".")}


def _write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
