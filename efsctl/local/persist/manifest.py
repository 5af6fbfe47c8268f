"""Which snapshot is current, who wrote it, and whether this efsctl may load it. Standard library only.

``<data>/state/manifest.json`` names the current generation's checkpoint and journal, and carries
the versions that wrote them. Pickled moto models are only as stable as the classes behind them,
so a snapshot is loaded only by the same persistence format, the same moto release and the same
Python minor version; anything else is refused and kept as it is. The lifecycle checks this
before starting a process (it must not import moto), the daemon again before it restores.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from efsctl import __version__
from efsctl.local.version import moto_version

FORMAT = 1              # bump when what efsctl itself pickles (unit kinds, reducers) changes shape
STATE_DIR = "state"
MANIFEST = "manifest.json"


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def writer_tags() -> dict[str, Any]:
    """The versions this process writes into (and expects of) a snapshot."""
    return {"format": FORMAT, "efsctl": __version__, "moto": moto_version(), "python": python_version(),
            "python_full": sys.version.split()[0]}


@dataclass(frozen=True)
class Incompatible:
    """A snapshot this efsctl cannot load: what wrote it, what we are, and where it is kept."""

    written_by: dict[str, Any]
    running: dict[str, Any]
    state_dir: Path

    def what(self) -> str:
        wrote, now = self.written_by, self.running
        if wrote.get("format") != now["format"]:
            return (f"uses snapshot format {wrote.get('format')} (efsctl {wrote.get('efsctl')}), and this efsctl "
                    f"{now['efsctl']} reads format {now['format']}")
        return (f"was saved by moto {wrote.get('moto')} on Python {wrote.get('python')}, and this efsctl runs "
                f"moto {now['moto']} on Python {now['python']}")

    def remedy(self) -> str:
        wrote = self.written_by
        if wrote.get("format") != self.running["format"]:
            reinstall = f"reinstall efsctl {wrote.get('efsctl')}"
        elif wrote.get("python") != self.running["python"]:
            reinstall = f"run efsctl with Python {wrote.get('python')} and moto {wrote.get('moto')}"
        else:
            reinstall = f"reinstall the moto that wrote it (pip install 'moto[server]=={wrote.get('moto')}')"
        return reinstall


def compatibility(written_by: dict[str, Any], running: dict[str, Any]) -> str | None:
    """None if a snapshot written by ``written_by`` loads where ``running`` (:func:`writer_tags`)
    runs, else the field that differs."""
    for key in ("format", "moto", "python"):
        if written_by.get(key) != running[key]:
            return key
    return None


def state_dir(data_dir: Path) -> Path:
    return Path(data_dir) / STATE_DIR


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest in ``directory`` (a state dir), None if there is none yet."""
    try:
        return json.loads((Path(directory) / MANIFEST).read_text())
    except FileNotFoundError:
        return None


def check(data_dir: Path) -> Incompatible | None:
    """None when the stack's snapshot (if any) can be loaded by this efsctl."""
    directory = state_dir(data_dir)
    try:
        doc = read_manifest(directory)
    except ValueError:
        doc = {"written_by": {}}
    if doc is None:
        return None
    written_by = dict(doc.get("written_by") or {})
    running = writer_tags()
    if compatibility(written_by, running) is None:
        return None
    return Incompatible(written_by, running, directory)


def write_manifest(directory: Path, doc: dict[str, Any]) -> None:
    """Replace the manifest atomically and durably (new file, fsync, rename, fsync the directory)."""
    from efsctl.local.persist.journal import fsync_dir

    path = Path(directory) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
