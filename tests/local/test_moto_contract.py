"""Contract with moto's internals: fails loudly, naming what moved, when a moto upgrade moves them.

The local cloud patches moto (``efsctl/local/fidelity/``) and reads its models
(``efsctl/local/moto_models.py``, ``efsctl/local/daemon.py``). pyproject pins moto to the minor
series these tests were written against; upgrading it means running this file first.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from importlib.metadata import version

import pytest

from efsctl.local import fidelity, moto_models

PINNED_MINOR = "5.2."


def test_moto_is_the_pinned_minor_series():
    assert version("moto").startswith(PINNED_MINOR), (
        f"moto {version('moto')} is installed but the local cloud is tested against {PINNED_MINOR}x: "
        "run tests/local/test_moto_contract.py and the local cloud tests before moving the pin.")


@pytest.mark.parametrize("patch", fidelity.registry(), ids=lambda p: p.name)
def test_every_patched_internal_is_where_we_expect(patch):
    moved = [problem for target in patch.targets if (problem := target.check())]
    assert not moved, f"fidelity patch {patch.name!r}: " + "; ".join(moved)


def test_server_internals_the_daemon_uses():
    from moto.core.base_backend import AccountSpecificBackend
    from moto.core.config import default_user_config
    from moto.ec2.models import availability_zones_and_regions
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

    dispatcher = DomainDispatcherApplication(create_backend_app)
    assert hasattr(dispatcher, "lock") and isinstance(dispatcher.app_instances, dict)
    assert callable(MotoRequestHandler.make_environ)
    assert "load_aws_managed_policies" in default_user_config["iam"]
    assert callable(AccountSpecificBackend.get_session)
    assert hasattr(availability_zones_and_regions, "Session"), "fast_moto_import's shared session is now useless"


def test_startup_shortcuts_still_apply():
    import inspect

    from moto import settings
    from moto.core.base_backend import AccountSpecificBackend

    from efsctl.local.startup import all_regions

    assert tuple(inspect.signature(AccountSpecificBackend._generate_regions.__wrapped__).parameters) == \
        ("self", "service_name")
    assert "us-east-1" in all_regions() and "eu-west-1" in all_regions()
    assert "MOTO_EC2_LOAD_DEFAULT_AMIS" in inspect.getsource(settings.ec2_load_default_amis)
    import moto.core.utils

    assert "create_loader()" in inspect.getsource(moto.core.utils._load_service_model)
    assert "Session()" in inspect.getsource(moto.core.utils.service_name_from_moto_package_name)
    import moto.iam.models

    assert tuple(inspect.signature(moto.iam.models.get_account_id_from).parameters) == ("access_key",)
    assert "from moto.iam.models import get_account_id_from" in inspect.getsource(
        __import__("moto.core.responses", fromlist=["x"]).BaseResponse.get_current_account)
    source = inspect.getsource(__import__("moto.apigateway.models", fromlist=["x"]))
    assert "from openapi_spec_validator import validate" in source
    assert "from openapi_spec_validator.validation.exceptions import OpenAPIValidationError" in source


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("app.py", "def handler(e, c):\n    return 1\n")
    return buf.getvalue()


def test_models_read_by_the_local_cloud(moto_aws, tmp_path):
    import boto3

    region = "us-east-1"
    iam, lam, efs = boto3.client("iam"), boto3.client("lambda"), boto3.client("efs")
    apigw, logs = boto3.client("apigatewayv2"), boto3.client("logs")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = _zip()
    lam.create_function(FunctionName="f", Runtime="python3.12", Role=role, Handler="app.handler",
                        Code={"ZipFile": code}, Timeout=7, MemorySize=256, Environment={"Variables": {"A": "1"}})
    lam.add_permission(FunctionName="f", StatementId="s", Action="lambda:InvokeFunction",
                       Principal="apigateway.amazonaws.com")
    fs = efs.create_file_system(CreationToken="t")["FileSystemId"]
    ap = efs.create_access_point(FileSystemId=fs, RootDirectory={"Path": "/lambda"})["AccessPointId"]

    fn = moto_models.find_function(moto_models.ACCOUNT_ID, region, "f")
    assert fn is not None and moto_models.find_function(moto_models.ACCOUNT_ID, region, "missing") is None
    spec = moto_models.function_spec(fn, tmp_path)
    assert (spec.name, spec.handler, spec.timeout, spec.memory_mb) == ("f", "app.handler", 7.0, 256)
    assert spec.code == code and len(spec.code_digest) == 64 and dict(spec.environment) == {"A": "1"}
    assert moto_models.code_sha256(spec.code) == lam.get_function(FunctionName="f")["Configuration"]["CodeSha256"]
    assert moto_models.function_policy_statements(fn)[0]["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert moto_models.vpc_config(fn) is None
    assert moto_models.access_point(moto_models.ACCOUNT_ID, region, ap) == {
        "file_system_id": fs, "path": "/lambda", "creation_info": {}, "posix_user": None}

    api = apigw.create_api(Name="a", ProtocolType="HTTP", Tags={"efsctl:stack": "s"})["ApiId"]
    integration = apigw.create_integration(ApiId=api, IntegrationType="AWS_PROXY", IntegrationUri=fn.function_arn,
                                           PayloadFormatVersion="2.0")["IntegrationId"]
    apigw.create_route(ApiId=api, RouteKey="POST /p", Target=f"integrations/{integration}",
                       AuthorizationType="AWS_IAM")
    apigw.create_stage(ApiId=api, StageName="$default", AutoDeploy=True)
    [(api_region, model)] = moto_models.http_apis(moto_models.ACCOUNT_ID)
    assert api_region == region and moto_models.api_tags(region, moto_models.ACCOUNT_ID, model) == {"efsctl:stack": "s"}
    view = moto_models.api_view(model)
    assert view["routes"][0]["key"] == "POST /p" and view["routes"][0]["auth"] == "AWS_IAM"
    assert view["integrations"][integration] == {"type": "AWS_PROXY", "uri": fn.function_arn, "payload": "2.0",
                                                 "timeout_ms": 30000}
    assert view["stages"] == ["$default"]

    moto_models.put_log_lines(moto_models.ACCOUNT_ID, region, "/aws/lambda/f", "s1",
                              [{"timestamp": int(time.time() * 1000), "message": "hello"}])
    events = logs.get_log_events(logGroupName="/aws/lambda/f", logStreamName="s1")["events"]
    assert [e["message"] for e in events] == ["hello"]


def test_patches_install_and_undo(moto_aws, tmp_path):
    from moto.awslambda.models import LambdaFunction
    from moto.s3 import notifications
    from moto.s3.models import FakeBucket

    originals = (LambdaFunction.invoke, LambdaFunction.get_configuration, notifications._get_s3_event,
                 FakeBucket.get_permission)
    ctx = fidelity.PatchContext(account_id=moto_models.ACCOUNT_ID, region="us-east-1", data_dir=tmp_path)
    patcher = fidelity.install(ctx)
    assert LambdaFunction.invoke is not originals[0] and notifications._get_s3_event is not originals[2]
    patcher.undo()
    assert (LambdaFunction.invoke, LambdaFunction.get_configuration, notifications._get_s3_event,
            FakeBucket.get_permission) == originals
    assert "file_system_configs" not in json.dumps(list(vars(LambdaFunction)))


# --- persistence (efsctl/local/persist): the moto internals a snapshot relies on ---------------------

def _stack_in_moto(code: bytes) -> None:
    """A small stack of the kinds efsctl builds, made through the APIs."""
    import boto3

    ec2, efs, iam, lam = boto3.client("ec2"), boto3.client("efs"), boto3.client("iam"), boto3.client("lambda")
    s3, logs, apigw = boto3.client("s3"), boto3.client("logs"), boto3.client("apigatewayv2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
    fs = efs.create_file_system(CreationToken="t", Encrypted=True)["FileSystemId"]
    efs.create_mount_target(FileSystemId=fs, SubnetId=subnet, SecurityGroups=[group])
    efs.create_access_point(FileSystemId=fs, RootDirectory={"Path": "/lambda"})
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "lambda.amazonaws.com"}}]}
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.attach_role_policy(RoleName="r", PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")
    iam.put_role_policy(RoleName="r", PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    lam.create_function(FunctionName="f", Runtime="python3.12", Role=role, Handler="app.handler",
                        Code={"ZipFile": code}, VpcConfig={"SubnetIds": [subnet], "SecurityGroupIds": [group]})
    lam.add_permission(FunctionName="f", StatementId="s", Action="lambda:InvokeFunction", Principal="s3.amazonaws.com")
    s3.create_bucket(Bucket="efsctl-contract")
    s3.put_bucket_versioning(Bucket="efsctl-contract", VersioningConfiguration={"Status": "Enabled"})
    for body in (b"one", b"two"):
        s3.put_object(Bucket="efsctl-contract", Key="models/m.bin", Body=body, Metadata={"sha256": "x"})
    s3.put_object(Bucket="efsctl-contract", Key="gone", Body=b"x")
    s3.delete_object(Bucket="efsctl-contract", Key="gone")
    s3.create_multipart_upload(Bucket="efsctl-contract", Key="pending")
    logs.create_log_group(logGroupName="/aws/lambda/f")
    logs.create_log_stream(logGroupName="/aws/lambda/f", logStreamName="s")
    logs.put_log_events(logGroupName="/aws/lambda/f", logStreamName="s",
                        logEvents=[{"timestamp": int(time.time() * 1000) + i, "message": f"line {i}"} for i in range(3)])
    api = apigw.create_api(Name="a", ProtocolType="HTTP")["ApiId"]
    apigw.create_stage(ApiId=api, StageName="$default", AutoDeploy=True)


def _views() -> dict:
    """What the APIs say about everything (ResponseMetadata and volatile fields left out)."""
    import boto3

    def clean(doc):
        if isinstance(doc, dict):   # (an EFS size's Timestamp is the time of the call)
            return {k: clean(v) for k, v in doc.items() if k not in ("ResponseMetadata", "Body", "Timestamp")}
        if isinstance(doc, list):
            return [clean(v) for v in doc]
        return doc

    ec2, efs, iam, lam = boto3.client("ec2"), boto3.client("efs"), boto3.client("iam"), boto3.client("lambda")
    s3, logs, apigw = boto3.client("s3"), boto3.client("logs"), boto3.client("apigatewayv2")
    api = apigw.get_apis()["Items"][0]["ApiId"]
    return clean({
        "vpcs": ec2.describe_vpcs(), "subnets": ec2.describe_subnets(), "groups": ec2.describe_security_groups(),
        "enis": ec2.describe_network_interfaces(), "fs": efs.describe_file_systems(),
        "mts": efs.describe_mount_targets(FileSystemId=efs.describe_file_systems()["FileSystems"][0]["FileSystemId"]),
        "aps": efs.describe_access_points(), "role": iam.get_role(RoleName="r"),
        "attached": iam.list_attached_role_policies(RoleName="r"), "inline": iam.get_role_policy(RoleName="r", PolicyName="p"),
        "aws_policy": iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"),
        "function": lam.get_function(FunctionName="f")["Configuration"], "policy": lam.get_policy(FunctionName="f"),
        "versions": s3.list_object_versions(Bucket="efsctl-contract"),
        "body": s3.get_object(Bucket="efsctl-contract", Key="models/m.bin")["Body"].read(),
        "uploads": s3.list_multipart_uploads(Bucket="efsctl-contract"),
        "events": logs.get_log_events(logGroupName="/aws/lambda/f", logStreamName="s")["events"],
        "streams": logs.describe_log_streams(logGroupName="/aws/lambda/f"),
        "stages": apigw.get_stages(ApiId=api)})


def test_every_backend_round_trips_through_a_checkpoint(moto_aws):
    """What a checkpoint saves and a restore puts back (here in place, in one process) reads the same
    through every API efsctl uses; AWS's managed IAM policies are not saved but come back."""
    patcher = fidelity.install(fidelity.PatchContext(account_id=moto_models.ACCOUNT_ID, region="us-east-1"),
                               names=["aws_policy_ids"])
    try:
        _round_trip()
    finally:
        patcher.undo()


