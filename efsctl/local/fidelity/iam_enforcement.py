"""Role sessions are held to their policies, as AWS holds them; the operator's key stays allowed.

The local runtime gives each execution environment credentials for the function's execution role
(STS AssumeRole, session name = the function's name, as Lambda does). Every request signed with
credentials of an assumed-role session is authorised here before moto serves it:

- against the role's identity policies (inline and attached) and the target's resource policy
  (for S3, the bucket policy, conditions evaluated), in AWS's order (see ``iam_policy``);
- refused with AWS's error: S3 ``AccessDenied`` (403) and its message, ``User:
  arn:aws:sts::<account>:assumed-role/<role>/<function> is not authorized to perform: s3:GetObject
  on resource: "arn:aws:s3:::<bucket>/<key>" because no identity-based policy allows the
  s3:GetObject action``; ``AccessDeniedException`` for JSON services, ``AccessDenied`` for IAM
  and STS, ``UnauthorizedOperation`` for EC2;
- a missing key read without ``s3:ListBucket`` is ``AccessDenied`` (S3 does not reveal what does
  not exist to a caller who may not list), an expired or foreign session token is refused.

Lambda's own calls with the role (network interfaces, log streams, the file system mount) are
authorised the same way through :class:`LambdaActions`. Everything is recorded for the report
(``iam_usage``). The operator's long-term key (efsctl, the AWS CLI) acts as the account and is
not restricted by identity policies; bucket policies still apply to it (``bucket_policy``).

Transport: the local endpoint is plain HTTP on loopback and stands for AWS's HTTPS endpoints,
which the SDK uses; every request counts as ``aws:SecureTransport`` true, so the stack's TLS-only
bucket policy does not block the handlers (nor the operator), while a Deny conditioned on
anything else is evaluated as AWS evaluates it.
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping
from urllib.parse import unquote

from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target
from efsctl.local.fidelity.iam_policy import Decision, Principal, Request, decide, denial_message
from efsctl.local.fidelity.iam_sessions import (Session, Sessions, current_session, serving, session_of,
                                                signed_with, token_problem)
from efsctl.local.fidelity.iam_usage import HANDLER, LAMBDA, USAGE_FILE, UsageLog

__all__ = ["current_session", "lambda_actions", "report", "PATCH"]

# IAM's service prefix where it differs from boto3's service name, and IAM actions where they
# differ from the operation name.
PREFIXES = {"efs": "elasticfilesystem", "apigatewayv2": "apigateway", "stepfunctions": "states"}
ACTIONS = {("lambda", "Invoke"): "InvokeFunction", ("lambda", "InvokeAsync"): "InvokeFunction"}
DENIED = {"ec2": ("UnauthorizedOperation", 403), "iam": ("AccessDenied", 403), "sts": ("AccessDenied", 403),
          "lambda": ("AccessDeniedException", 403), "efs": ("AccessDeniedException", 403)}
DEFAULT_DENIED = ("AccessDeniedException", 400)


# --- policies of a role ------------------------------------------------------------------------

_parsed: dict[str, Any] = {}


def policy_document(raw: Any) -> Mapping[str, Any]:
    """A policy document as moto keeps it (JSON text, maybe URL-encoded, or parsed), parsed;
    ``{}`` if it does not parse."""
    if isinstance(raw, Mapping):
        return raw
    text = str(raw)
    doc = _parsed.get(text)
    if doc is None:
        try:
            doc = json.loads(text if text.lstrip().startswith("{") else unquote(text))
        except ValueError:
            doc = {}
        if len(_parsed) > 2048:
            _parsed.clear()
        _parsed[text] = doc
    return doc


def role_of(account_id: str, role_arn: str) -> Any | None:
    from moto.iam.models import iam_backends

    return next((r for r in iam_backends[account_id]["aws"].get_roles() if r.arn == role_arn), None)


def identity_policies(account_id: str, role_arn: str) -> list[tuple[str, Mapping[str, Any]]]:
    """``(policy name, document)`` for every inline and attached policy of the role (none if gone)."""
    role = role_of(account_id, role_arn)
    if role is None:
        return []
    found = [(name, policy_document(doc)) for name, doc in list(role.policies.items())]
    for policy in list(role.managed_policies.values()):
        for version in policy.versions:
            if version.is_default:
                found.append((policy.name, policy_document(version.document)))
    return found


def context_of(session: Session, region: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    now = time.time()
    role_id = getattr(role_of(session.account, session.role_arn), "id", "AROA")
    return {"aws:SecureTransport": "true", "aws:PrincipalArn": session.role_arn,
            "aws:PrincipalAccount": session.account, "aws:PrincipalType": "AssumedRole",
            "aws:userid": f"{role_id}:{session.name}", "aws:RequestedRegion": region,
            "aws:CurrentTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "aws:EpochTime": str(int(now)), **(extra or {})}


class Authorizer:
    """Decides and records one request by a role session (the handler) or by Lambda for it."""

    def __init__(self, usage: UsageLog) -> None:
        self.usage = usage

    def check(self, principal: Principal, function: str, action: str, resource: str | None,
              resource_policies: list[tuple[str, Mapping[str, Any]]], context: Mapping[str, str], *,
              by: str, quote_resource: bool = False) -> tuple[Decision, str]:
        request = Request(principal, action, resource, context)
        decision = decide(identity_policies(principal.account, principal.role_arn or ""), resource_policies, request)
        message = "" if decision.allowed else denial_message(decision, request, quote_resource=quote_resource)
        self.usage.record(function=function, role_arn=principal.role_arn or "", principal_arn=principal.arn, by=by,
                          action=action, resource=resource or "*", decision=decision, message=message)
        return decision, message


class LambdaActions:
    """Lambda's own calls with a function's role: authorised like the handler's, recorded as Lambda's.

    The runtime asks before it writes a log stream (``logs``) and before an environment mounts
    the file system (``mount``); ``lambda_enis`` reports the network-interface calls.
    """

    def __init__(self, authorizer: Authorizer, region: str) -> None:
        self.authorizer = authorizer
        self.region = region

    def logs(self, spec: Any, group: str, stream: str, new_stream: bool) -> bool:
        from efsctl.local import moto_models

        arn = f"arn:aws:logs:{spec.region}:{spec.account_id}:log-group:{group}"
        needed = ["logs:PutLogEvents"]
        if new_stream:
            needed.insert(0, "logs:CreateLogStream")
            if not moto_models.log_group_exists(spec.account_id, spec.region, group):
                needed.insert(0, "logs:CreateLogGroup")
        allowed = True
        for action in needed:
            resource = arn if action == "logs:CreateLogGroup" else f"{arn}:log-stream:{stream}"
            allowed = self.use(spec.name, spec.account_id, spec.role, action, resource).allowed and allowed
        return allowed

    def mount(self, spec: Any) -> str | None:
        from efsctl.local import moto_models

        for mount in spec.efs:
            arn = f"arn:aws:elasticfilesystem:{spec.region}:{spec.account_id}:file-system/{mount.file_system_id}"
            policy = moto_models.file_system_policy(spec.account_id, spec.region, mount.file_system_id)
            # Without a file system policy EFS lets in every client that reaches a mount target.
            policies = [("file system policy", policy or default_file_system_policy(arn))]
            mounted = self.use(spec.name, spec.account_id, spec.role, "elasticfilesystem:ClientMount", arn, policies)
            self.use(spec.name, spec.account_id, spec.role, "elasticfilesystem:ClientWrite", arn, policies)
            if not mounted.allowed:
                return (f"The function couldn't mount the Amazon EFS file system with access point "
                        f"{mount.access_point_arn}: its execution role is not allowed elasticfilesystem:ClientMount.")
        return None

    def network(self, function: str, account_id: str, role_arn: str, actions: tuple[str, ...]) -> bool:
        """Record the network-interface calls Lambda makes with the function's role (every one of
        them, as Lambda makes them all); True if the role allows them all."""
        decisions = [self.use(function, account_id, role_arn, action, None) for action in actions]
        return all(d.allowed for d in decisions)

    def use(self, function: str, account_id: str, role_arn: str, action: str, resource: str | None,
            resource_policies: list[tuple[str, Mapping[str, Any]]] | None = None) -> Decision:
        principal = Principal(f"arn:aws:sts::{account_id}:assumed-role/{role_arn.rsplit('/', 1)[-1]}/{function}",
                              account_id, role_arn)
        context = {"aws:SecureTransport": "true", "aws:PrincipalArn": role_arn, "aws:PrincipalAccount": account_id,
                   "aws:RequestedRegion": self.region}
        decision, _ = self.authorizer.check(principal, function, action, resource, resource_policies or [], context,
                                            by=LAMBDA)
        return decision


def default_file_system_policy(arn: str) -> dict[str, Any]:
    return {"Statement": [{"Sid": "EFS default", "Effect": "Allow", "Principal": {"AWS": "*"}, "Resource": arn,
                           "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite",
                                      "elasticfilesystem:ClientRootAccess"]}]}


def lambda_actions(ctx: PatchContext) -> LambdaActions | None:
    """The context's :class:`LambdaActions` (None when the enforcement patch is not installed)."""
    return ctx.extra.get("_lambda_actions")


