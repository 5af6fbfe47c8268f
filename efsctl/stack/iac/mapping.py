"""What both formats share: the model with its deploy-time values left open, and the rules that
map it.

The model (``desired_stack``) needs an account, a region, zones and the operator's settings to
build names and properties. Here it is built with *markers* in their place (``⟦account⟧``,
``⟦stack⟧``...), so every deterministic name keeps the model's exact shape
(``efsctl-⟦stack⟧-⟦account⟧-⟦region⟧``) and a format only has to say what each marker is in its
own language: ``${AWS::AccountId}`` in CloudFormation, ``data.aws_caller_identity`` in
Terraform. :func:`convert` walks a model value and hands every string that carries a marker, a
:class:`Ref` or a :class:`Fmt` to the format as a tuple of parts (literal text, :class:`Pseudo`,
:class:`Ref`).
"""

from __future__ import annotations

import dataclasses
import re
import string
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from efsctl.stack import model
from efsctl.stack.model import Fmt, Ref, Resource, StackConfig, desired_stack, subnet_cidrs


@dataclass(frozen=True)
class Pseudo:
    """A value known only where the stack is deployed (the account) or chosen there (a parameter)."""

    name: str

    @property
    def marker(self) -> str:
        return f"\u27e6{self.name}\u27e7"


STACK = Pseudo("stack")
ACCOUNT = Pseudo("account")
REGION = Pseudo("region")
PARTITION = Pseudo("partition")
MEMORY = Pseudo("memory")
ARCHITECTURE = Pseudo("architecture")
VPC_CIDR = Pseudo("vpc-cidr")
ZONES = (Pseudo("zone-0"), Pseudo("zone-1"))
SUBNET_CIDRS = (Pseudo("subnet-cidr-0"), Pseudo("subnet-cidr-1"))
PSEUDOS = {p.name: p for p in (STACK, ACCOUNT, REGION, PARTITION, MEMORY, ARCHITECTURE, VPC_CIDR, *ZONES,
                               *SUBNET_CIDRS)}
_MARKER = re.compile("\u27e6([a-z0-9-]+)\u27e7")
# The model derives the partition from the region; from a marker region it derives "aws".
# Every ARN the model builds starts with it, so that prefix is where the partition goes.
_ARN_PREFIX = "arn:aws:"


@dataclass(frozen=True)
class Defaults:
    """The parameters' defaults: the settings `up` remembered for the stack, else the model's."""

    stack: str
    vpc_cidr: str = model.DEFAULT_VPC_CIDR
    memory: int = model.DEFAULT_MEMORY
    architecture: str = model.DEFAULT_ARCHITECTURE


def parameterised_stack(defaults: Defaults, code: bytes = b"", code_sha256: str = "") -> list[Resource]:
    """``desired_stack`` with markers wherever a deploy-time value or a parameter goes."""
    config = StackConfig(stack=STACK.marker, region=REGION.marker, account=ACCOUNT.marker, code=code,
                         code_sha256=code_sha256, zones=tuple(z.marker for z in ZONES), vpc_cidr=defaults.vpc_cidr,
                         memory=MEMORY.marker, architecture=ARCHITECTURE.marker)  # type: ignore[arg-type]
    # The subnets' blocks are computed from the VPC's, so they cannot be markers going in:
    # swap the computed values for markers on the way out (each format computes them again).
    cidrs = {defaults.vpc_cidr: VPC_CIDR.marker,
             **{cidr: pseudo.marker for cidr, pseudo in zip(subnet_cidrs(defaults.vpc_cidr), SUBNET_CIDRS, strict=True)}}
    return [dataclasses.replace(r, cidr=cidrs[r.cidr]) if isinstance(r, (model.Vpc, model.Subnet)) else r
            for r in desired_stack(config)]


def split(text: str) -> tuple[Any, ...]:
    """A string's literal text and markers, in order (``"efsctl-⟦stack⟧"`` -> ``("efsctl-", STACK)``)."""
    if text.startswith(_ARN_PREFIX):
        text = f"arn:{PARTITION.marker}:{text[len(_ARN_PREFIX):]}"
    parts: list[Any] = []
    position = 0
    for match in _MARKER.finditer(text):
        if match.start() > position:
            parts.append(text[position:match.start()])
        parts.append(PSEUDOS[match.group(1)])
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    return tuple(parts)