def _round_trip() -> None:
    import pickle

    from efsctl.local.persist import pickler
    from efsctl.local.persist.units import Codec, Restored

    _stack_in_moto(_zip())
    before = _views()
    codec = Codec({})
    units = [(key, codec.dump(key, ref, full=True, collect=set())) for key, ref in codec.everything(dict)]
    iam = [data for key, data in units if key[0] == "backend" and key[2] == "iam_backends"]
    assert iam and max(len(d) for d in iam) < 200_000, "the IAM backend was saved with AWS's managed policies"
    restorer, restored = pickler.Restorer(), Restored()
    pickler.restoring(restorer)
    try:
        for key, data in pickle.loads(pickle.dumps(units)):
            codec.apply(restorer, key, data, restored)
    finally:
        pickler.restoring(None)
    codec.restored(restorer)
    assert restorer.unfilled() == []
    assert [e["message"] for e in before["events"]] == ["line 0", "line 1", "line 2"]
    assert _views() == before


def test_internals_the_persister_relies_on():
    import inspect
    import weakref
    from collections import defaultdict

    from moto.core.base_backend import AccountSpecificBackend, BackendDict, BaseBackend
    from moto.core.responses import BaseResponse
    from moto.ec2.models import EC2Backend
    from moto.iam.models import AWSManagedPolicy, IAMBackend
    from moto.logs.models import LogEvent, LogStream
    from moto.s3.models import FakeBucket, FakeKey, S3Backend
    from moto.s3.responses import S3Response
    from moto.s3.utils import _VersionedKeyStore

    from efsctl.local.persist.store import REGISTRIES

    bucket = FakeBucket("b", "123456789012", "us-east-1")
    assert type(bucket.keys) is _VersionedKeyStore and isinstance(bucket.keys.__dict__, dict)   # uids stamp it
    assert tuple(inspect.signature(BaseBackend.__init__).parameters) == ("self", "region_name", "account_id")
    assert isinstance(BackendDict._instances, list) and issubclass(BackendDict, dict)   # read as plain dicts
    assert issubclass(AccountSpecificBackend, dict)
    assert set(vars(LogEvent(1, {"timestamp": 2, "message": "m"}))) == {"ingestion_time", "timestamp", "message",
                                                                          "event_id"}
    assert isinstance(LogEvent._event_id, int) and "self.events: list[LogEvent] = []" in inspect.getsource(LogStream)
    for name in REGISTRIES:   # re-registered after a restore
        assert isinstance(getattr(EC2Backend, name), defaultdict), name
    source = inspect.getsource(__import__("moto.ec2.models.vpcs", fromlist=["x"]))
    assert "self.vpc_refs[self.__class__].add(weakref.ref(self))" in source
    assert "self.aws_managed_policies = self._init_aws_policies()" in inspect.getsource(IAMBackend.__init__)
    assert "self.managed_policies = self._init_managed_policies()" in inspect.getsource(IAMBackend.__init__)
    assert "self.attachment_count += 1" in inspect.getsource(AWSManagedPolicy.attach_to)
    assert weakref.WeakValueDictionary.__module__ == "weakref"
    # The staged body: moto reads the request's body (empty then) and takes the checksum header first.
    assert "self.body: Any = request.data" in inspect.getsource(BaseResponse.setup_class)
    assert "from moto.iam.models import mark_account_as_visited" in inspect.getsource(BaseResponse.setup_class)
    checksum = inspect.getsource(S3Response._get_checksum)
    assert checksum.index("self.headers.get(checksum_header)") < checksum.index("self.raw_body")
    init = inspect.getsource(FakeKey.__init__)
    assert init.index("self._etag = etag") < init.index("self.value = value")   # a staged body's MD5 is the ETag
    assert "return 200, response_headers, key.value" in inspect.getsource(S3Response.get_object)
    ranged = inspect.getsource(S3Response._handle_range_header)
    assert "len(response_content)" in ranged and "response_content[begin : end + 1]" in ranged
    complete = inspect.getsource(S3Backend.complete_multipart_upload)
    assert "multipart=multipart" in complete and "OBJECT_CREATED_COMPLETE_MULTIPART_UPLOAD_EVENT" in complete


