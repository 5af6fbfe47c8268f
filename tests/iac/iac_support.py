"""Helpers for the package tests: read each format back and evaluate it for one account and region.

The evaluators know only the formats' own rules (``!Sub``, ``Fn::Cidr``, HCL interpolation and
``cidrsubnet``) and name every attribute of a resource after the model key the output says it
comes from (CloudFormation ``Metadata``, Terraform resource names), so what they produce can be
compared with the model resolved for the same account and region without the code under test.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from efsctl.stack import package as packaging
from efsctl.stack.model import StackConfig, desired_stack, resolve

ACCOUNT = "123456789012"
REGION = "eu-west-1"
ZONES = ("eu-west-1a", "eu-west-1b")
META = "efsctl:resource"


def fake(key: str, attr: str) -> str:
    """The value a deployed resource's attribute would have: ``⟨efs.arn⟩``, ``⟨vpc⟩``."""
    return f"⟨{key}⟩" if attr in ("id", "name") else f"⟨{key}.{attr}⟩"


def model_resources(stack: str, *, vpc_cidr: str = "10.42.0.0/16", memory: int = 2048,
                    architecture: str = "arm64", code: packaging.Package | None = None) -> dict[str, Any]:
    """The model for that account and region, every ref resolved to :func:`fake` values."""
    config = StackConfig(stack=stack, region=REGION, account=ACCOUNT, zones=ZONES, vpc_cidr=vpc_cidr, memory=memory,
                         architecture=architecture, code=code.zip_bytes if code else b"",
                         code_sha256=code.sha256 if code else "")
    return {r.key: resolve(r, fake) for r in desired_stack(config)}


# --- CloudFormation ----------------------------------------------------------------------------

CFN_ATTRS = {"Arn": "arn", "GroupId": "id", "ApiEndpoint": "endpoint"}


class CfnEvaluator:
    def __init__(self, template: dict[str, Any], parameters: dict[str, Any] | None = None) -> None:
        self.keys = {name: _first(r["Metadata"][META]) for name, r in template["Resources"].items()}
        defaults = {name: p["Default"] for name, p in template["Parameters"].items()}
        self.refs = {**defaults, **(parameters or {}), "AWS::AccountId": ACCOUNT, "AWS::Region": REGION,
                     "AWS::Partition": "aws"}

    def ref(self, name: str) -> Any:
        return self.refs[name] if name in self.refs else fake(self.keys[name], "id")

    def get_att(self, name: str, attr: str) -> str:
        return fake(self.keys[name], CFN_ATTRS[attr])

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            (fn, arg), = value.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Fn::GetAtt":
                name, attr = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(name, attr)
            if fn == "Fn::Sub":
                return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self._sub(m.group(1))), arg).replace("${!", "${")
            if fn == "Fn::Select":
                return self(arg[1])[int(self(arg[0]))]
            if fn == "Fn::GetAZs":
                return list(ZONES)
            if fn == "Fn::Cidr":
                block, count, bits = (self(a) for a in arg)
                blocks = ipaddress.ip_network(block).subnets(new_prefix=32 - int(bits))
                return [str(b) for _, b in zip(range(int(count)), blocks)]
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value

    def _sub(self, name: str) -> Any:
        if "." in name and not name.startswith("AWS::"):
            return self.get_att(*name.split(".", 1))
        return self.ref(name)


def _first(value: Any) -> str:
    return value[0] if isinstance(value, list) else value


def load_template(text: str) -> dict[str, Any]:
    """The YAML read as CloudFormation reads it (cfn-lint's loader: short-form tags to long form)."""
    from cfnlint.decode import cfn_yaml

    return json.loads(json.dumps(cfn_yaml.loads(text)))


def cfn_tags(tags: list[dict[str, Any]]) -> dict[str, Any]:
    return {t["Key"]: t["Value"] for t in tags}


# --- Terraform ---------------------------------------------------------------------------------

TF_ATTRS = {"id": "id", "name": "id", "bucket": "id", "function_name": "id", "statement_id": "id", "arn": "arn",
            "api_endpoint": "endpoint"}


def load_hcl(text: str) -> dict[str, Any]:
    import hcl2

    return hcl2.loads(text)


def tf_resources(main: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(type, name): body}`` from python-hcl2's parse of main.tf."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in main["resource"]:
        for type_, named in entry.items():
            for name, body in named.items():
                found[(_unquote(type_), _unquote(name))] = body
    return found


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


class TfEvaluator:
    """Evaluates the expressions python-hcl2 hands back as strings (``"${var.memory}"``)."""

    def __init__(self, variables: dict[str, Any], newbits: str) -> None:
        self.vars = variables
        self.newbits = newbits  # the configuration's local.subnet_newbits expression

    def expr(self, text: str, each: Any = None) -> Any:
        text = text.strip()
        for function in ("jsonencode", "toset", "filebase64sha256"):
            if text.startswith(f"{function}(") and text.endswith(")"):
                return [function, self(load_hcl(f"x = {text[len(function) + 1:-1]}")["x"])]
        call = re.fullmatch(r"cidrsubnet\(var\.vpc_cidr, local\.subnet_newbits, (\d+)\)", text)
        if call:
            return self._cidrsubnet(int(call.group(1)))
        index = re.fullmatch(r"data\.aws_availability_zones\.available\.names\[(\d+)\]", text)
        if index:
            return ZONES[int(index.group(1))]
        if text.startswith("var."):
            return self.vars[text[4:]]
        fixed = {"path.module": ".", "data.aws_caller_identity.current.account_id": ACCOUNT,
                 "data.aws_region.current.name": REGION,
                 "data.aws_partition.current.partition": "aws", "each.value": each, "each.key": each}
        if text in fixed:
            return fixed[text]
        if text.count(".") <= 1:  # a resource itself (depends_on) or an argument (ignore_changes)
            return text
        type_, name, attr = text.split(".")
        assert type_.startswith("aws_"), text
        return fake(name.replace("_", "-"), TF_ATTRS[attr])

    def _cidrsubnet(self, number: int) -> str:
        # The configuration's own locals, read back and evaluated (HCL arithmetic is Python's here).
        prefix = ipaddress.ip_network(self.vars["vpc_cidr"]).prefixlen
        newbits = eval(self.newbits.replace("local.vpc_prefix", str(prefix)), {"__builtins__": {}},
                       {"max": max, "min": min})
        return str(list(ipaddress.ip_network(self.vars["vpc_cidr"]).subnets(prefixlen_diff=newbits))[number])

    def __call__(self, value: Any, each: Any = None) -> Any:
        if isinstance(value, str):
            if value.startswith('"') and value.endswith('"'):
                body = value[1:-1]
                out = re.sub(r"(?<!\$)\$\{([^}]+)\}", lambda m: str(self.expr(m.group(1), each)), body)
                return json.loads(f'"{out}"').replace("$${", "${")
            if value.startswith("${") and value.endswith("}"):
                return self.expr(value[2:-1], each)
            return value
        if isinstance(value, dict):
            return {_unquote(k): self(v, each) for k, v in value.items() if not k.startswith("__")}
        if isinstance(value, list):
            return [self(v, each) for v in value]
        return value
