"""`down` against in-process moto: after a full `up` nothing is left, in the documented order."""

from __future__ import annotations

import pytest

from down_support import Recorder, build, names, nothing_left, put_objects
from efsctl.aws import s3 as s3_layer
from efsctl.stack import teardown as td
from efsctl.waits import FakeClock


def down(aws, stack, **kwargs):
    result = td.teardown(aws, stack, clock=FakeClock(), **kwargs)
    result.raise_for_error()
    return result


@pytest.fixture
def built(make_aws, new_stack):
    """A stack `up` just created; the call log starts empty."""
    aws, calls = make_aws()
    stack = new_stack()
    deployment = build(aws, stack)
    calls.clear()
    return aws, calls, stack, (deployment.resources["vpc"].id,)


def test_down_after_a_full_up_leaves_nothing(built, monkeypatch):
    aws, calls, stack, vpc = built
    monkeypatch.setattr(s3_layer, "DELETE_BATCH", 7)  # several pages and batches, not 1000 objects
    put_objects(aws, names(stack).bucket, [f"outputs/{i}.json" for i in range(6)], body=b"abcd", versions=2,
                delete_markers=True)
    result = down(aws, stack)
    assert nothing_left(aws, stack, vpc) == {}
    doc = td.summary(result)
    assert doc["objects_deleted"] == 18 and doc["bytes_deleted"] == 48  # 12 versions of 4 bytes, 6 markers
    assert doc["left"] == [] and "lambda-enis" in [s["step"] for s in doc["steps"]]
    deleted = {(d["key"], d["id"]) for d in doc["deleted"]}
    assert ("bucket", names(stack).bucket) in deleted and ("vpc", vpc[0]) in deleted
    assert {d["key"] for d in doc["deleted"]} == {
        "s3-notification", "s3-permission", "api-permission", "api", "fn-producer", "fn-consumer", "role-producer",
        "role-consumer", "access-point", "mt-a", "mt-b", "efs", "sg-efs", "sg-lambda", "s3-endpoint", "route-table",
        "subnet-a", "subnet-b", "vpc", "bucket", "log-producer", "log-consumer"}
    assert sum(1 for op in calls.ops() if op == "DeleteObjects") >= 3


def test_down_deletes_in_the_documented_order(built):
    aws, _, stack, _ = built
    n = names(stack)
    put_objects(aws, n.bucket, ["outputs/a.json"])
    calls = Recorder(aws)
    down(aws, stack)
    for which in ("producer", "consumer"):
        detach = calls.first("UpdateFunctionConfiguration", FunctionName=n.function(which))
        assert calls.items[detach][1]["VpcConfig"] == {"SubnetIds": [], "SecurityGroupIds": []}
        assert detach < calls.first("DeleteFunction", FunctionName=n.function(which))
        # roles only after the ENI check (the last look for Lambda's ENIs found none)
        assert calls.last("DescribeNetworkInterfaces") < calls.first("DeleteRolePolicy", RoleName=n.role(which))
        assert calls.first("DeleteFunction", FunctionName=n.function(which)) < \
            calls.first("DeleteLogGroup", logGroupName=n.log_group(which))
    # mount targets gone (described as such) before the file system
    assert calls.last("DeleteMountTarget") < calls.last("DescribeMountTargets") < calls.first("DeleteFileSystem")
    assert calls.last("DisassociateRouteTable") < calls.first("DeleteRouteTable")
    assert calls.first("RevokeSecurityGroupIngress") < calls.first("DeleteSecurityGroup")
    assert max(calls.last("DeleteVpcEndpoints"), calls.last("DeleteSubnet"), calls.last("DeleteRouteTable"),
               calls.last("DeleteSecurityGroup")) < calls.first("DeleteVpc")
    assert calls.last("DeleteObjects") < calls.first("DeleteBucket")
    notification = calls.first("PutBucketNotificationConfiguration")
    assert calls.items[notification][1]["NotificationConfiguration"] == {}
    assert notification < calls.first("DeleteFunction", FunctionName=n.function("producer"))
    assert calls.first("DeleteApi") < calls.first("DeleteFunction", FunctionName=n.function("consumer"))


def test_down_twice_is_harmless(built):
    aws, calls, stack, vpc = built
    down(aws, stack)
    calls.clear()
    plan = td.prepare(aws, stack)
    assert plan.empty
    result = td.run_teardown(plan, aws, clock=FakeClock())
    assert result.error is None and calls.mutating == [] and td.summary(result)["deleted"] == []
    assert nothing_left(aws, stack, vpc) == {}


def test_keep_bucket_keeps_the_bucket_and_its_objects_but_not_the_notification(built):
    aws, calls, stack, vpc = built
    bucket = names(stack).bucket
    put_objects(aws, bucket, ["outputs/kept.json"])
    result = down(aws, stack, keep_bucket=True)
    assert nothing_left(aws, stack, vpc) == {"bucket": [bucket]}
    s3 = aws.client("s3")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["outputs/kept.json"]
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(Bucket=bucket)
    assert td.summary(result)["kept"] == [{"key": "bucket", "kind": "bucket", "id": bucket}]
    # a later full `down` takes the bucket too
    down(aws, stack)
    assert nothing_left(aws, stack, vpc) == {}


def test_keep_bucket_keeps_notifications_that_are_not_ours(built):
    aws, calls, stack, _ = built
    n = names(stack)
    s3 = aws.client("s3")
    config = s3.get_bucket_notification_configuration(Bucket=n.bucket)
    other = {"Id": "someone-else", "QueueArn": "arn:aws:sqs:us-east-1:123456789012:q", "Events": ["s3:ObjectRemoved:*"]}
    s3.put_bucket_notification_configuration(Bucket=n.bucket, NotificationConfiguration={
        "LambdaFunctionConfigurations": config["LambdaFunctionConfigurations"], "QueueConfigurations": [other]})
    down(aws, stack, keep_bucket=True)
    left = s3.get_bucket_notification_configuration(Bucket=n.bucket)
    assert "LambdaFunctionConfigurations" not in left and left["QueueConfigurations"][0]["Id"] == "someone-else"
    down(aws, stack)