# --- S3 ----------------------------------------------------------------------------------------

def _s3_resource(bucket: str | None, key: str | None) -> str:
    if bucket and key:
        return f"arn:aws:s3:::{bucket}/{key}"
    return f"arn:aws:s3:::{bucket}" if bucket else "*"


def _bucket_policies(response: Any, bucket_name: str | None) -> tuple[Any, list[tuple[str, Mapping[str, Any]]]]:
    bucket = response.backend.buckets.get(bucket_name) if bucket_name else None
    if bucket is None or not bucket.policy:
        return bucket, []
    raw = bucket.policy.decode() if isinstance(bucket.policy, bytes) else bucket.policy
    return bucket, [("bucket policy", policy_document(raw))]


def authorize_s3(authorizer: Authorizer, response: Any, bucket_name: str | None, key_name: str | None) -> None:
    """Raise S3's error unless the current request's role session may do what it asks."""
    from moto.s3.exceptions import S3ClientError

    session = current_session()
    if session is None:
        return   # the operator: moto's own check is off (INITIAL_NO_AUTH_ACTION_COUNT)
    problem = token_problem(session)
    if problem == "invalid":
        raise S3ClientError("InvalidToken", "The provided token is malformed or otherwise invalid.")
    if problem == "expired":
        raise S3ClientError("ExpiredToken", "The provided token has expired.")
    # moto names the action (ACTION_MAP) before it asks; one it did not name is allowed only by s3:*.
    action = f"s3:{response.data.get('Action') or 'Unknown'}"
    bucket, policies = _bucket_policies(response, bucket_name)
    extra = {"s3:prefix": str(response.querystring["prefix"][0])} if "prefix" in response.querystring else {}
    context = context_of(session, response.region, extra)
    decision, message = authorizer.check(session.principal, session.name, action, _s3_resource(bucket_name, key_name),
                                         policies, context, by=HANDLER, quote_resource=True)
    if not decision.allowed:
        raise S3ClientError("AccessDenied", message)
    if action == "s3:GetObject" and bucket is not None and key_name and key_name not in bucket.keys:
        # Without s3:ListBucket, S3 answers 403, not 404, for a key that does not exist.
        listing = Request(session.principal, "s3:ListBucket", _s3_resource(bucket_name, None), context)
        if not decide(identity_policies(session.account, session.role_arn), policies, listing).allowed:
            raise S3ClientError("AccessDenied", "Access Denied")


