"""Steps for the functions and what surrounds them: roles, log groups, the functions, their
invoke permissions and the bucket notification; and the two steps AWS adds to a teardown:
detaching a function from its VPC, and waiting out Lambda's network interfaces."""

from __future__ import annotations

from typing import Any

from efsctl.aws import ec2, iam, lambda_, logs, s3
from efsctl.errors import AwsError, WaitTimeout
from efsctl.stack.drift import FUNCTION_CONFIG_FIELDS, Drift, missing_tags
from efsctl.stack.observe import network_scope
from efsctl.stack.model import NOTIFICATION_ID, BucketNotification, Function, LogGroup, Permission, Role
from efsctl.stack.observed import (Observed, function_observed, log_group_observed, notification_observed,
                                   permission_observed, role_observed)
from efsctl.stack.steps.base import WAIT_POLL, Step, StepContext, message_retryable, said
from efsctl.stack.steps.network import ENI_HINT, count_enis
from efsctl.waits import Outcome

# CreateFunction/UpdateFunctionConfiguration errors that mean "not yet", not "no" (AWS-RULES 3, 5, 10).
NOT_YET = message_retryable({
    "cannot be assumed by Lambda": "Lambda cannot assume the new role yet (IAM is propagating it)",
    "does not have permissions to call CreateNetworkInterface":
        "Lambda does not see the role's network-interface permissions yet (IAM is propagating them)",
    "not all are in the available life cycle state yet": "mount targets not available in every zone yet",
}, codes=("InvalidParameterValueException",))
# One update at a time: another update (or a create) still in progress (AWS-RULES 9).
IN_PROGRESS = message_retryable({"update is in progress": "another update of the function is in progress",
                                 "cannot be performed at this time": "the function is still being created or updated"},
                                codes=("ResourceConflictException",))
S3_NOT_YET = message_retryable({"Unable to validate the following destination configurations":
                                "S3 cannot see the producer's new invoke permission yet"})

PROPAGATION_TIMEOUT = 600.0  # IAM propagation (Chalice: 150 s; Terraform: 15 min) and mount targets
CONFLICT_TIMEOUT = 600.0
S3_VALIDATE_TIMEOUT = 60.0


def _either(*checks):
    def check(exc: BaseException) -> str | None:
        return next((reason for reason in (c(exc) for c in checks) if reason is not None), None)

    return check


