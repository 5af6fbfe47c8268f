"""Plans: what the executor runs. `up`'s is a pure function of (desired, observed); `down`'s
(:func:`efsctl.stack.teardown.plan_teardown`) is the same :class:`Plan` with ``delete`` actions.

No remote calls here. Actions come in dependency order (each after everything it needs).
A resource whose dependency will be created is compared against an :class:`Unknown` id, so it
is updated to point at the new one. ``blockers`` are reasons the run must not start at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from efsctl.stack.drift import Drift, diff
from efsctl.stack.model import Resource, Subnet, Unknown, resolve, topological_order
from efsctl.stack.observed import Observed, ObservedState

CREATE, UPDATE, SKIP, DELETE = "create", "update", "skip", "delete"
READY_STATES = frozenset({"", "available", "active", "inactive"})  # lower-case lifecycle states


@dataclass(frozen=True)
class Action:
    key: str
    kind: str
    verb: str
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    resource: Resource | None = field(default=None, repr=False, compare=False)
    observed: Observed | None = field(default=None, repr=False, compare=False)
    # What a delete removes: the resource and any extra copies of it (or, for the steps AWS
    # adds to a teardown, what they act on: the function to detach, the group whose rule goes).
    targets: tuple[Observed, ...] = field(default=(), repr=False, compare=False)

    @property
    def id(self) -> str | None:
        if self.observed is not None:
            return self.observed.id
        return ", ".join(t.id for t in self.targets) or None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"key": self.key, "kind": self.kind, "action": self.verb, "id": self.id,
                               "reasons": list(self.reasons)}
        if self.warnings:
            doc["warnings"] = list(self.warnings)
        return doc


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    blockers: tuple[str, ...] = ()
    kept: tuple[Observed, ...] = ()  # what a teardown leaves on purpose (--keep-bucket, not ours)
    observed: ObservedState | None = field(default=None, repr=False, compare=False)  # what it was made from

    def __iter__(self):
        return iter(self.actions)

    def __contains__(self, key: str) -> bool:
        return any(a.key == key for a in self.actions)

    def get(self, key: str) -> Action:
        for action in self.actions:
            if action.key == key:
                return action
        raise KeyError(key)

    @property
    def empty(self) -> bool:
        return not self.actions

    @property
    def changes(self) -> list[Action]:
        return [a for a in self.actions if a.verb != SKIP]

    @property
    def warnings(self) -> list[str]:
        return [f"{a.key}: {w}" for a in self.actions for w in a.warnings]

    def counts(self) -> dict[str, int]:
        counts = {CREATE: 0, UPDATE: 0, SKIP: 0}
        for action in self.actions:
            counts[action.verb] = counts.get(action.verb, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {"actions": [a.to_dict() for a in self.actions], "summary": self.counts(),
                "blockers": list(self.blockers), "warnings": self.warnings}


def _not_ready(observed: Observed) -> str | None:
    state = observed.state.lower()
    # "failed" is drift (the update retries it), not something to wait for.
    return None if state in READY_STATES or state == "failed" else observed.state


def plan(desired: list[Resource], observed: ObservedState) -> Plan:
    created: set[str] = set()
    blockers: list[str] = []
    actions: list[Action] = []

    def lookup(key: str, attr: str) -> Any:
        return Unknown(key) if key in created else observed.lookup(key, attr)

    for resource in topological_order(desired):
        found = observed.get(resource.key)
        depends_on = resource.dependencies()
        if found is None or found.state.lower() in ("deleted", "deleting"):
            if found is not None:
                blockers.append(f"{resource.key} {found.id} is still being deleted; run `efsctl up` again once "
                                "it is gone.")
            if isinstance(resource, Subnet) and resource.zone is None:
                blockers.append(f"Region {observed.region} has fewer than two usable Availability Zones "
                                f"(found {len(observed.zones)}); the stack needs two for its subnets. "
                                "Pick another region with --region.")
            created.add(resource.key)
            actions.append(Action(resource.key, resource.kind, CREATE, ("missing",), (), depends_on, resource, None))
            continue
        drift: Drift = diff(resolve(resource, lookup), found)
        blockers.extend(drift.blockers)
        reasons = tuple(c.reason for c in drift.changes)
        pending = _not_ready(found)
        if pending:
            reasons += (f"{pending}: up waits until it is ready",)
        verb = UPDATE if drift.changes else SKIP
        actions.append(Action(resource.key, resource.kind, verb, reasons or ("in sync",), tuple(drift.warnings),
                              depends_on, resource, found))
    return Plan(tuple(actions), tuple(dict.fromkeys(blockers)), observed=observed)
