"""The local cloud holds each function's role to its policies, and reports what each role used.

Each test makes its own bucket, role and function (outside a VPC: quicker, and IAM does not care),
and calls S3 (or another API) from inside the function with the role's session credentials.
"""

from __future__ import annotations

import json
import uuid

import pytest

ACCOUNT = "123456789012"


def invoke(cloud, name, event):
    response = cloud.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return json.loads(response["Payload"].read() or b"null")


def s3_call(cloud, fn, op, **args):
    return invoke(cloud, fn, {"service": "s3", "op": op, "args": args})


def log_messages(cloud, name):
    pages = cloud.client("logs").get_paginator("filter_log_events").paginate(logGroupName=f"/aws/lambda/{name}")
    return [e["message"] for page in pages for e in page["events"]]


@pytest.fixture
def bucket(cloud):
    name = f"efsctl-iam-{uuid.uuid4().hex[:8]}"
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="models/a.bin", Body=b"model a")
    s3.put_object(Bucket=name, Key="other/b.bin", Body=b"other b")
    return name


def read_models(bucket):
    return {"Sid": "ReadModels", "Effect": "Allow", "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/models/*"}


def role_name(arn):
    return arn.rsplit("/", 1)[-1]


def test_each_environment_has_its_roles_session_credentials(cloud, make_function, make_role):
    role = make_role([])
    fn = make_function("whoami", efs=False, role=role)
    found = invoke(cloud, fn, {})
    assert found["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name(role)}/{fn}"
    assert found["has"] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
    assert found["access_key_id"] != "efsctllocal"
    again = invoke(cloud, fn, {})
    assert (again["pid"], again["access_key_id"]) == (found["pid"], found["access_key_id"])   # warm: same session


def test_handler_calls_are_allowed_only_what_the_role_grants(cloud, make_function, make_role, bucket):
    role = make_role([read_models(bucket)])
    fn = make_function("aws_call", efs=False, role=role)
    assert s3_call(cloud, fn, "get_object", Bucket=bucket, Key="models/a.bin")["result"]["Body"] == "model a"
    assert s3_call(cloud, fn, "head_object", Bucket=bucket, Key="models/a.bin")["ok"]
    refused = s3_call(cloud, fn, "get_object", Bucket=bucket, Key="other/b.bin")
    principal = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name(role)}/{fn}"
    assert (refused["code"], refused["status"]) == ("AccessDenied", 403)
    assert refused["message"] == (f'User: {principal} is not authorized to perform: s3:GetObject on resource: '
                                  f'"arn:aws:s3:::{bucket}/other/b.bin" because no identity-based policy allows '
                                  "the s3:GetObject action")
    put = s3_call(cloud, fn, "put_object", Bucket=bucket, Key="models/c.bin", Body="x")
    assert put["code"] == "AccessDenied" and "s3:PutObject" in put["message"]
    listing = s3_call(cloud, fn, "list_objects_v2", Bucket=bucket, Prefix="models/")
    assert listing["code"] == "AccessDenied" and f'"arn:aws:s3:::{bucket}"' in listing["message"]
    # Without s3:ListBucket a missing key is 403, not 404, as on AWS.
    missing = s3_call(cloud, fn, "get_object", Bucket=bucket, Key="models/none.bin")
    assert (missing["code"], missing["message"]) == ("AccessDenied", "Access Denied")
    # The SDK's error, as the handler printed it, is in the function's log.
    assert any(m.startswith("AccessDenied: An error occurred (AccessDenied) when calling the GetObject operation: "
                            f"User: {principal}") and "other/b.bin" in m for m in log_messages(cloud, fn))
    # The operator's own calls stay allowed.
    cloud.client("s3").put_object(Bucket=bucket, Key="outputs/by-operator.json", Body=b"{}")


def test_a_changed_policy_applies_to_the_next_call_of_a_warm_environment(cloud, make_function, make_role, bucket):
    role = make_role([read_models(bucket)])
    fn = make_function("aws_call", efs=False, role=role)
    iam = cloud.client("iam")
    first = s3_call(cloud, fn, "get_object", Bucket=bucket, Key="models/a.bin")
    iam.put_role_policy(RoleName=role_name(role), PolicyName="efsctl", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}]}))
    denied = s3_call(cloud, fn, "get_object", Bucket=bucket, Key="models/a.bin")
    iam.put_role_policy(RoleName=role_name(role), PolicyName="efsctl", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [read_models(bucket)]}))
    restored = s3_call(cloud, fn, "get_object", Bucket=bucket, Key="models/a.bin")
    assert (first["ok"], denied["code"], restored["ok"]) == (True, "AccessDenied", True)
    assert first["pid"] == denied["pid"] == restored["pid"]


