"""``efsctl models``: the models on EFS, as the consumer sees them (``GET /models``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from efsctl.drive.api import ApiClient
from efsctl.drive.fmt import short_sha, when
from efsctl.units import human_bytes


@dataclass
class Listing:
    """One ``GET /models`` answer: the models, whether the consumer stopped listing early, and
    the temporary files that killed copies left on EFS (``{"files", "bytes"}``, when any)."""

    models: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False
    orphaned: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"models": self.models}
        if self.truncated:
            doc["truncated"] = True
        if self.orphaned:
            doc["orphaned"] = self.orphaned
        return doc

    def warnings(self) -> list[str]:
        """What the table alone does not say: corrupt models, refused uploads, orphaned bytes."""
        notes = []
        for m in sorted(self.models, key=lambda m: str(m.get("name", ""))):
            corrupt = m.get("corrupt")
            if isinstance(corrupt, dict):
                notes.append(f"{m.get('name')} is corrupt on EFS: its bytes hash to {corrupt.get('actual_sha256')} "
                             f"but the producer installed {corrupt.get('expected_sha256')}. Upload the original "
                             "file again to repair it.")
            rejected = m.get("rejected")
            if isinstance(rejected, dict):
                notes.append(f"The latest upload of {m.get('name')} was refused ({rejected.get('detail') or rejected.get('reason')}); "
                             "the version listed stays.")
        if self.truncated:
            notes.append(f"The consumer listed only the first {len(self.models)} models.")
        if self.orphaned:
            files = self.orphaned.get("files", 0)
            notes.append(f"{human_bytes(self.orphaned.get('bytes'))} in {files} temporary file{'s' if files != 1 else ''} "
                         "left on EFS by copies that were killed; the producer removes them on its next run.")
        return notes


def fetch_listing(api: ApiClient) -> Listing:
    body = api.list_models().body
    body = body if isinstance(body, dict) else {}
    orphaned = body.get("orphaned")
    return Listing(models=[m for m in (body.get("models") or []) if isinstance(m, dict)],
                   truncated=bool(body.get("truncated")),
                   orphaned=orphaned if isinstance(orphaned, dict) and orphaned.get("files") else None)


def list_models(api: ApiClient) -> list[dict[str, Any]]:
    return fetch_listing(api).models


def state(model: dict[str, Any]) -> str:
    return "corrupt" if isinstance(model.get("corrupt"), dict) else ""


def table_rows(models: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """name, size, sha256, modified; and a fifth column, state, only when some model has one."""
    marked = any(state(m) for m in models)
    rows = []
    for m in sorted(models, key=lambda m: str(m.get("name", ""))):
        row = (str(m.get("name", "")), human_bytes(m.get("size")), short_sha(m.get("sha256")), when(m.get("modified")))
        rows.append(row + ((state(m),) if marked else ()))
    return rows


def table_columns(models: list[dict[str, Any]]) -> list[str]:
    return ["name", "size", "sha256", "modified"] + (["state"] if any(state(m) for m in models) else [])
