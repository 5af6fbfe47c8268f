"""Removal of what ``efsctl validate`` wrote on EFS: its models and the results of its predictions.

Nothing else on EFS can be removed this way, and nothing reaches it through the HTTP API: it is
an event the producer accepts only from a direct ``lambda:Invoke`` (a privilege of the stack's
operator), ``{"efsctl": "remove-validation-data", "run": RUN, "names": [...], "outputs": [...]}``.

- ``run`` names one validation run: its models are ``models/efsctl-validate/<run>/...``. Every
  file under that folder goes, with its records (install, refusal, corruption) and its lock
  file, then the emptied folders. ``names`` adds the records of names that never became a file
  (a refused upload leaves only a refusal); each must lie under the run's folder.
- ``outputs`` are file names in ``outputs/``; one is removed only if it is a prediction result
  whose ``model`` lies under the run's folder, so a user's results are never touched. With
  ``"scan_outputs": true`` every result in ``outputs/`` is looked at instead (for a run whose
  list of results is not known any more: ``efsctl validate --remove RUN``).
  The answer names the results removed (``removed_outputs``), whose S3 copies efsctl then deletes.

A model is removed under its name's lock, so an install of that name in flight either finishes
first (and its file goes) or finds the name removed. efsctl deletes the run's S3 objects before
it asks for this, so a late event for one of them finds nothing to copy.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, List, Optional

import efs_common as common
import efs_records as rec
import efs_store as store

EVENT = "remove-validation-data"
RESERVED = "efsctl-validate/"     # the folder of validation runs (efsctl's drive/names.py says the same)
RUN_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
OUTPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}\.json$")
MAX_OUTPUT_BYTES = 1 << 20        # a result is a few KiB; anything larger is not one of ours


class NotScratch(common.BadRequest):
    """The request names something that is not validation data."""


def is_removal(event: object) -> bool:
    return isinstance(event, dict) and event.get("efsctl") == EVENT


def run_folder(run: object) -> str:
    if not isinstance(run, str) or not RUN_ID.match(run):
        raise NotScratch(f"run must match {RUN_ID.pattern}, not {str(run)[:80]!r}")
    return f"{RESERVED}{run}/"


def remove(layout: store.Layout, event: Dict[str, Any]) -> Dict[str, Any]:
    """Remove the run's models, records and results; returns what was removed and what was kept."""
    folder = run_folder(event.get("run"))
    names = _strings(event.get("names"), "names")
    outputs = _strings(event.get("outputs"), "outputs")
    if event.get("scan_outputs") is True:
        outputs = sorted(set(outputs) | set(_result_files(layout)))
    for name in names:
        common.validate_model_name(name)
        if not name.startswith(folder):
            raise NotScratch(f"{name[:120]!r} is not under {folder}")
    removed = {"models": 0, "bytes": 0, "records": 0, "outputs": 0, "folders": 0}
    kept: List[Dict[str, str]] = []
    removed_outputs: List[str] = []
    found = [name for name, _ in store.iter_models(layout, 1 << 20) if name.startswith(folder)]
    for name in sorted(set(found) | set(names)):
        _remove_name(layout, name, removed)
    removed["folders"] = _remove_empty_folders(os.path.join(layout.models, folder.rstrip("/")), layout.models)
    for output in outputs:
        why = _remove_output(layout, output, folder)
        if why is None:
            removed["outputs"] += 1
            removed_outputs.append(output)
        elif why != "gone" and not (event.get("scan_outputs") is True and why.startswith("not the result")):
            kept.append({"output": output, "why": why})
    return {"run": event.get("run"), "removed": removed, "removed_outputs": removed_outputs, "kept": kept}


def _result_files(layout: store.Layout) -> List[str]:
    try:
        return [e.name for e in os.scandir(layout.outputs) if e.name.endswith(".json") and e.is_file()]
    except FileNotFoundError:
        return []


def _strings(value: object, what: str) -> List[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise NotScratch(f"{what} must be a list of strings")
    return value


def _remove_name(layout: store.Layout, name: str, removed: Dict[str, int]) -> None:
    with store.name_lock(layout, name):
        path = layout.model_path(name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None and not os.path.isdir(path):
            store.unlink_quietly(path)
            removed["models"] += 1
            removed["bytes"] += st.st_size
        for kind in rec.KINDS:
            record = layout.meta_file(name, kind)
            if os.path.lexists(record):
                store.unlink_quietly(record)
                removed["records"] += 1
        # Removed while held: an installer of this name waiting behind us locks a file no one
        # else will open, which only matters for a name nothing uploads any more.
        store.unlink_quietly(layout.lock_path(name))


def _remove_empty_folders(top: str, models: str) -> int:
    """Remove ``top`` and the folders below it that are empty (deepest first)."""
    if not os.path.isdir(top) or os.path.islink(top):
        return 0
    count = 0
    for current, _dirs, _files in os.walk(top, topdown=False):  # deepest first
        try:
            os.rmdir(current)
            count += 1
        except OSError:
            pass  # not empty: something new arrived, or a name outside our records
    parent = os.path.dirname(top)
    while parent != models and os.path.dirname(parent) != parent:   # efsctl-validate/ itself, once empty
        try:
            os.rmdir(parent)
        except OSError:
            break
        parent = os.path.dirname(parent)
    return count


def _remove_output(layout: store.Layout, output: str, folder: str) -> Optional[str]:
    """None when removed; else why not ("gone" when there was nothing to remove)."""
    if not OUTPUT_NAME.match(output):
        return "not a result's file name"
    path = os.path.join(layout.outputs, output)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    except FileNotFoundError:
        return "gone"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    try:
        data = os.read(fd, MAX_OUTPUT_BYTES + 1)
    finally:
        os.close(fd)
    try:
        model = json.loads(data).get("model") if len(data) <= MAX_OUTPUT_BYTES else None
    except (ValueError, AttributeError):
        model = None
    if not isinstance(model, str) or not model.startswith(folder):
        return "not the result of a prediction on this run's models"
    store.unlink_quietly(path)
    return None
