"""`efsctl package DIR`: what it writes, what it refuses, what it never touches."""

from __future__ import annotations

import json
import socket

import pytest

from efsctl.state import StackState, StateStore

from iac_support import load_hcl, load_template


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Nothing here may reach the network (loopback included: there is no service to talk to)."""
    def refuse(*args, **kwargs):
        raise AssertionError("efsctl package opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_cloudformation_by_default_with_the_zip_up_deploys_and_a_readme(cli, tmp_path, code):
    out = tmp_path / "cfn"
    result = cli("package", str(out))
    assert result.exit_code == 0, result
    assert sorted(p.name for p in out.iterdir()) == [".efsctl-package.json", "README.md", "handlers.zip",
                                                     "template.yaml"]
    assert (out / "handlers.zip").read_bytes() == code.zip_bytes
    template = load_template((out / "template.yaml").read_text())
    assert {r["Properties"]["Code"] for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"} \
        == {"handlers.zip"}
    readme = (out / "README.md").read_text()
    assert "aws cloudformation package --template-file template.yaml" in readme
    assert "aws cloudformation deploy --template-file packaged.yaml --stack-name efsctl-default" in readme
    assert code.sha256 in readme
    assert "Stack default as cloudformation" in result.stdout


def test_terraform_references_the_zip_by_path(cli, tmp_path, code):
    out = tmp_path / "tf"
    result = cli("package", str(out), "--format", "terraform")
    assert result.exit_code == 0, result
    assert sorted(p.name for p in out.iterdir()) == [".efsctl-package.json", "README.md", "handlers.zip", "main.tf",
                                                     "outputs.tf", "variables.tf"]
    main = load_hcl((out / "main.tf").read_text())
    functions = [body for entry in main["resource"] for t, named in entry.items() if t == '"aws_lambda_function"'
                 for body in named.values()]
    assert [(f["filename"], f["source_code_hash"]) for f in functions] == \
        [('"${path.module}/handlers.zip"', '${filebase64sha256("${path.module}/handlers.zip")}')] * 2
    assert "terraform init" in (out / "README.md").read_text()


def test_json_prints_one_document(cli, tmp_path, code):
    result = cli("package", str(tmp_path / "p"), "--format", "terraform", "--json")
    assert result.exit_code == 0, result
    document = result.json()
    assert document["format"] == "terraform" and document["stack"] == "default"
    assert document["parameters"] == {"stack_name": "default", "vpc_cidr": "10.42.0.0/16", "memory": 2048,
                                      "architecture": "arm64"}
    assert document["code_sha256"] == code.sha256
    assert document["files"] == ["README.md", "handlers.zip", "main.tf", "outputs.tf", "variables.tf"]
    assert document["deploy"] == ["terraform init", "terraform apply"]


@pytest.mark.parametrize("fmt", ["cloudformation", "terraform"])
def test_the_settings_up_remembered_are_the_defaults(cli, tmp_path, efsctl_home, fmt):
    StateStore(efsctl_home).save(StackState(stack="team-a", settings={
        "memory": 4096, "vpc_cidr": "10.50.0.0/20", "architecture": "x86_64"}))
    out = tmp_path / fmt
    result = cli("--stack", "team-a", "package", str(out), "--format", fmt, "--json")
    assert result.exit_code == 0, result
    assert result.json()["parameters"] == {"stack_name": "team-a", "vpc_cidr": "10.50.0.0/20", "memory": 4096,
                                           "architecture": "x86_64"}
    if fmt == "cloudformation":
        parameters = load_template((out / "template.yaml").read_text())["Parameters"]
        assert [parameters[k]["Default"] for k in ("StackName", "VpcCidr", "Memory", "Architecture")] == \
            ["team-a", "10.50.0.0/20", 4096, "x86_64"]
    else:
        variables = {n.strip('"'): b["default"] for e in load_hcl((out / "variables.tf").read_text())["variable"]
                     for n, b in e.items()}
        assert variables == {"stack_name": '"team-a"', "vpc_cidr": '"10.50.0.0/20"', "memory": 4096,
                             "architecture": '"x86_64"'}


def test_bad_remembered_settings_are_one_sentence(cli, tmp_path, efsctl_home):
    StateStore(efsctl_home).save(StackState(stack="default", settings={"memory": 64}))
    result = cli("package", str(tmp_path / "p"))
    assert result.exit_code == 2
    assert "--memory 64 is outside Lambda's 128-10240 MiB." in result.stderr
    assert not (tmp_path / "p").exists()


def test_refuses_a_non_empty_directory_it_did_not_write(cli, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = cli("package", str(out))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {out} is not empty and is not an earlier `efsctl package` output, so "
                                    "nothing was written there.")
    assert "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_refuses_a_file(cli, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = cli("package", str(target))
    assert result.exit_code == 2 and "is a file, not a directory" in result.stderr
    assert target.read_text() == "x"


def test_refuses_an_unknown_format(cli, tmp_path):
    result = cli("package", str(tmp_path / "p"), "--format", "pulumi")
    assert result.exit_code == 2
    assert "--format must be one of cloudformation, terraform, not 'pulumi'." in result.stderr
    assert not (tmp_path / "p").exists()


def test_rewrites_its_own_output_and_never_touches_the_users_files(cli, tmp_path):
    out = tmp_path / "p"
    assert cli("package", str(out), "--format", "terraform").exit_code == 0
    (out / "terraform.tfstate").write_text('{"version": 4}')
    (out / ".terraform").mkdir()
    (out / "main.tf").write_text("# edited by hand\n")
    # Again, and then as the other format: its own files are rewritten or (unchanged) removed;
    # one the user changed stays; the user's own are untouched.
    assert cli("package", str(out), "--format", "terraform").exit_code == 0
    assert (out / "main.tf").read_text() != "# edited by hand\n"
    (out / "outputs.tf").write_text("# mine now\n")
    result = cli("package", str(out), "--json")
    assert result.exit_code == 0, result
    assert result.json()["removed"] == ["main.tf", "variables.tf"]
    assert result.json()["kept"] == ["outputs.tf"]
    assert sorted(p.name for p in out.iterdir()) == [".efsctl-package.json", ".terraform", "README.md",
                                                     "handlers.zip", "outputs.tf", "template.yaml",
                                                     "terraform.tfstate"]
    assert (out / "terraform.tfstate").read_text() == '{"version": 4}'
    assert json.loads((out / ".efsctl-package.json").read_text())["format"] == "cloudformation"


def test_refuses_to_overwrite_a_file_of_the_users_in_its_own_directory(cli, tmp_path):
    out = tmp_path / "p"
    assert cli("package", str(out)).exit_code == 0
    (out / "main.tf").write_text("# the user's\n")
    result = cli("package", str(out), "--format", "terraform")
    assert result.exit_code == 2
    assert "has main.tf, which an earlier `efsctl package` did not write" in result.stderr
    assert (out / "main.tf").read_text() == "# the user's\n"
    assert (out / "template.yaml").exists()


def test_the_same_inputs_give_the_same_bytes(cli, tmp_path):
    for name in ("a", "b"):
        assert cli("package", str(tmp_path / name), "--format", "terraform").exit_code == 0
    for name in ("handlers.zip", "main.tf", "variables.tf", "outputs.tf", "README.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
