"""The desired stack as data: one plain dataclass per resource, built by a pure function.

No remote calls and no I/O here. A resource names the others it needs with :class:`Ref`
(``Ref("vpc")`` is the VPC's id, ``Ref("efs", "arn")`` the file system's ARN) or :class:`Fmt`
(a string built from refs); :meth:`Resource.dependencies` is derived from those refs plus
``after`` (ordering-only edges such as "log group before function"). :func:`resolve` swaps refs
for the values of existing resources, leaving :class:`Unknown` where a dependency is yet to
be created. The logical keys are DESIGN section 2's.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Mapping

from efsctl.errors import ConfigError

TAG_STACK = "efsctl:stack"
TAG_RESOURCE = "efsctl:resource"
TAG_REGION = "efsctl:region"  # on global (IAM) resources: which region's stack owns them

DEFAULT_VPC_CIDR = "10.42.0.0/16"
DEFAULT_MEMORY = 2048
DEFAULT_ARCHITECTURE = "arm64"
RUNTIME = "python3.12"
PRODUCER_TIMEOUT = 900        # streaming a multi-GiB model from S3 to EFS
CONSUMER_TIMEOUT = 29         # behind API Gateway's 30 s integration limit
INTEGRATION_TIMEOUT_MS = 29_000
LOG_RETENTION_DAYS = 14
MOUNT_PATH = "/mnt/efs"
MODELS_PREFIX = "models/"
OUTPUTS_PREFIX = "outputs/"
ROUTE_KEYS = ("POST /predict", "GET /models", "GET /models/{name+}")
INLINE_POLICY = "efsctl"
S3_STATEMENT_ID = "efsctl-s3-invoke"
API_STATEMENT_ID = "efsctl-apigateway-invoke"
NOTIFICATION_ID = "efsctl-models"
LAMBDA_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
# What Lambda needs to manage a VPC function's network interfaces: the actions of AWS's
# AWSLambdaVPCAccessExecutionRole (v3), which the Lambda guide lists as required.
ENI_ACTIONS = ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
               "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                       "RestrictPublicBuckets": True}
FUNCTIONS = ("producer", "consumer")

# Every logical key, in the order DESIGN section 2 lists them (plan and status print this way).
KEYS = ("vpc", "subnet-a", "subnet-b", "route-table", "s3-endpoint", "sg-lambda", "sg-efs", "efs", "mt-a", "mt-b",
        "access-point", "bucket", "role-producer", "role-consumer", "log-producer", "log-consumer", "fn-producer",
        "fn-consumer", "s3-permission", "s3-notification", "api", "api-integration", "api-routes", "api-stage",
        "api-permission")


# --- references ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Ref:
    """An attribute (``id``, ``arn`` or ``name``) of another resource of the stack."""

    key: str
    attr: str = "id"


class Fmt:
    """A string made from refs: ``Fmt("integrations/{i}", i=Ref("api-integration"))``."""

    def __init__(self, template: str, **refs: Ref) -> None:
        self.template = template
        self.refs = tuple(sorted(refs.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fmt) and (self.template, self.refs) == (other.template, other.refs)

    def __hash__(self) -> int:
        return hash((self.template, self.refs))

    def __repr__(self) -> str:
        return f"Fmt({self.template!r}, {dict(self.refs)!r})"


class Unknown:
    """A value that exists only once a dependency is created; equal to nothing."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"<{self.key} once created>"


Lookup = Callable[[str, str], Any]
"""``lookup(key, attr)``: the value, or an :class:`Unknown`."""


