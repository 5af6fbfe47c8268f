"""The `up` pipeline: observe -> desired -> plan -> execute, readable in a few lines.

``preview`` stops after the plan (``efsctl plan``, ``up --dry-run``: describe calls only);
``deploy`` executes it. The operator's choices arrive as :class:`UpSettings`; everything else
is derived, so the same settings against the same account always mean the same stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from efsctl.aws.session import AwsContext
from efsctl.errors import ConfigError, EfsctlError
from efsctl.stack import package as packaging
from efsctl.stack.execute import Execution, Reporter, execute
from efsctl.stack.model import (DEFAULT_ARCHITECTURE, DEFAULT_MEMORY, DEFAULT_VPC_CIDR, StackConfig, desired_stack,
                                topological_order, validate_memory, validate_vpc_cidr)
from efsctl.stack.observe import observe
from efsctl.stack.observed import Observed, ObservedState
from efsctl.stack.plan import CREATE, SKIP, Action, Plan, plan
from efsctl.waits import Clock

ARCHITECTURES = ("arm64", "x86_64")


@dataclass(frozen=True)
class UpSettings:
    """What the operator chose (``None``: the default, or what the stack already has)."""

    vpc_cidr: str | None = None
    memory: int | None = None
    architecture: str | None = None

    def validated(self) -> "UpSettings":
        if self.vpc_cidr is not None:
            validate_vpc_cidr(self.vpc_cidr)
        if self.memory is not None:
            validate_memory(self.memory)
        if self.architecture is not None and self.architecture not in ARCHITECTURES:
            raise ConfigError(f"--architecture must be one of {', '.join(ARCHITECTURES)}, not {self.architecture!r}.")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UpSettings":
        return cls(**{k: data[k] for k in ("vpc_cidr", "memory", "architecture") if data.get(k) is not None})


def stack_config(observed: ObservedState, settings: UpSettings, code: packaging.Package) -> StackConfig:
    vpc = observed.get("vpc")
    cidr = settings.vpc_cidr or (vpc.attrs["cidr"] if vpc else DEFAULT_VPC_CIDR)
    if vpc and settings.vpc_cidr and vpc.attrs["cidr"] != validate_vpc_cidr(settings.vpc_cidr):
        raise ConfigError(f"Stack {observed.stack!r} already has its VPC on {vpc.attrs['cidr']}; a VPC's CIDR "
                          f"cannot change to {settings.vpc_cidr}.",
                          "Drop --vpc-cidr, or `efsctl down` first to rebuild the stack on another block.")
    return StackConfig(stack=observed.stack, region=observed.region, account=observed.account,
                       code=code.zip_bytes, code_sha256=code.sha256, zones=observed.zones[:2],
                       vpc_cidr=validate_vpc_cidr(cidr), memory=settings.memory or DEFAULT_MEMORY,
                       architecture=settings.architecture or DEFAULT_ARCHITECTURE)


@dataclass
class Preview:
    plan: Plan
    observed: ObservedState
    config: StackConfig


@dataclass
class Deployment:
    preview: Preview
    execution: Execution
    resources: dict[str, Observed] = field(default_factory=dict)

    def outputs(self, api_url: str | None = None) -> dict[str, Any]:
        return stack_outputs(self.preview.config, self.resources, api_url)


def stack_outputs(config: StackConfig, resources: dict[str, Observed], api_url: str | None = None) -> dict[str, Any]:
    """What other commands need: names, ids and the API URL (``api_url`` overrides AWS's)."""
    n = config.names
    api = resources.get("api")
    ids = {k: resources[k].id for k in ("vpc", "efs", "access-point") if k in resources}
    return {"api_url": api_url or (n.api_url(api.id) if api else None), "api_id": api.id if api else None,
            "bucket": n.bucket, "producer": n.function("producer"), "consumer": n.function("consumer"),
            "log_groups": {w: n.log_group(w) for w in ("producer", "consumer")},
            "vpc_id": ids.get("vpc"), "file_system_id": ids.get("efs"), "access_point_id": ids.get("access-point"),
            "region": config.region, "account": config.account}


def preview(aws: AwsContext, stack: str, settings: UpSettings, *, code: packaging.Package | None = None,
            account: str | None = None) -> Preview:
    """Observe and plan; describe calls only. ``account``: the target's account when it is known
    for certain (a local cloud's never changes), which saves asking STS."""
    observed = observe(aws, stack, account=account)
    config = stack_config(observed, settings.validated(), code or packaging.build())
    return Preview(plan(desired_stack(config), observed), observed, config)


def cached_plan(stack: str, region: str, account: str, settings: UpSettings,
                cached: dict[str, dict[str, Any]]) -> Plan:
    """What `up` would do judged from the state file's cache alone, without a call: a resource
    the last `up` recorded counts as in sync (unchecked), anything else is to be created."""
    config = StackConfig(stack=stack, region=region, account=account, vpc_cidr=settings.vpc_cidr or DEFAULT_VPC_CIDR,
                         memory=settings.memory or DEFAULT_MEMORY,
                         architecture=settings.architecture or DEFAULT_ARCHITECTURE)
    actions = []
    for resource in topological_order(desired_stack(config)):
        entry = cached.get(resource.key)
        if entry:
            found = Observed(resource.key, entry.get("kind", resource.kind), entry["id"], arn=entry.get("arn"),
                             name=entry.get("name"), state=entry.get("state", ""))
            actions.append(Action(resource.key, resource.kind, SKIP, ("recorded by the last `up`, not checked",),
                                  (), resource.dependencies(), resource, found))
        else:
            actions.append(Action(resource.key, resource.kind, CREATE, ("missing",), (), resource.dependencies(),
                                  resource, None))
    return Plan(tuple(actions))


def apply(aws: AwsContext, seen: Preview, *, clock: Clock | None = None, reporter: Reporter | None = None
          ) -> Deployment:
    """Execute a preview's plan. A failed step does not raise here: the result carries it
    (``execution.error``) with everything done so far; call ``execution.raise_for_error()``."""
    if seen.plan.blockers:
        raise EfsctlError(seen.plan.blockers[0], "Nothing was changed.")
    execution = execute(seen.plan, aws, seen.config.names, clock=clock, reporter=reporter)
    resources = {**seen.observed.resources, **execution.resources}
    return Deployment(seen, execution, resources)


def deploy(aws: AwsContext, stack: str, settings: UpSettings, *, code: packaging.Package | None = None,
           account: str | None = None, clock: Clock | None = None, reporter: Reporter | None = None) -> Deployment:
    """Converge the stack: :func:`preview`, then :func:`apply`."""
    return apply(aws, preview(aws, stack, settings, code=code, account=account), clock=clock, reporter=reporter)
