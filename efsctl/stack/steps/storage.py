"""Steps for storage: the EFS file system, its mount targets and access point, the S3 bucket."""

from __future__ import annotations

from efsctl.aws import efs, s3
from efsctl.aws.tags import tag_dict
from efsctl.stack.drift import Drift, canonical, missing_tags
from efsctl.stack.model import AccessPoint, Bucket, FileSystem, MountTarget
from efsctl.stack.observe import Observed
from efsctl.stack.steps import Step, StepContext


class FileSystemStep(Step):
    timeout = 600.0

    def create(self, d: FileSystem, ctx: StepContext) -> Observed:
        fs = efs.create_file_system(ctx.aws, d.creation_token, encrypted=d.encrypted, throughput_mode=d.throughput_mode,
                                    performance_mode=d.performance_mode, tags=d.tags)
        return Observed(d.key, d.kind, fs["FileSystemId"], arn=fs.get("FileSystemArn"),
                        state=fs.get("LifeCycleState", "creating"), tags=tag_dict(fs.get("Tags")),
                        attrs={"encrypted": bool(fs.get("Encrypted")), "throughput_mode": fs.get("ThroughputMode"),
                               "performance_mode": fs.get("PerformanceMode")})

    def update(self, d: FileSystem, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        if "throughput_mode" in drift.fields():
            efs.set_throughput_mode(ctx.aws, o.id, d.throughput_mode)
        _retag(d, o, ctx)
        return o

    def poll_state(self, d: FileSystem, o: Observed, ctx: StepContext) -> str | None:
        fs = efs.describe_file_system(ctx.aws, o.id)
        return fs.get("LifeCycleState") if fs else None


class MountTargetStep(Step):
    timeout = 1200.0  # usually 1-2 minutes, sometimes more than 10

    def create(self, d: MountTarget, ctx: StepContext) -> Observed:
        target = ctx.visible(lambda: efs.create_mount_target(ctx.aws, d.file_system, d.subnet,
                                                             list(d.security_groups)), "create")
        return Observed(d.key, d.kind, target["MountTargetId"], state=target.get("LifeCycleState", "creating"),
                        attrs={"file_system": d.file_system, "subnet": target.get("SubnetId", d.subnet),
                               "zone": target.get("AvailabilityZoneName"),
                               # As requested: DescribeMountTargetSecurityGroups may refuse a
                               # mount target whose network interface is still being made.
                               "security_groups": sorted(d.security_groups)})

    def update(self, d: MountTarget, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        if "security_groups" in drift.fields():
            efs.set_mount_target_security_groups(ctx.aws, o.id, list(d.security_groups))
            o.attrs["security_groups"] = sorted(d.security_groups)
        return o

    def poll_state(self, d: MountTarget, o: Observed, ctx: StepContext) -> str | None:
        target = efs.describe_mount_target(ctx.aws, o.id)
        return target.get("LifeCycleState") if target else None


class AccessPointStep(Step):
    timeout = 300.0

    def create(self, d: AccessPoint, ctx: StepContext) -> Observed:
        point = efs.create_access_point(ctx.aws, d.file_system, posix_user=d.posix_user,
                                        root_directory=d.root_directory, tags=d.tags)
        return Observed(d.key, d.kind, point["AccessPointId"], arn=point["AccessPointArn"],
                        state=point.get("LifeCycleState", "creating"), tags=tag_dict(point.get("Tags")),
                        attrs={"file_system": d.file_system, "posix_user": point.get("PosixUser") or d.posix_user,
                               "root_directory": point.get("RootDirectory") or d.root_directory})

    def update(self, d: AccessPoint, o: Observed, drift: Drift, ctx: StepContext) -> Observed:
        _retag(d, o, ctx)
        return o

    def poll_state(self, d: AccessPoint, o: Observed, ctx: StepContext) -> str | None:
        point = efs.describe_access_point(ctx.aws, o.id)
        return point.get("LifeCycleState") if point else None


class BucketStep(Step):
    def create(self, d: Bucket, ctx: StepContext) -> Observed:
        if not s3.create_bucket(ctx.aws, d.name, d.region):
            return Observed(d.key, d.kind, d.name, arn=ctx.names.bucket_arn, name=d.name,
                            tags=s3.bucket_tags(ctx.aws, d.name),
                            attrs={"public_access_block": s3.public_access_block(ctx.aws, d.name),
                                   "encryption": s3.default_encryption(ctx.aws, d.name),
                                   "policy": s3.bucket_policy(ctx.aws, d.name)})
        # Report a new bucket bare so the update sets public access block, encryption, policy
        # and tags explicitly (AWS defaults a new bucket to some of them; moto to none).
        return Observed(d.key, d.kind, d.name, arn=ctx.names.bucket_arn, name=d.name,
                        attrs={"public_access_block": None, "encryption": None, "policy": None})

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
