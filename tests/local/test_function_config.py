"""Every configuration field efsctl sets round-trips through create, update and get, as on AWS."""

from __future__ import annotations

import uuid

from localhelpers import handler_zip

from efsctl.stack.model import Function
from efsctl.stack.steps.compute import function_config


def desired(network, name: str, **changes) -> Function:
    base = dict(key="fn-producer", name=name, role=network.role_arn, handler="app.plain", memory=512, timeout=30,
                architecture="arm64", environment={"EFS_MOUNT_PATH": "/mnt/efs", "BUCKET": "b"},
                subnets=tuple(network.subnet_ids), security_groups=(network.sg_id,),
                access_point=network.access_point_arn, mount_path="/mnt/efs", tags={"efsctl:stack": "t"})
    return Function(**{**base, **changes})


def as_reported(config: dict) -> dict:
    """What GetFunctionConfiguration answers, in the shape efsctl sends it."""
    vpc = config.get("VpcConfig") or {}
    return {"Role": config["Role"], "Handler": config["Handler"], "Runtime": config["Runtime"],
            "MemorySize": config["MemorySize"], "Timeout": config["Timeout"], "Description": config["Description"],
            "Environment": {"Variables": (config.get("Environment") or {}).get("Variables") or {}},
            "VpcConfig": {"SubnetIds": sorted(vpc.get("SubnetIds") or []),
                          "SecurityGroupIds": sorted(vpc.get("SecurityGroupIds") or [])},
            "FileSystemConfigs": config.get("FileSystemConfigs") or []}


def sent(d: Function) -> dict:
    config = function_config(d)
    config["VpcConfig"] = {k: sorted(v) for k, v in config["VpcConfig"].items()}
    return config


def test_create_update_and_get_agree_on_every_field_efsctl_sets(cloud, network):
    lam = cloud.client("lambda")
    name = f"fn-config-{uuid.uuid4().hex[:6]}"
    first = desired(network, name)
    lam.create_function(FunctionName=name, PackageType="Zip", Code={"ZipFile": handler_zip()},
                        Architectures=[first.architecture], Tags=dict(first.tags), **function_config(first))
    got = lam.get_function(FunctionName=name)
    assert as_reported(got["Configuration"]) == sent(first)
    assert got["Configuration"]["Architectures"] == ["arm64"] and got["Tags"] == {"efsctl:stack": "t"}

    second = desired(network, name, handler="app.echo", memory=1024, timeout=60, environment={"ONLY": "this"},
                     subnets=(network.subnet_ids[0],), architecture="x86_64")
    updated = lam.update_function_configuration(FunctionName=name, **function_config(second))
    assert as_reported(updated) == sent(second)
    code = lam.update_function_code(FunctionName=name, ZipFile=handler_zip(), Architectures=["x86_64"])
    assert code["Architectures"] == ["x86_64"]
    assert as_reported(lam.get_function_configuration(FunctionName=name)) == sent(second)
    assert lam.get_function_configuration(FunctionName=name)["Architectures"] == ["x86_64"]

    cleared = lam.update_function_configuration(FunctionName=name, Environment={})
    assert "Environment" not in cleared   # AWS omits it when there are no variables
    lam.delete_function(FunctionName=name)