def _walk_refs(value: Any) -> Iterator[Ref]:
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, Fmt):
        for _, ref in value.refs:
            yield ref
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _walk_refs(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk_refs(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _walk_refs(getattr(value, f.name))


def _resolve_value(value: Any, lookup: Lookup) -> Any:
    if isinstance(value, Ref):
        return lookup(value.key, value.attr)
    if isinstance(value, Fmt):
        values = {name: lookup(ref.key, ref.attr) for name, ref in value.refs}
        unknown = next((v for v in values.values() if isinstance(v, Unknown)), None)
        return unknown if unknown is not None else value.template.format(**values)
    if isinstance(value, Mapping):
        return {k: _resolve_value(v, lookup) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_resolve_value(v, lookup) for v in value)
    if isinstance(value, list):
        return [_resolve_value(v, lookup) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _resolve_value(getattr(value, f.name), lookup)
                                             for f in dataclasses.fields(value) if f.init})
    return value


def resolve(resource: "Resource", lookup: Lookup) -> "Resource":
    """A copy of ``resource`` with every :class:`Ref`/:class:`Fmt` replaced by its value."""
    changes = {f.name: _resolve_value(getattr(resource, f.name), lookup)
               for f in dataclasses.fields(resource) if f.name not in ("key", "after", "code")}
    return dataclasses.replace(resource, **changes)


def has_unknown(value: Any) -> bool:
    if isinstance(value, Unknown):
        return True
    if isinstance(value, Mapping):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_unknown(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(has_unknown(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


# --- resources -----------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Resource:
    kind: ClassVar[str] = ""
    taggable: ClassVar[bool] = True

    key: str
    tags: Mapping[str, str] = field(default_factory=dict)
    after: tuple[str, ...] = ()

    def dependencies(self) -> tuple[str, ...]:
        """Keys this resource needs, in a stable order (refs first, then ``after``)."""
        keys: list[str] = []
        for f in dataclasses.fields(self):
            if f.name in ("key", "after", "tags"):
                continue
            keys.extend(ref.key for ref in _walk_refs(getattr(self, f.name)))
        keys.extend(self.after)
        return tuple(dict.fromkeys(k for k in keys if k != self.key))


@dataclass(frozen=True, kw_only=True)
class Vpc(Resource):
    kind: ClassVar[str] = "vpc"
    cidr: str
    dns_support: bool = True
    dns_hostnames: bool = True


@dataclass(frozen=True, kw_only=True)
class Subnet(Resource):
    kind: ClassVar[str] = "subnet"
    vpc: Any = Ref("vpc")
    cidr: str
    zone: str | None
    map_public_ip: bool = False


@dataclass(frozen=True, kw_only=True)
class RouteTable(Resource):
    kind: ClassVar[str] = "route-table"
    vpc: Any = Ref("vpc")
    subnets: tuple[Any, ...] = (Ref("subnet-a"), Ref("subnet-b"))


@dataclass(frozen=True, kw_only=True)
class GatewayEndpoint(Resource):
    kind: ClassVar[str] = "vpc-endpoint"
    vpc: Any = Ref("vpc")
    service_name: str
    route_tables: tuple[Any, ...] = (Ref("route-table"),)


@dataclass(frozen=True)
class Ingress:
    protocol: str
    port: int
    source_group: Any
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class SecurityGroup(Resource):
    kind: ClassVar[str] = "security-group"
    vpc: Any = Ref("vpc")
    group_name: str
    description: str
    ingress: tuple[Ingress, ...] = ()


@dataclass(frozen=True, kw_only=True)
class FileSystem(Resource):
    kind: ClassVar[str] = "efs"
    creation_token: str
    encrypted: bool = True
    throughput_mode: str = "elastic"
    performance_mode: str = "generalPurpose"


@dataclass(frozen=True, kw_only=True)
class MountTarget(Resource):
    kind: ClassVar[str] = "mount-target"
    taggable: ClassVar[bool] = False
    file_system: Any = Ref("efs")
    subnet: Any
    security_groups: tuple[Any, ...] = (Ref("sg-efs"),)


@dataclass(frozen=True, kw_only=True)
class AccessPoint(Resource):
    kind: ClassVar[str] = "access-point"
    file_system: Any = Ref("efs")
    uid: int = 1000
    gid: int = 1000
    path: str = "/lambda"
    permissions: str = "0750"

    @property
    def posix_user(self) -> dict[str, int]:
        return {"Uid": self.uid, "Gid": self.gid}

    @property
    def root_directory(self) -> dict[str, Any]:
        return {"Path": self.path, "CreationInfo": {"OwnerUid": self.uid, "OwnerGid": self.gid,
                                                    "Permissions": self.permissions}}


@dataclass(frozen=True, kw_only=True)
class Bucket(Resource):
    kind: ClassVar[str] = "bucket"
    name: str
    region: str
    encryption: str = "AES256"
    public_access_block: Mapping[str, bool] = field(default_factory=lambda: dict(PUBLIC_ACCESS_BLOCK))
    policy: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Role(Resource):
    kind: ClassVar[str] = "role"
    name: str
    description: str = ""
    trust: Mapping[str, Any] = field(default_factory=lambda: LAMBDA_TRUST)
    policy_name: str = INLINE_POLICY
    policy: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class LogGroup(Resource):
    kind: ClassVar[str] = "log-group"
    name: str
    retention_days: int = LOG_RETENTION_DAYS


@dataclass(frozen=True, kw_only=True)
class Function(Resource):
    kind: ClassVar[str] = "function"
    name: str
    role: Any
    handler: str
    runtime: str = RUNTIME
    architecture: str = DEFAULT_ARCHITECTURE
    memory: int = DEFAULT_MEMORY
    timeout: int = 3
    code: bytes = field(default=b"", repr=False, compare=False)
    code_sha256: str = ""
    environment: Mapping[str, str] = field(default_factory=dict)
    subnets: tuple[Any, ...] = (Ref("subnet-a"), Ref("subnet-b"))
    security_groups: tuple[Any, ...] = (Ref("sg-lambda"),)
    access_point: Any = Ref("access-point", "arn")
    mount_path: str = MOUNT_PATH


@dataclass(frozen=True, kw_only=True)
class Permission(Resource):
    kind: ClassVar[str] = "permission"
    taggable: ClassVar[bool] = False
    function: Any
    statement_id: str
    principal: str
    source_arn: Any
    source_account: str | None = None


@dataclass(frozen=True, kw_only=True)
class BucketNotification(Resource):
    kind: ClassVar[str] = "bucket-notification"
    taggable: ClassVar[bool] = False
    bucket: str
    config_id: str = NOTIFICATION_ID
    function: Any = Ref("fn-producer", "arn")
    events: tuple[str, ...] = ("s3:ObjectCreated:*",)
    prefix: str = MODELS_PREFIX


@dataclass(frozen=True, kw_only=True)
class HttpApi(Resource):
    kind: ClassVar[str] = "http-api"
    name: str
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class ApiIntegration(Resource):
    kind: ClassVar[str] = "api-integration"
    taggable: ClassVar[bool] = False
    api: Any = Ref("api")
    function: Any = Ref("fn-consumer", "arn")
    payload_version: str = "2.0"
    timeout_ms: int = INTEGRATION_TIMEOUT_MS


@dataclass(frozen=True, kw_only=True)
class ApiRoutes(Resource):
    kind: ClassVar[str] = "api-routes"
    taggable: ClassVar[bool] = False
    api: Any = Ref("api")
    target: Any = Fmt("integrations/{integration}", integration=Ref("api-integration"))
    route_keys: tuple[str, ...] = ROUTE_KEYS
    authorization: str = "AWS_IAM"


@dataclass(frozen=True, kw_only=True)
class ApiStage(Resource):
    kind: ClassVar[str] = "api-stage"
    api: Any = Ref("api")
    name: str = "$default"
    auto_deploy: bool = True


# --- configuration and names ---------------------------------------------------------------

def partition_for(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@dataclass(frozen=True)
class Names:
    """Deterministic names: how resources AWS names are found without tags."""

    stack: str
    account: str
    region: str

    @property
    def prefix(self) -> str:
        return f"efsctl-{self.stack}"

    @property
    def partition(self) -> str:
        return partition_for(self.region)

    def function(self, which: str) -> str:
        return f"{self.prefix}-{which}"

    def role(self, which: str) -> str:
        return f"{self.prefix}-{which}"

    def log_group(self, which: str) -> str:
        return f"/aws/lambda/{self.function(which)}"

    def security_group(self, which: str) -> str:
        return f"{self.prefix}-{which}"

    @property
    def bucket(self) -> str:
        return f"{self.prefix}-{self.account}-{self.region}"

    @property
    def creation_token(self) -> str:
        return f"{self.prefix}-{self.region}"

    @property
    def api(self) -> str:
        return self.prefix

    @property
    def s3_service(self) -> str:
        return f"com.amazonaws.{self.region}.s3"

    def function_arn(self, which: str) -> str:
        return f"arn:{self.partition}:lambda:{self.region}:{self.account}:function:{self.function(which)}"

    def log_group_arn(self, which: str) -> str:
        return f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:{self.log_group(which)}"

    @property
    def bucket_arn(self) -> str:
        return f"arn:{self.partition}:s3:::{self.bucket}"

    def api_url(self, api_id: str) -> str:
        suffix = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
        return f"https://{api_id}.execute-api.{self.region}.{suffix}"


@dataclass(frozen=True)
class StackConfig:
    """Everything the desired stack depends on. ``zones`` are the region's usable AZs."""

    stack: str
    region: str
    account: str
    code: bytes = field(default=b"", repr=False)
    code_sha256: str = ""
    zones: tuple[str, ...] = ()
    vpc_cidr: str = DEFAULT_VPC_CIDR
    memory: int = DEFAULT_MEMORY
    producer_timeout: int = PRODUCER_TIMEOUT
    consumer_timeout: int = CONSUMER_TIMEOUT
    architecture: str = DEFAULT_ARCHITECTURE
    log_retention_days: int = LOG_RETENTION_DAYS

    @property
    def names(self) -> Names:
        return Names(self.stack, self.account, self.region)


def validate_vpc_cidr(cidr: str) -> str:
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise ConfigError(f"--vpc-cidr {cidr!r} is not a valid network ({exc}).",
                          "Use a private IPv4 block such as 10.42.0.0/16.") from None
    if network.version != 4 or not 16 <= network.prefixlen <= 24:
        raise ConfigError(f"--vpc-cidr {cidr} must be an IPv4 block from /16 to /24.",
                          "For example 10.42.0.0/16.")
    return str(network)


def validate_memory(memory: int) -> int:
    if not 128 <= memory <= 10_240:
        raise ConfigError(f"--memory {memory} is outside Lambda's 128-10240 MiB.", "For example --memory 2048.")
    return memory


def subnet_cidrs(vpc_cidr: str) -> tuple[str, str]:
    """Two equal private subnets at the start of the VPC block (/20s in a /16)."""
    network = ipaddress.ip_network(vpc_cidr)
    prefix = max(network.prefixlen + 1, min(network.prefixlen + 4, 24))
    first, second = list(network.subnets(new_prefix=prefix))[:2]
    return str(first), str(second)


# --- the desired stack ---------------------------------------------------------------------

def _tags(config: StackConfig, key: str, **extra: str) -> dict[str, str]:
    return {TAG_STACK: config.stack, TAG_RESOURCE: key, **extra}


def _role_policy(names: Names, which: str) -> dict[str, Any]:
    if which == "producer":
        s3 = {"Sid": "ReadModels", "Effect": "Allow", "Action": "s3:GetObject",
              "Resource": f"{names.bucket_arn}/{MODELS_PREFIX}*"}
    else:
        s3 = {"Sid": "WriteOutputs", "Effect": "Allow", "Action": "s3:PutObject",
              "Resource": f"{names.bucket_arn}/{OUTPUTS_PREFIX}*"}
    return {"Version": "2012-10-17", "Statement": [
        s3,
        # AWS allows nothing narrower than "*" for the VPC network-interface actions.
        {"Sid": "VpcNetworkInterfaces", "Effect": "Allow", "Action": list(ENI_ACTIONS), "Resource": "*"},
        {"Sid": "MountFileSystem", "Effect": "Allow",
         "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"], "Resource": Ref("efs", "arn")},
        {"Sid": "WriteOwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": f"{names.log_group_arn(which)}:*"},
    ]}


def _bucket_policy(names: Names) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [names.bucket_arn, f"{names.bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}


def desired_stack(config: StackConfig) -> list[Resource]:
    """Every resource of the stack, in DESIGN order. Pure: same config, same list."""
    n = config.names
    cidr_a, cidr_b = subnet_cidrs(config.vpc_cidr)
    zones = tuple(config.zones) + (None, None)
    resources: list[Resource] = [
        Vpc(key="vpc", cidr=config.vpc_cidr, tags=_tags(config, "vpc")),
        Subnet(key="subnet-a", cidr=cidr_a, zone=zones[0], tags=_tags(config, "subnet-a")),
        Subnet(key="subnet-b", cidr=cidr_b, zone=zones[1], tags=_tags(config, "subnet-b")),
        RouteTable(key="route-table", tags=_tags(config, "route-table")),
        GatewayEndpoint(key="s3-endpoint", service_name=n.s3_service, tags=_tags(config, "s3-endpoint")),
        SecurityGroup(key="sg-lambda", group_name=n.security_group("lambda"),
                      description=f"efsctl {config.stack}: Lambda functions", tags=_tags(config, "sg-lambda")),
        SecurityGroup(key="sg-efs", group_name=n.security_group("efs"),
                      description=f"efsctl {config.stack}: EFS mount targets, NFS from the functions only",
                      ingress=(Ingress("tcp", 2049, Ref("sg-lambda"), "NFS from the efsctl Lambda functions"),),
                      tags=_tags(config, "sg-efs")),
        FileSystem(key="efs", creation_token=n.creation_token, tags=_tags(config, "efs", Name=n.prefix)),
        MountTarget(key="mt-a", subnet=Ref("subnet-a")),
        MountTarget(key="mt-b", subnet=Ref("subnet-b")),
        AccessPoint(key="access-point", tags=_tags(config, "access-point")),
        Bucket(key="bucket", name=n.bucket, region=config.region, policy=_bucket_policy(n),
               tags=_tags(config, "bucket")),
    ]
    for which in FUNCTIONS:
        resources.append(Role(key=f"role-{which}", name=n.role(which), policy=_role_policy(n, which),
                              description=f"efsctl {config.stack}: {which} function",
                              tags=_tags(config, f"role-{which}", **{TAG_REGION: config.region})))
    for which in FUNCTIONS:
        resources.append(LogGroup(key=f"log-{which}", name=n.log_group(which),
                                  retention_days=config.log_retention_days, tags=_tags(config, f"log-{which}")))
    environment = {"EFS_MOUNT_PATH": MOUNT_PATH, "BUCKET": n.bucket, "MODELS_PREFIX": MODELS_PREFIX,
                   "OUTPUTS_PREFIX": OUTPUTS_PREFIX}
    timeouts = {"producer": config.producer_timeout, "consumer": config.consumer_timeout}
    for which in FUNCTIONS:
        resources.append(Function(
            key=f"fn-{which}", name=n.function(which), role=Ref(f"role-{which}", "arn"), handler=f"{which}.handler",
            architecture=config.architecture, memory=config.memory, timeout=timeouts[which], code=config.code,
            code_sha256=config.code_sha256, environment=environment, tags=_tags(config, f"fn-{which}"),
            # Log groups first so Lambda never creates them without retention; mount targets
            # must be available in every AZ of the function's subnets before CreateFunction.
            after=(f"log-{which}", "mt-a", "mt-b")))
    resources += [
        Permission(key="s3-permission", function=Ref("fn-producer", "name"), statement_id=S3_STATEMENT_ID,
                   principal="s3.amazonaws.com", source_arn=n.bucket_arn, source_account=config.account,
                   after=("bucket",)),
        BucketNotification(key="s3-notification", bucket=n.bucket, after=("bucket", "s3-permission")),
        HttpApi(key="api", name=n.api, description=f"efsctl {config.stack}: predict and models",
                tags=_tags(config, "api")),
        ApiIntegration(key="api-integration"),
        ApiRoutes(key="api-routes"),
        ApiStage(key="api-stage", tags=_tags(config, "api-stage")),
        Permission(key="api-permission", function=Ref("fn-consumer", "name"), statement_id=API_STATEMENT_ID,
                   principal="apigateway.amazonaws.com",
                   source_arn=Fmt(f"arn:{n.partition}:execute-api:{config.region}:{config.account}:{{api}}/*/*/*",
                                  api=Ref("api"))),
    ]
    return resources


def by_key(resources: list[Resource]) -> dict[str, Resource]:
    return {r.key: r for r in resources}


def topological_order(resources: list[Resource]) -> list[Resource]:
    """Dependencies before dependents; ties keep the given order. Raises on a cycle."""
    index = by_key(resources)
    order: list[Resource] = []
    state: dict[str, int] = {}

    def visit(resource: Resource) -> None:
        mark = state.get(resource.key)
        if mark == 2:
            return
        if mark == 1:
            raise ValueError(f"dependency cycle through {resource.key}")
        state[resource.key] = 1
        for dep in resource.dependencies():
            if dep in index:
                visit(index[dep])
        state[resource.key] = 2
        order.append(resource)

    for resource in resources:
        visit(resource)
    return order