def test_crc32_of_a_completed_upload_is_combined_from_its_parts():
    import os
    import zlib

    from efsctl.local.fidelity.s3_bodies import crc32_combine

    parts = [os.urandom(n) for n in (1, 4096, 5 * 1024 * 1024 + 3, 0, 17)]
    crc = 0
    for part in parts:
        crc = crc32_combine(crc, zlib.crc32(part), len(part))
    assert crc == zlib.crc32(b"".join(parts))


def test_s3_bodies_live_in_blobs_and_join_without_copying(moto_aws, tmp_path):
    """With the s3_bodies patch a body is a blob file, a completed upload the list of its parts'
    segments, a copy shares them, and moto's APIs answer as before."""
    import base64
    import hashlib
    import zlib

    import boto3
    from botocore.config import Config

    from efsctl.local.fidelity import s3_bodies

    ctx = fidelity.PatchContext(account_id=moto_models.ACCOUNT_ID, region="us-east-1", data_dir=tmp_path)
    patcher = fidelity.install(ctx, names=["s3_bodies"])
    try:
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bodies")
        parts = [os.urandom(5 * 1024 * 1024), os.urandom(70 * 1024)]
        upload = s3.create_multipart_upload(Bucket="bodies", Key="big", ChecksumAlgorithm="CRC32")["UploadId"]
        etags = [s3.upload_part(Bucket="bodies", Key="big", UploadId=upload, PartNumber=n, Body=part)["ETag"]
                 for n, part in enumerate(parts, 1)]
        done = s3.complete_multipart_upload(Bucket="bodies", Key="big", UploadId=upload, MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
        md5s = b"".join(hashlib.md5(p).digest() for p in parts)
        assert done["ETag"].strip('"') == f"{hashlib.md5(md5s).hexdigest()}-2"
        crcs = b"".join(zlib.crc32(p).to_bytes(4, "big") for p in parts)
        assert s3.head_object(Bucket="bodies", Key="big", ChecksumMode="ENABLED")["ChecksumCRC32"] == \
            base64.b64encode(zlib.crc32(crcs).to_bytes(4, "big")).decode()   # COMPOSITE, as moto computes it
        s3.copy_object(Bucket="bodies", Key="copy", CopySource={"Bucket": "bodies", "Key": "big"})
        whole = b"".join(parts)
        # (moto gives a copy its source's composite checksum as a whole-object one: do not check it)
        unchecked = boto3.client("s3", config=Config(response_checksum_validation="when_required"))
        assert unchecked.get_object(Bucket="bodies", Key="copy")["Body"].read() == whole
        assert s3.get_object(Bucket="bodies", Key="big", Range="bytes=5242870-5242889")["Body"].read() == \
            whole[5242870:5242890]
        from moto.s3.models import s3_backends

        keys = s3_backends[moto_models.ACCOUNT_ID]["aws"].buckets["bodies"].keys
        big, copy = keys["big"], keys["copy"]
        assert s3_bodies.segments_of(big) == s3_bodies.segments_of(copy)
        assert [length for _, _, length in s3_bodies.segments_of(big)] == [len(p) for p in parts]
        assert all((tmp_path / "s3" / "blobs" / name[:2] / name).is_file()
                   for name, _, _ in s3_bodies.segments_of(big))
    finally:
        patcher.undo()