def test_a_bucket_policy_deny_on_the_role_wins_over_its_allow_and_spares_the_operator(cloud, make_function, make_role,
                                                                                      bucket):
    role = make_role([read_models(bucket)])
    fn = make_function("aws_call", efs=False, role=role)
    s3 = cloud.client("s3")
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "NotThisRole", "Effect": "Deny", "Principal": {"AWS": role}, "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/models/*"}]}))
    refused = s3_call(cloud, fn, "get_object", Bucket=bucket, Key="models/a.bin")
    assert refused["code"] == "AccessDenied"
    assert refused["message"].endswith(f'on resource: "arn:aws:s3:::{bucket}/models/a.bin" with an explicit deny in a '
                                       "resource-based policy")
    assert s3.get_object(Bucket=bucket, Key="models/a.bin")["Body"].read() == b"model a"


def test_a_bucket_policy_allow_for_the_role_is_enough_in_one_account(cloud, make_function, make_role, bucket):
    fn = make_function("aws_call", efs=False, role=(role := make_role([])))
    cloud.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": role}, "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/other/*"}]}))
    assert s3_call(cloud, fn, "get_object", Bucket=bucket, Key="other/b.bin")["result"]["Body"] == "other b"
    assert s3_call(cloud, fn, "get_object", Bucket=bucket, Key="models/a.bin")["code"] == "AccessDenied"


def test_the_tls_only_deny_spares_the_handlers_and_conditions_are_evaluated(cloud, make_function, make_role, bucket):
    fn = make_function("aws_call", efs=False, role=make_role([read_models(bucket)]))
    s3 = cloud.client("s3")

    def policy(secure: str) -> str:
        return json.dumps({"Version": "2012-10-17", "Statement": [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": secure}}}]})

    s3.put_bucket_policy(Bucket=bucket, Policy=policy("false"))   # the stack's own policy
    assert s3_call(cloud, fn, "get_object", Bucket=bucket, Key="models/a.bin")["ok"]
    s3.put_bucket_policy(Bucket=bucket, Policy=policy("true"))    # every call counts as TLS: now denied
    refused = s3_call(cloud, fn, "get_object", Bucket=bucket, Key="models/a.bin")
    assert refused["code"] == "AccessDenied" and "explicit deny in a resource-based policy" in refused["message"]
    s3.delete_bucket_policy(Bucket=bucket)


def test_other_services_answer_access_denied_exception(cloud, make_function, make_role):
    role = make_role([])
    fn = make_function("aws_call", efs=False, role=role)
    refused = invoke(cloud, fn, {"service": "lambda", "op": "get_function", "args": {"FunctionName": fn}})
    assert (refused["code"], refused["status"]) == ("AccessDeniedException", 403)
    assert refused["message"] == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{role_name(role)}/{fn} is not authorized to "
        f"perform: lambda:GetFunction on resource: arn:aws:lambda:us-east-1:{ACCOUNT}:function:{fn} because no "
        "identity-based policy allows the lambda:GetFunction action")
    allowed = make_function("aws_call", efs=False, role=make_role([
        {"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": f"arn:aws:lambda:*:{ACCOUNT}:function:*"}]))
    assert invoke(cloud, allowed, {"service": "lambda", "op": "get_function", "args": {"FunctionName": fn}})["ok"]
    assert invoke(cloud, fn, {"service": "sts", "op": "get_caller_identity"})["ok"]   # always allowed


def test_a_role_that_may_not_write_its_logs_loses_them(cloud, make_function, make_role):
    fn = make_function("plain", efs=False, role=make_role([], basic=False))
    assert invoke(cloud, fn, {}) == {"hello": "world"}
    with pytest.raises(cloud.client("logs").exceptions.ResourceNotFoundException):
        log_messages(cloud, fn)   # not even the log group: Lambda could not create it
    report = cloud.control("/_efsctl/iam")["functions"][fn]
    assert {(d["action"], d["by"]) for d in report["denied"]} == {
        ("logs:CreateLogGroup", "lambda"), ("logs:CreateLogStream", "lambda"), ("logs:PutLogEvents", "lambda")}


def test_the_report_lists_used_denied_and_unused_grants_and_persists(cloud, make_function, make_role, bucket):
    role = make_role([read_models(bucket),
                      {"Sid": "Spare", "Effect": "Allow", "Action": "s3:DeleteObject", "Resource": "*"}])
    fn = make_function("aws_call", efs=False, role=role)
    s3_call(cloud, fn, "get_object", Bucket=bucket, Key="models/a.bin")
    s3_call(cloud, fn, "get_object", Bucket=bucket, Key="other/b.bin")
    doc = cloud.control("/_efsctl/iam?flush=1")
    report = doc["functions"][fn]
    assert report["role"] == role and report["exists"]
    handler = [(u["action"], u["resource"], u["count"]) for u in report["used"] if u["by"] == "handler"]
    assert handler == [("s3:GetObject", f"arn:aws:s3:::{bucket}/models/*", 1)]
    assert {u["action"] for u in report["used"] if u["by"] == "lambda"} == {
        "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}   # its group did not exist yet
    assert [(d["action"], d["resource"]) for d in report["denied"]] == [
        ("s3:GetObject", f"arn:aws:s3:::{bucket}/other/b.bin")]
    assert [(u["action"], u["statement"]) for u in report["unexplained"]] == [("s3:DeleteObject", "efsctl/Spare")]
    saved = json.loads((cloud.data_dir / "iam-usage.json").read_text())
    assert {e["action"] for e in saved["functions"][fn]["entries"].values()} >= {"s3:GetObject", "logs:PutLogEvents"}


def test_any_role_session_is_held_to_its_role_and_a_foreign_token_is_refused(cloud, make_role, bucket):
    import boto3
    from botocore.exceptions import ClientError

    role = make_role([read_models(bucket)])
    found = cloud.client("sts").assume_role(RoleArn=role, RoleSessionName="someone")["Credentials"]

    def s3(token):
        return boto3.client("s3", endpoint_url=cloud.endpoint_url, region_name="us-east-1",
                            aws_access_key_id=found["AccessKeyId"], aws_secret_access_key=found["SecretAccessKey"],
                            aws_session_token=token)

    assert s3(found["SessionToken"]).get_object(Bucket=bucket, Key="models/a.bin")["Body"].read() == b"model a"
    with pytest.raises(ClientError) as denied:
        s3(found["SessionToken"]).get_object(Bucket=bucket, Key="other/b.bin")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert f"assumed-role/{role_name(role)}/someone is not authorized" in denied.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as forged:
        s3("not-the-token").get_object(Bucket=bucket, Key="models/a.bin")
    assert forged.value.response["Error"]["Code"] == "InvalidToken"


def test_an_expired_session_is_refused():
    from efsctl.local.fidelity.iam_sessions import Session, token_problem

    session = Session("ASIAX", "token", "arn:aws:iam::1:role/r", "f", "1", expiration=0.0)
    assert token_problem(session, "token") == "expired"
    assert token_problem(session, "other") == "invalid"
    assert token_problem(Session("ASIAX", "token", "r", "f", "1", expiration=4e9), "token") is None


def test_a_file_system_policy_that_refuses_the_role_stops_the_environment(cloud, network, make_role):
    from localhelpers import handler_zip

    efs, lam = cloud.client("efs"), cloud.client("lambda")
    fs = efs.create_file_system(CreationToken=f"iam-{uuid.uuid4().hex[:6]}", Encrypted=True)["FileSystemId"]
    for subnet in network.subnet_ids:
        efs.create_mount_target(FileSystemId=fs, SubnetId=subnet, SecurityGroups=[network.sg_id])
    ap = efs.create_access_point(FileSystemId=fs, PosixUser={"Uid": 1000, "Gid": 1000},
                                 RootDirectory={"Path": "/lambda", "CreationInfo": {
                                     "OwnerUid": 1000, "OwnerGid": 1000, "Permissions": "750"}})["AccessPointArn"]
    role = make_role([{"Effect": "Allow", "Resource": "*",
                       "Action": ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
                                  "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface"]}])
    fs_arn = f"arn:aws:elasticfilesystem:us-east-1:{ACCOUNT}:file-system/{fs}"
    efs.put_file_system_policy(FileSystemId=fs, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/someone-else"},
         "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"], "Resource": fs_arn}]}))
    name = f"fn-mount-{uuid.uuid4().hex[:6]}"
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="app.plain",
                        Code={"ZipFile": handler_zip()}, Timeout=10,
                        VpcConfig={"SubnetIds": network.subnet_ids, "SecurityGroupIds": [network.sg_id]},
                        FileSystemConfigs=[{"Arn": ap, "LocalMountPath": "/mnt/efs"}])
    refused = invoke(cloud, name, {})
    assert refused["errorType"] == "EFSMountFailureException" and ap in refused["errorMessage"]
    denied = cloud.control("/_efsctl/iam")["functions"][name]["denied"]
    assert ("elasticfilesystem:ClientMount", fs_arn) in {(d["action"], d["resource"]) for d in denied}
    efs.put_file_system_policy(FileSystemId=fs, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": role}, "Action": "elasticfilesystem:ClientMount", "Resource": fs_arn}]}))
    assert invoke(cloud, name, {}) == {"hello": "world"}
