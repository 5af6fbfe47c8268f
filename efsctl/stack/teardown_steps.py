"""One teardown step per task kind: delete, then wait (bounded, visibly) until AWS agrees.

Each step takes a :class:`~efsctl.stack.teardown.StepContext`, calls only the AWS layer, treats
"already gone" as done and returns a short detail for the step's line. Waits and retries run
until the teardown's overall deadline (``down --timeout``).
"""

from __future__ import annotations

from typing import Any, Callable

from efsctl.aws import apigw, ec2, efs, iam, lambda_, logs, s3
from efsctl.errors import AwsError
from efsctl.stack.model import NOTIFICATION_ID
from efsctl.stack.observe import network_scope
from efsctl.stack.teardown import StepContext
from efsctl.waits import Outcome, Poll

Retryable = Callable[[BaseException], "str | None"]
DELETING = {"deleting", "deleted"}  # EFS lifecycle states of something already on its way out
# The ENI drain is `down`'s critical path: poll it closely (about 2% of the time waited so far)
# so `down` ends within a few percent of the moment Lambda lets go of the last interface.
ENI_POLL = Poll(floor=0.1, ceiling=10.0, fraction=0.02)


def _code(exc: BaseException) -> str:
    return exc.code if isinstance(exc, AwsError) else ""


def _said(done: list[bool], verb: str = "deleted") -> str:
    return verb if any(done) else "already gone"


def dependency_violation(what_blocks: Callable[[], str]) -> Retryable:
    """Retry ``DependencyViolation`` (expected while Lambda's ENIs drain), saying what still blocks."""

    def check(exc: BaseException) -> str | None:
        if _code(exc) != "DependencyViolation":
            return None
        try:
            return f"DependencyViolation: {what_blocks()}"
        except Exception:  # noqa: BLE001 - the detail is best effort; the retry is what matters
            return "DependencyViolation"

    return check


def _update_in_progress(exc: BaseException) -> str | None:
    # A function still Pending, or mid-update, refuses another change (AWS-RULES 8, 9).
    if _code(exc) in ("ResourceConflictException", "ResourceNotReadyException"):
        return "an update or creation is still in progress"
    return None


def _count(items: list, noun: str) -> str:
    ids = ", ".join(i.get("NetworkInterfaceId", "?") for i in items[:5]) + (", ..." if len(items) > 5 else "")
    return f"{len(items)} {noun}{'s' if len(items) != 1 else ''} left" + (f" ({ids})" if items else "")


# --- S3 notification, permissions, API -----------------------------------------------------

def remove_notification(ctx: StepContext) -> str:
    names = ctx.observed.names
    done = s3.remove_lambda_notifications(ctx.aws, names.bucket, function_arn=names.function_arn("producer"),
                                          config_id=NOTIFICATION_ID)
    return _said([done], "removed")


def remove_permission(ctx: StepContext) -> str:
    for statement in ctx.task.targets:
        lambda_.remove_permission(ctx.aws, statement.attrs["function"], statement.id)
    return "removed"


def delete_api(ctx: StepContext) -> str:
    return _said([apigw.delete_api(ctx.aws, api.id) for api in ctx.task.targets]) + " (integration, routes, stage)"


# --- functions and their network interfaces ------------------------------------------------

def detach_function(ctx: StepContext) -> str:
    """Empty VpcConfig (and no file system, which needs the VPC), then wait for the update.

    This only speeds things up (AWS-RULES 11): if Lambda refuses, deleting the function
    releases its interfaces too, so the refusal is reported, not fatal.
    """
    function = ctx.task.targets[0]
    name = function.name or function.id

    def check() -> Outcome[None]:
        config = lambda_.function_configuration(ctx.aws, name)
        if config is None:
            return Outcome(True)
        status = config.get("LastUpdateStatus") or "Successful"
        if status == "Failed":
            raise AwsError(f"Lambda could not take {name} out of its VPC: "
                           f"{config.get('LastUpdateStatusReason') or 'no reason given'}.", code="UpdateFailed")
        return Outcome(status == "Successful", detail=f"LastUpdateStatus {status}")

    try:
        if function.attrs.get("subnets") or function.attrs.get("security_groups") or function.attrs.get("file_systems"):
            updated = ctx.retry(lambda: lambda_.detach_from_vpc(ctx.aws, name), what=f"{name} to accept an update",
                                retryable=_update_in_progress)
            if updated is None:
                return "already gone"
        ctx.wait(check, what=f"{name} detached")
    except AwsError as exc:
        if exc.code in ("AccessDenied", "AccessDeniedException"):
            raise
        return f"not detached ({exc.code or exc.message}); its deletion releases the interfaces instead"
    return "detached from the VPC"