def fmt_parts(value: Fmt) -> tuple[Any, ...]:
    refs = dict(value.refs)
    parts: list[Any] = []
    for literal, name, _, _ in string.Formatter().parse(value.template):
        if literal:
            parts.extend(split(literal))
        if name is not None:
            parts.append(refs[name])
    return tuple(parts)


def convert(value: Any, leaf: Callable[[tuple[Any, ...]], Any]) -> Any:
    """``value`` with every ref, fmt and marked string replaced by ``leaf(parts)``."""
    if isinstance(value, Ref):
        return leaf((value,))
    if isinstance(value, Fmt):
        return leaf(fmt_parts(value))
    if isinstance(value, str):
        parts = split(value)
        return value if all(isinstance(p, str) for p in parts) else leaf(parts)
    if isinstance(value, Mapping):
        return {convert(k, leaf): convert(v, leaf) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [convert(v, leaf) for v in value]
    return value


# --- orders ----------------------------------------------------------------------------------

# Why each ordering-only edge of the model (``Resource.after``) exists, by (kind, kind it waits
# for). The formats say it beside their DependsOn / depends_on; an edge the model gains without
# a reason here fails to render.
REASONS: dict[tuple[str, str], str] = {
    ("function", "log-group"): "its log group first, so Lambda never creates one without retention",
    ("function", "mount-target"): "Lambda refuses a file system until a mount target is available in every "
                                  "zone of the function's subnets",
    ("bucket-notification", "permission"): "S3 validates the destination: the invoke permission must exist first",
    ("bucket-notification", "bucket"): "the notification is the bucket's configuration",
    ("permission", "bucket"): "the permission names this bucket as its source",
}


def ordering(resource: Resource, index: Mapping[str, Resource]) -> list[tuple[str, str]]:
    """``(key, reason)`` for each ``after`` edge of ``resource``."""
    return [(key, REASONS[(resource.kind, index[key].kind)]) for key in resource.after]


# --- what a mapping returns ------------------------------------------------------------------

@dataclass
class Native:
    """One resource of the format (a CloudFormation resource, a Terraform ``resource`` block)."""

    key: str                    # the model resource it comes from
    type: str
    name: str                   # CloudFormation logical id / Terraform resource name
    body: dict[str, Any]
    depends_on: list[tuple[str, str]] = field(default_factory=list)  # (logical id / address, reason)
    comment: str = ""
    merge_into: str | None = None  # CloudFormation: these properties belong to another resource


@dataclass(frozen=True)
class KindMapping:
    """How one model kind becomes the format's resources, and what its refs become."""

    render: Callable[..., list[Native]]
    refs: Mapping[str, str]     # the model's ref attributes (id, arn, name...) in the format's words
    type: str = ""              # Terraform: the type its refs point at


@dataclass(frozen=True)
class Output:
    name: str
    description: str
    ref: Ref


OUTPUTS = (
    Output("api_url", "Invoke URL of the HTTP API (POST /predict, GET /models), SigV4-signed", Ref("api", "endpoint")),
    Output("bucket", "S3 bucket: upload models under models/, results land under outputs/", Ref("bucket", "name")),
    Output("producer_function", "Lambda function copying models from S3 to EFS", Ref("fn-producer", "name")),
    Output("consumer_function", "Lambda function behind the API", Ref("fn-consumer", "name")),
)


def model_kinds() -> set[str]:
    """Every resource kind the model defines (a new one needs a mapping in each format)."""
    kinds: set[str] = set()
    pending: list[type] = [Resource]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.kind:
            kinds.add(cls.kind)
    return kinds


def check_table(table: Mapping[str, KindMapping], resources: Sequence[Resource], fmt: str) -> None:
    missing = sorted({r.kind for r in resources} - set(table))
    if missing:
        raise LookupError(f"no {fmt} mapping for the model's {', '.join(missing)}")


def words(key: str) -> list[str]:
    return key.split("-")
