"""Steps for storage: the EFS file system, its mount targets and access point, the S3 bucket."""

from __future__ import annotations

from efsctl.aws import efs, s3
from efsctl.errors import AwsError
from efsctl.stack.drift import Drift, canonical, missing_tags
from efsctl.stack.model import AccessPoint, Bucket, FileSystem, MountTarget
from efsctl.stack.observed import (Observed, access_point_observed, bucket_observed, file_system_observed, filled,
                                   mount_target_observed)
from efsctl.stack.steps.base import Step, StepContext, error_code, said
from efsctl.waits import Outcome

DELETING = {"deleting", "deleted"}  # EFS lifecycle states of something already on its way out


class FileSystemStep(Step):
    timeout = 600.0

    def create(self, d: FileSystem, ctx: StepContext) -> Observed:
        fs = efs.create_file_system(ctx.aws, d.creation_token, encrypted=d.encrypted, throughput_mode=d.throughput_mode,
                                    performance_mode=d.performance_mode, tags=d.tags)
        return file_system_observed(filled(fs, LifeCycleState="creating"))

    def update(self, d: FileSystem, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        if "throughput_mode" in drift.fields():
            efs.set_throughput_mode(ctx.aws, o.id, d.throughput_mode)
        _retag(d, o, ctx)
        return o

    def poll_state(self, d: FileSystem, o: Observed, ctx: StepContext) -> str | None:
        fs = efs.describe_file_system(ctx.aws, o.id)
        return fs.get("LifeCycleState") if fs else None

    def delete(self, ctx: StepContext) -> str:
        """Sweep any mount target still listed (extras included), then delete, retrying
        ``FileSystemInUse`` while EFS finishes removing them (AWS-RULES 26)."""
        done = []
        for fs in [t for t in ctx.targets if t.kind == "efs"]:
            if fs.state in DELETING:
                continue
            left = [(mt["MountTargetId"], mt.get("LifeCycleState", "")) for mt in efs.mount_targets(ctx.aws, fs.id)
                    if mt.get("LifeCycleState") != "deleted"]
            if left:
                _delete_mount_targets(ctx, left, f"the mount targets of {fs.id} to be deleted")
            done.append(ctx.retry(lambda fs_id=fs.id: efs.delete_file_system(ctx.aws, fs_id),
                                  what=f"{fs.id} deletion",
                                  retryable=lambda exc: "mount targets still being deleted"
                                  if error_code(exc) == "FileSystemInUse" else None))
        return said(done)


class MountTargetStep(Step):
    timeout = 1200.0  # usually 1-2 minutes, sometimes more than 10

    def create(self, d: MountTarget, ctx: StepContext) -> Observed:
        target = ctx.visible(lambda: efs.create_mount_target(ctx.aws, d.file_system, d.subnet,
                                                             list(d.security_groups)), "create")
        # The security groups as requested: DescribeMountTargetSecurityGroups may refuse a mount
        # target whose network interface is still being made.
        return mount_target_observed(filled(target, LifeCycleState="creating", FileSystemId=d.file_system,
                                            SubnetId=d.subnet), list(d.security_groups), key=d.key)

    def update(self, d: MountTarget, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        if "security_groups" in drift.fields():
            efs.set_mount_target_security_groups(ctx.aws, o.id, list(d.security_groups))
            o.attrs["security_groups"] = sorted(d.security_groups)
        return o

    def poll_state(self, d: MountTarget, o: Observed, ctx: StepContext) -> str | None:
        target = efs.describe_mount_target(ctx.aws, o.id)
        return target.get("LifeCycleState") if target else None

    def delete(self, ctx: StepContext) -> str:
        return said(_delete_mount_targets(ctx, [(mt.id, mt.state) for mt in ctx.targets], f"{ctx.key} to be deleted"))


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


class AccessPointStep(Step):
    timeout = 300.0

    def create(self, d: AccessPoint, ctx: StepContext) -> Observed:
        point = efs.create_access_point(ctx.aws, d.file_system, posix_user=d.posix_user,
                                        root_directory=d.root_directory, tags=d.tags)
        return access_point_observed(filled(point, LifeCycleState="creating", FileSystemId=d.file_system,
                                            PosixUser=d.posix_user, RootDirectory=d.root_directory))

    def update(self, d: AccessPoint, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        _retag(d, o, ctx)
        return o

    def poll_state(self, d: AccessPoint, o: Observed, ctx: StepContext) -> str | None:
        point = efs.describe_access_point(ctx.aws, o.id)
        return point.get("LifeCycleState") if point else None

    def delete(self, ctx: StepContext) -> str:
        return said([efs.delete_access_point(ctx.aws, point.id) for point in ctx.targets])


class BucketStep(Step):
    def create(self, d: Bucket, ctx: StepContext) -> Observed:
        if not s3.create_bucket(ctx.aws, d.name, d.region):
            return bucket_observed(ctx.names, tags=s3.bucket_tags(ctx.aws, d.name),
                                   public_access_block=s3.public_access_block(ctx.aws, d.name),
                                   encryption=s3.default_encryption(ctx.aws, d.name),
                                   policy=s3.bucket_policy(ctx.aws, d.name))
        # Report a new bucket bare so the update sets public access block, encryption, policy
        # and tags explicitly (AWS defaults a new bucket to some of them; moto to none).
        return bucket_observed(ctx.names, tags={}, public_access_block=None, encryption=None, policy=None)

    def update(self, d: Bucket, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        fields = drift.fields()
        if "public_access_block" in fields:
            ctx.visible(lambda: s3.put_public_access_block(ctx.aws, d.name, d.public_access_block),
                        "public access block")
        if "encryption" in fields:
            ctx.visible(lambda: s3.put_default_encryption(ctx.aws, d.name, d.encryption), "encryption")
        if "policy" in fields:
            policy = merged_policy(d.policy, o.attrs["policy"])
            ctx.visible(lambda: s3.put_bucket_policy(ctx.aws, d.name, policy), "policy")
        missing = missing_tags(d, o)
        if missing:
            # PutBucketTagging replaces the whole set: keep tags others put there.
            tags = {**o.tags, **missing}
            ctx.visible(lambda: s3.put_bucket_tags(ctx.aws, d.name, tags), "tags")
            o.tags.update(missing)
        return o

    def delete(self, ctx: StepContext) -> str:
        """Every object version and delete marker first (1000 per call), then the bucket."""
        name = ctx.targets[0].id
        totals = {"objects": 0, "bytes": 0}
        began = ctx.clock.now()

        def progress(count: int, size: int) -> None:
            ctx.progress(f"{name} to be emptied", ctx.clock.now() - began,
                         f"emptying: {totals['objects'] + count} objects deleted")

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
                             retryable=lambda exc: "an object arrived while emptying"
                             if error_code(exc) == "BucketNotEmpty" else None)
        finally:
            ctx.counts.update(totals)
        return f"{said([done])} ({totals['objects']} objects, {totals['bytes']} bytes)"


def merged_policy(desired: dict, observed: dict | None) -> dict:
    """Our statements added to (or replacing same-Sid ones in) whatever policy is there."""
    ours = desired.get("Statement", [])
    sids = {s.get("Sid") for s in ours}
    theirs = [s for s in (observed or {}).get("Statement", []) if s.get("Sid") not in sids
              and canonical(s) not in [canonical(o) for o in ours]]
    return {"Version": desired.get("Version", "2012-10-17"), "Statement": theirs + list(ours)}


def _retag(d, o: Observed, ctx: StepContext) -> None:
    missing = missing_tags(d, o)
    if missing:
        efs.tag_resource(ctx.aws, o.id, missing)
        o.tags.update(missing)


STEPS = {"efs": FileSystemStep(), "mount-target": MountTargetStep(), "access-point": AccessPointStep(),
         "bucket": BucketStep()}