def delete_function(ctx: StepContext) -> str:
    done = [ctx.retry(lambda name=f.name or f.id: lambda_.delete_function(ctx.aws, name),
                      what=f"{f.id} to accept deletion", retryable=_update_in_progress)
            for f in ctx.task.targets]
    return _said(done)


def drain_enis(ctx: StepContext) -> str:
    """Wait until no Lambda ENI of the stack is left; delete any left ``available``.

    Lambda deletes its ENIs itself (with the function's role, which is why the roles wait for
    this); EC2 refuses changes to their security groups, so nothing else touches them.
    """
    scope = network_scope(ctx.observed)
    deleted: set[str] = set()

    def check() -> Outcome[None]:
        enis = ec2.stack_lambda_enis(ctx.aws, **scope) if any(scope.values()) else []
        left = []
        for eni in enis:
            if eni.get("Status") == "available" and eni["NetworkInterfaceId"] not in deleted:
                try:
                    if ec2.delete_network_interface(ctx.aws, eni["NetworkInterfaceId"]):
                        deleted.add(eni["NetworkInterfaceId"])
                    continue
                except AwsError as exc:  # Lambda took it back, or is deleting it itself
                    if not exc.code.startswith("InvalidNetworkInterface"):
                        raise
            left.append(eni)
        return Outcome(not left, detail=_count(left, "Lambda network interface"))

    ctx.wait(check, what="Lambda ENIs", poll=ENI_POLL)
    return f"none left{f' ({len(deleted)} deleted)' if deleted else ''}"


def delete_role(ctx: StepContext) -> str:
    return _said([iam.delete_role(ctx.aws, role.name or role.id) for role in ctx.task.targets])


def delete_log_group(ctx: StepContext) -> str:
    return _said([logs.delete_log_group(ctx.aws, group.name or group.id) for group in ctx.task.targets])


# --- EFS -------------------------------------------------------------------------------------

def delete_access_point(ctx: StepContext) -> str:
    return _said([efs.delete_access_point(ctx.aws, point.id) for point in ctx.task.targets])


def _delete_mount_targets(ctx: StepContext, targets: list[tuple[str, str]], what: str) -> list[bool]:
    """Delete the mount targets (``(id, lifecycle state)``; those already ``deleting`` are left
    to finish) and wait until EFS no longer lists them (AWS: about 30 s)."""
    done = [efs.delete_mount_target(ctx.aws, mt) for mt, state in targets if state not in DELETING]
    ids = [mt for mt, _ in targets]

    def check() -> Outcome[None]:
        left = []
        for mt in ids:
            found = efs.describe_mount_target(ctx.aws, mt)
            if found is not None and found.get("LifeCycleState") != "deleted":
                left.append(f"{mt} {found.get('LifeCycleState', '')}".strip())
        return Outcome(not left, detail=", ".join(left))

    ctx.wait(check, what=what)
    return done or [False]


def delete_mount_target(ctx: StepContext) -> str:
    return _said(_delete_mount_targets(ctx, [(mt.id, mt.state) for mt in ctx.task.targets],
                                       f"{ctx.task.key} deleted"))


def delete_file_system(ctx: StepContext) -> str:
    """Sweep any mount target still listed (extras included), then delete, retrying
    ``FileSystemInUse`` while EFS finishes removing them (AWS-RULES 26)."""
    done = []
    for fs in [t for t in ctx.task.targets if t.kind == "efs"]:
        if fs.state in DELETING:
            continue
        left = [(mt["MountTargetId"], mt.get("LifeCycleState", "")) for mt in efs.mount_targets(ctx.aws, fs.id)
                if mt.get("LifeCycleState") != "deleted"]
        if left:
            _delete_mount_targets(ctx, left, f"mount targets of {fs.id} deleted")
        done.append(ctx.retry(lambda fs_id=fs.id: efs.delete_file_system(ctx.aws, fs_id), what=f"{fs.id} deletion",
                              retryable=lambda exc: "mount targets still being deleted"
                              if _code(exc) == "FileSystemInUse" else None))
    return _said(done)


