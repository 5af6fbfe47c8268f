"""Contract with moto's internals: fails loudly, naming what moved, when a moto upgrade moves them.

The local cloud patches moto (``efsctl/local/fidelity/``) and reads its models
(``efsctl/local/moto_models.py``, ``efsctl/local/daemon.py``). pyproject pins moto to the minor
series these tests were written against; upgrading it means running this file first.
"""

from __future__ import annotations

import io
import json
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