class RoleStep(Step):
    def create(self, d: Role, ctx: StepContext) -> Observed:
        role, created = iam.create_role(ctx.aws, d.name, trust=d.trust, description=d.description, tags=d.tags)
        return role_observed(d.key, role,
                             policy=None if created else iam.get_inline_policy(ctx.aws, d.name, d.policy_name))

    def update(self, d: Role, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        fields = drift.fields()
        if "trust" in fields:
            iam.set_trust_policy(ctx.aws, d.name, d.trust)
        if "policy" in fields:
            iam.put_inline_policy(ctx.aws, d.name, d.policy_name, d.policy)
        missing = missing_tags(d, o)
        if missing:
            iam.tag_role(ctx.aws, d.name, missing)
            o.tags.update(missing)
        return o

    def delete(self, ctx: StepContext) -> str:
        return said([iam.delete_role(ctx.aws, role.name or role.id) for role in ctx.targets])


class LogGroupStep(Step):
    def create(self, d: LogGroup, ctx: StepContext) -> Observed:
        if not logs.create_log_group(ctx.aws, d.name, d.tags):
            group = logs.get_log_group(ctx.aws, d.name) or {}
            return log_group_observed(d.key, {"logGroupName": d.name, **group})
        return log_group_observed(d.key, {"logGroupName": d.name, "tags": dict(d.tags), "retentionInDays": None,
                                          "logGroupArn": ctx.names.log_group_arn(d.key.removeprefix("log-"))})

    def update(self, d: LogGroup, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        if "retention_days" in drift.fields():
            logs.set_retention(ctx.aws, d.name, d.retention_days)
        missing = missing_tags(d, o)
        if missing:
            logs.tag_log_group(ctx.aws, d.name, missing)
            o.tags.update(missing)
        return o

    def delete(self, ctx: StepContext) -> str:
        return said([logs.delete_log_group(ctx.aws, group.name or group.id) for group in ctx.targets])


def function_config(d: Function) -> dict[str, Any]:
    """What UpdateFunctionConfiguration takes (and CreateFunction, with code and tags)."""
    return {"Role": d.role, "Handler": d.handler, "Runtime": d.runtime, "MemorySize": d.memory, "Timeout": d.timeout,
            "Description": f"efsctl: {d.key.removeprefix('fn-')}",
            "Environment": {"Variables": dict(d.environment)},
            "VpcConfig": {"SubnetIds": list(d.subnets), "SecurityGroupIds": list(d.security_groups)},
            "FileSystemConfigs": [{"Arn": d.access_point, "LocalMountPath": d.mount_path}]}


class FunctionStep(Step):
    timeout = 900.0  # Pending -> Active takes about a minute for a VPC function

    def ready(self, o: Observed | None) -> bool:
        # A Failed function counts as settled: the update that follows (drift "state") retries it.
        return (o is not None and o.state in ("Active", "Inactive", "Failed")
                and o.attrs.get("last_update_status") != "InProgress")

    def create(self, d: Function, ctx: StepContext) -> Observed:
        spec = {"FunctionName": d.name, "PackageType": "Zip", "Code": {"ZipFile": d.code},
                "Architectures": [d.architecture], "Tags": dict(d.tags), **function_config(d)}
        created = ctx.retry(lambda: lambda_.create_function(ctx.aws, spec), what=f"{d.key} create",
                            retryable=NOT_YET, timeout=PROPAGATION_TIMEOUT)
        if created is None:  # it exists: compare it as it is
            found = lambda_.get_function(ctx.aws, d.name)
            if found is None:
                raise AwsError(f"Lambda reported {d.name} as existing, then as missing.", "Run `efsctl up` again.")
            return function_observed(d.key, found["Configuration"], found["Tags"])
        return function_observed(d.key, created, d.tags)

    def update(self, d: Function, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        fields = drift.fields()
        if fields & {"code", "architecture"}:
            response = ctx.retry(lambda: lambda_.update_code(ctx.aws, d.name, d.code, d.architecture),
                                 what=f"{d.key} code", retryable=IN_PROGRESS, timeout=CONFLICT_TIMEOUT)
            o = self.settle(d, function_observed(d.key, response, o.tags), ctx)
        if fields & {*FUNCTION_CONFIG_FIELDS, "state"}:
            config = function_config(d)
            response = ctx.retry(lambda: lambda_.update_configuration(ctx.aws, d.name, config),
                                 what=f"{d.key} configuration", retryable=_either(IN_PROGRESS, NOT_YET),
                                 timeout=CONFLICT_TIMEOUT)
            o = self.settle(d, function_observed(d.key, response, o.tags), ctx)
        missing = missing_tags(d, o)
        if missing:
            lambda_.tag_function(ctx.aws, o.arn or d.name, missing)
            o.tags.update(missing)
        return o

    def settle(self, d: Function, o: Observed, ctx: StepContext) -> Observed:
        if self.ready(o):
            return o

        def check() -> Outcome[dict[str, Any]]:
            config = lambda_.function_configuration(ctx.aws, d.name)
            if config is None:
                raise AwsError(f"Function {d.name} disappeared while efsctl waited for it.", "Run `efsctl up` again.")
            state, update = config.get("State", ""), config.get("LastUpdateStatus", "")
            if state == "Failed" or update == "Failed":
                reason = config.get("StateReason") or config.get("LastUpdateStatusReason") or "no reason given"
                code = config.get("StateReasonCode") or config.get("LastUpdateStatusReasonCode") or ""
                raise AwsError(f"Function {d.name} failed: {reason} {f'({code})' if code else ''}".rstrip() + ".",
                               "Fix the cause, then run `efsctl up` again.")
            done = state in ("Active", "Inactive") and update != "InProgress"
            detail = state if update in ("", "Successful") else f"{state}, update {update}"
            return Outcome(done=done, value=config, detail=detail)

        config = ctx.wait(check, what=f"{d.key} {d.name}", timeout=self.timeout)
        return function_observed(d.key, config or {}, o.tags) if config else o

    def delete(self, ctx: StepContext) -> str:
        done = [ctx.retry(lambda name=f.name or f.id: lambda_.delete_function(ctx.aws, name),
                          what=f"{f.id} to accept deletion", retryable=lambda_.update_in_progress)
                for f in ctx.targets]
        return said(done)


class PermissionStep(Step):
    def create(self, d: Permission, ctx: StepContext) -> Observed:
        try:
            self._add(d, ctx)
        except AwsError as exc:
            if exc.code != "ResourceConflictException" or "already exists" not in exc.message:
                raise
            for statement in lambda_.policy_statements(ctx.aws, d.function):
                if statement.get("Sid") == d.statement_id:
                    return permission_observed(d.key, d.function, statement)
            raise
        return permission_observed(d.key, d.function, permission_statement(d))

    def update(self, d: Permission, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        lambda_.remove_permission(ctx.aws, d.function, d.statement_id)
        self._add(d, ctx)
        o.attrs.update(principal=d.principal, source_arn=d.source_arn, source_account=d.source_account)
        return o

    def _add(self, d: Permission, ctx: StepContext) -> None:
        ctx.retry(lambda: lambda_.add_permission(ctx.aws, d.function, statement_id=d.statement_id,
                                                 principal=d.principal, source_arn=d.source_arn,
                                                 source_account=d.source_account),
                  what=f"{d.key}", retryable=IN_PROGRESS, timeout=CONFLICT_TIMEOUT)

    def delete(self, ctx: StepContext) -> str:
        for statement in ctx.targets:
            lambda_.remove_permission(ctx.aws, statement.attrs["function"], statement.id)
        return "removed"


def permission_statement(d: Permission) -> dict[str, Any]:
    """The resource-policy statement AddPermission makes of ``d`` (as GetPolicy lists it)."""
    condition: dict[str, Any] = {"ArnLike": {"AWS:SourceArn": d.source_arn}}
    if d.source_account:
        condition["StringEquals"] = {"AWS:SourceAccount": d.source_account}
    return {"Sid": d.statement_id, "Effect": "Allow", "Principal": {"Service": d.principal},
            "Action": "lambda:InvokeFunction", "Condition": condition}


class NotificationStep(Step):
    def create(self, d: BucketNotification, ctx: StepContext) -> Observed:
        return notification_observed(self._put(d, ctx), d.config_id)

    def update(self, d: BucketNotification, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        self._put(d, ctx)
        o.attrs.update(function=d.function, events=sorted(d.events), prefix=d.prefix)
        return o

    def delete(self, ctx: StepContext) -> str:
        names = ctx.names
        done = s3.remove_lambda_notifications(ctx.aws, names.bucket, function_arn=names.function_arn("producer"),
                                              config_id=NOTIFICATION_ID)
        return said([done], "removed")

    def _put(self, d: BucketNotification, ctx: StepContext) -> dict[str, Any]:
        """Put our configuration; returns it (one ``LambdaFunctionConfigurations`` entry)."""
        # The call replaces the bucket's whole configuration: keep everything that is not ours.
        current = s3.notification_configuration(ctx.aws, d.bucket)
        others = [c for c in current.get("LambdaFunctionConfigurations", [])
                  if c.get("Id") != d.config_id and c.get("LambdaFunctionArn") != d.function]
        ours = {"Id": d.config_id, "LambdaFunctionArn": d.function, "Events": list(d.events),
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": d.prefix}]}}}
        config = {**current, "LambdaFunctionConfigurations": others + [ours]}
        # Right after AddPermission S3 may not see it yet (AWS-RULES 13).
        ctx.retry(lambda: s3.put_notification_configuration(ctx.aws, d.bucket, config), what=f"{d.key}",
                  retryable=S3_NOT_YET, timeout=S3_VALIDATE_TIMEOUT)
        return ours


# --- the steps a teardown adds ----------------------------------------------------------------

class DetachStep(Step):
    """Empty VpcConfig (and no file system, which needs the VPC), then wait for the update.

    This only speeds things up (AWS-RULES 11): if Lambda refuses, deleting the function
    releases its interfaces too, so the refusal is reported, not fatal.
    """

    def delete(self, ctx: StepContext) -> str:
        function = ctx.targets[0]
        name = function.name or function.id

        def check() -> Outcome[None]:
            config = lambda_.function_configuration(ctx.aws, name)
            if config is None:
                return Outcome(True)
            status = config.get("LastUpdateStatus") or "Successful"
            if status == "Failed":
                raise AwsError(f"Lambda could not take {name} out of its VPC: "
                               f"{config.get('LastUpdateStatusReason') or 'no reason given'}.", code="UpdateFailed")
            return Outcome(status == "Successful", detail=f"leaving the VPC (update {status})")

        try:
            attrs = function.attrs
            if attrs.get("subnets") or attrs.get("security_groups") or attrs.get("file_systems"):
                updated = ctx.retry(lambda: lambda_.detach_from_vpc(ctx.aws, name),
                                    what=f"{name} to accept an update", retryable=lambda_.update_in_progress)
                if updated is None:
                    return "already gone"
            ctx.wait(check, what=f"{name} detached")
        except AwsError as exc:
            if exc.code in ("AccessDenied", "AccessDeniedException"):
                raise
            return f"not detached ({exc.code or exc.message}); its deletion releases the interfaces instead"
        return "detached from the VPC"


class LambdaEnisStep(Step):
    """Wait until no Lambda ENI of the stack is left; delete any left ``available``.

    Lambda deletes its ENIs itself (with the function's role, which is why the roles wait for
    this); EC2 refuses changes to their security groups, so nothing else touches them.
    """

    def delete(self, ctx: StepContext) -> str:
        assert ctx.observed is not None, "a teardown runs with its observation"
        scope = network_scope(ctx.observed)
        deleted: set[str] = set()
        seen: set[str] = set()   # every interface met, for "2 of 4 left"

        def check() -> Outcome[None]:
            enis = ec2.stack_lambda_enis(ctx.aws, **scope) if any(scope.values()) else []
            left = []
            for eni in enis:
                seen.add(eni["NetworkInterfaceId"])
                if eni.get("Status") == "available" and eni["NetworkInterfaceId"] not in deleted:
                    try:
                        if ec2.delete_network_interface(ctx.aws, eni["NetworkInterfaceId"]):
                            deleted.add(eni["NetworkInterfaceId"])
                        continue
                    except AwsError as exc:  # Lambda took it back, or is deleting it itself
                        if not exc.code.startswith("InvalidNetworkInterface"):
                            raise
                left.append(eni)
            return Outcome(not left, detail=count_enis(left, "Lambda network interface", of=len(seen)))

        try:
            ctx.wait(check, what="Lambda's network interfaces to be released", poll=ENI_POLL)
        except WaitTimeout as exc:
            exc.hint = ENI_HINT
            raise
        return f"none left{f' ({len(deleted)} deleted)' if deleted else ''}"


# The ENI drain is `down`'s critical path: polled closely, so `down` ends within a few percent of
# the moment Lambda lets go of the last interface.
ENI_POLL = WAIT_POLL

STEPS = {"role": RoleStep(), "log-group": LogGroupStep(), "function": FunctionStep(), "permission": PermissionStep(),
         "bucket-notification": NotificationStep(), "detach": DetachStep(), "enis": LambdaEnisStep()}