# --- network ---------------------------------------------------------------------------------

def _blocking_enis(**where: str) -> Callable[[StepContext], str]:
    return lambda ctx: _count(ec2.network_interfaces_in(ctx.aws, **where), "network interface")


def revoke_sg_rule(ctx: StepContext) -> str:
    group = ctx.task.targets[0]
    rules = [rule["rule_id"] for rule in group.attrs.get("ingress", [])]
    return _said([ec2.revoke_ingress_rules_if_present(ctx.aws, group.id, rules)], "revoked")


def delete_endpoint(ctx: StepContext) -> str:
    return _said([ec2.delete_vpc_endpoints(ctx.aws, [e.id for e in ctx.task.targets])])


def delete_route_table(ctx: StepContext) -> str:
    """Disassociate the subnets first: EC2 refuses to delete a table still in use."""
    done = []
    for table in ctx.task.targets:
        for association in sorted(table.attrs.get("associations", {}).values()):
            ec2.disassociate_route_table(ctx.aws, association)
        done.append(ctx.retry(lambda t=table.id: ec2.delete_route_table(ctx.aws, t), what=f"{table.id} deletion",
                              retryable=dependency_violation(lambda: "routes or associations still in place")))
    return _said(done)


def _delete_while_enis_drain(delete: Callable[[Any, str], bool], where: str) -> Callable[[StepContext], str]:
    """A step deleting each target, retrying ``DependencyViolation`` (and saying how many network
    interfaces still block) while Lambda releases its ENIs: security groups, subnets, the VPC."""
    def step(ctx: StepContext) -> str:
        done = [ctx.retry(lambda i=target.id: delete(ctx.aws, i), what=f"{target.id} deletion",
                          retryable=dependency_violation(lambda i=target.id: _blocking_enis(**{where: i})(ctx)))
                for target in ctx.task.targets]
        return _said(done)
    return step


delete_security_group = _delete_while_enis_drain(ec2.delete_security_group, "group_id")
delete_subnet = _delete_while_enis_drain(ec2.delete_subnet, "subnet_id")
delete_vpc = _delete_while_enis_drain(ec2.delete_vpc, "vpc_id")


# --- bucket ----------------------------------------------------------------------------------

def delete_bucket(ctx: StepContext) -> str:
    """Every object version and delete marker first (1000 per call), then the bucket."""
    name = ctx.task.targets[0].id
    totals = {"objects": 0, "bytes": 0}
    began = ctx.clock.now()

    def progress(count: int, size: int) -> None:
        ctx.report(f"emptying {name}", ctx.clock.now() - began, f"{totals['objects'] + count} objects deleted")

    def empty() -> None:
        count, size = s3.empty_bucket(ctx.aws, name, on_batch=progress)
        totals["objects"] += count
        totals["bytes"] += size

    def empty_and_delete() -> bool:
        try:
            empty()
        except AwsError as exc:
            if exc.code != "AccessDenied":
                raise
            # The bucket's own TLS-only Deny refused us: moto treats its condition as always
            # true (AWS-RULES 35). The bucket is going away, so drop its policy and go on.
            s3.delete_bucket_policy(ctx.aws, name)
            empty()
        return s3.delete_bucket(ctx.aws, name)

    try:
        done = ctx.retry(empty_and_delete, what=f"{name} deletion",
                         retryable=lambda exc: "an object arrived while emptying" if _code(exc) == "BucketNotEmpty"
                         else None)
    finally:
        ctx.counts.update(totals)
    return f"{_said([done])} ({totals['objects']} objects, {totals['bytes']} bytes)"


STEPS: dict[str, Callable[[StepContext], str]] = {
    # by the model's resource kinds
    "bucket-notification": remove_notification,
    "permission": remove_permission,
    "http-api": delete_api,
    "function": delete_function,
    "role": delete_role,
    "log-group": delete_log_group,
    "access-point": delete_access_point,
    "mount-target": delete_mount_target,
    "efs": delete_file_system,
    "security-group": delete_security_group,
    "vpc-endpoint": delete_endpoint,
    "route-table": delete_route_table,
    "subnet": delete_subnet,
    "vpc": delete_vpc,
    "bucket": delete_bucket,
    # the steps AWS adds
    "detach": detach_function,
    "enis": drain_enis,
    "sg-rule": revoke_sg_rule,
}
