"""The deployment contract: every lambda_code/*.py but __init__.py at the zip root, handler ids
producer.handler and consumer.handler, nothing imported from lambda_code or efsctl."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

LAMBDA_CODE = Path(__file__).resolve().parents[2] / "lambda_code"


def _modules():
    return sorted(p for p in LAMBDA_CODE.glob("*.py") if p.name != "__init__.py")


def test_lambda_code_init_is_empty():
    assert (LAMBDA_CODE / "__init__.py").read_text() == ""


def test_modules_import_only_each_other_the_stdlib_and_boto():
    ours = {p.stem for p in _modules()}
    allowed = ours | set(sys.stdlib_module_names) | {"boto3", "botocore", "__future__"}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: relative import"
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"


def test_handlers_run_from_the_deployment_zip(tmp_path):
    bundle = tmp_path / "function.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        for path in _modules():
            zf.write(path, arcname=path.name)
    assert sorted(zipfile.ZipFile(bundle).namelist()) == [p.name for p in _modules()]
    mount = tmp_path / "efs"
    code = (
        "import importlib, json, os, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "fns = {h: getattr(importlib.import_module(h.split('.')[0]), h.split('.')[1])\n"
        "       for h in ('producer.handler', 'consumer.handler')}\n"
        "import consumer\n"
        "assert consumer.__file__.startswith(sys.argv[1]), consumer.__file__\n"
        "event = {'version': '2.0', 'routeKey': 'GET /models', 'rawPath': '/models',\n"
        "         'requestContext': {'http': {'method': 'GET', 'path': '/models'}}}\n"
        "response = fns['consumer.handler'](event, None)\n"
        "print(json.dumps(response))\n"
    )
    env = {"EFS_MOUNT_PATH": str(mount), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-I", "-c", code, str(bundle)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, check=True)
    response = json.loads(done.stdout.strip().splitlines()[-1])
    assert response["statusCode"] == 200 and json.loads(response["body"]) == {"models": []}
    assert (mount / "models").is_dir() and (mount / ".efsctl" / "tmp").is_dir()