def refusal(authorizer: Authorizer, response: Any, session: Session) -> Any:
    """The error answer (status, headers, body) for a request the session may not make, or None."""
    from moto.core.utils import get_service_model

    from efsctl.local.fidelity.api_calls import error_response

    service = response.boto3_service_name
    protocol = get_service_model(service).protocol
    problem = token_problem(session)
    if problem is not None:
        code = "ExpiredTokenException" if problem == "expired" else "UnrecognizedClientException"
        text = ("The security token included in the request is expired" if problem == "expired"
                else "The security token included in the request is invalid.")
        return error_response(service, protocol, code, 403, text)
    operation = response._get_action()
    if (service, operation) == ("sts", "GetCallerIdentity"):
        return None   # always allowed, even under an explicit Deny
    action = f"{PREFIXES.get(service, service)}:{ACTIONS.get((service, operation), operation)}"
    decision, message = authorizer.check(session.principal, session.name, action,
                                         _resource_of(response, service, session), [],
                                         context_of(session, response.region), by=HANDLER)
    if decision.allowed:
        return None
    code, status = DENIED.get(service, DEFAULT_DENIED)
    return error_response(service, protocol, code, status, message)


def install(ctx: PatchContext, patcher: Patcher) -> None:
    from moto.core.responses import BaseResponse
    from moto.s3.responses import S3Response
    from moto.sts.models import STSBackend

    sessions = Sessions()
    usage = UsageLog(ctx.data_dir / USAGE_FILE if ctx.data_dir else None)
    authorizer = Authorizer(usage)
    actions = LambdaActions(authorizer, ctx.region)
    ctx.extra.update(_iam_sessions=sessions, _iam_usage=usage, _lambda_actions=actions)
    ctx.on_stop.append(usage.close)
    if ctx.runtime is not None:
        ctx.runtime.lambda_actions = actions

    def wrap_assume_role(original):
        def assume_role(self: Any, *args: Any, **kwargs: Any) -> Any:
            assumed = original(self, *args, **kwargs)
            sessions.add(session_of(assumed))
            return assumed
        return assume_role

    def wrap_setup_class(original):
        def setup_class(self: Any, request: Any, full_url: Any = None, headers: Any = None,
                        use_raw_body: Any = None) -> None:
            original(self, request, full_url, headers, use_raw_body)
            key, token = signed_with(self.headers, getattr(self, "querystring", {}) or {})
            serving(sessions.get(key), token)
        return setup_class

    def authorize(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
        authorize_s3(authorizer, self, bucket_name, key_name)

    def wrap_call_action(original):
        def call_action(self: Any) -> Any:
            session = current_session()
            refused = refusal(authorizer, self, session) if session is not None else None
            return refused if refused is not None else original(self)
        return call_action

    patcher.wrap(STSBackend, "assume_role", wrap_assume_role)
    patcher.wrap(BaseResponse, "setup_class", wrap_setup_class)
    patcher.replace(S3Response, "_authenticate_and_authorize_s3_action", authorize)
    patcher.wrap(BaseResponse, "call_action", wrap_call_action)


def _resource_of(response: Any, service: str, session: Session) -> str | None:
    """The ARN a request acts on, where the local cloud can tell (else None: any Resource matches)."""
    region, account = response.region, session.account
    if service == "lambda":
        parts = response.path.split("/functions/", 1)
        if len(parts) == 2:
            name = unquote(parts[1].split("/", 1)[0])
            return name if name.startswith("arn:") else f"arn:aws:lambda:{region}:{account}:function:{name}"
    if service == "logs":
        try:
            body = json.loads(response.body or "{}")
        except ValueError:
            return None
        group = body.get("logGroupName")
        if group:
            stream = body.get("logStreamName")
            return (f"arn:aws:logs:{region}:{account}:log-group:{group}"
                    + (f":log-stream:{stream}" if stream else ""))
    return None


PATCH = Patch(
    name="iam_enforcement",
    summary="requests signed with role session credentials authorised against identity and resource policies",
    targets=(
        Target("moto.sts.models:STSBackend.assume_role",
               ("self", "region_name", "role_session_name", "role_arn", "policy", "duration", "external_id")),
        Target("moto.sts.models:AssumedRole.__init__"),
        Target("moto.sts.models:STSBackend.get_assumed_role_from_access_key", ("self", "access_key_id")),
        Target("moto.sts.models:sts_backends"),
        Target("moto.core.responses:BaseResponse.setup_class",
               ("self", "request", "full_url", "headers", "use_raw_body")),
        Target("moto.core.responses:BaseResponse.call_action", ("self",)),
        Target("moto.core.responses:BaseResponse._get_action", ("self",)),
        Target("moto.core.authorization:ActionAuthenticatorMixin._authenticate_and_authorize_s3_action",
               ("self", "bucket_name", "key_name")),
        Target("moto.s3.exceptions:S3ClientError"),
        Target("moto.iam.models:IAMBackend.get_roles", ("self",)),
    ),
    install=install,
)


def report(ctx: PatchContext) -> dict[str, Any]:
    """The least-privilege report: per function, used / denied / granted but never used."""
    from efsctl.local import moto_models
    from efsctl.local.fidelity.iam_policy import allow_grants
    from efsctl.local.fidelity.iam_usage import FunctionGrants, build_report

    usage: UsageLog | None = ctx.extra.get("_iam_usage")
    if usage is None:
        return {"enforced": False, "since": None, "functions": {}}
    functions = []
    for fn in moto_models.lambda_backend(ctx.account_id, ctx.region).list_functions():
        grants = tuple(allow_grants(identity_policies(fn.account_id, fn.role)))
        functions.append(FunctionGrants(fn.function_name, fn.role, grants))
    return {"enforced": True, **build_report(usage.snapshot(), functions)}
