import json
import os
import subprocess
import sys

import pytest

from efsctl import __version__


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"efsctl {__version__}"


def test_help_lists_commands_and_global_options(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for word in ("--stack", "--region", "--profile", "--endpoint-url", "--debug", "status"):
        assert word in result.stdout


@pytest.mark.parametrize("name", ["Bad", "1abc", "a" * 22, "a_b", "", "-x"])
def test_invalid_stack_name_is_a_usage_error(cli, name):
    result = cli("--stack", name, "status")
    assert result.exit_code == 2
    assert "Invalid stack name" in result.output
    assert "Traceback" not in result.output


def test_stack_name_from_environment(cli):
    result = cli("status", "--json", env={"EFSCTL_STACK": "team-a"})
    assert result.json() == {"stack": "team-a", "exists": False}


def test_status_without_stack_says_so(cli):
    result = cli("status")
    assert result.exit_code == 1
    assert "There is no stack 'default' here" in result.stdout
    assert "efsctl up --local" in result.stdout


def test_status_json_is_one_document_on_stdout(cli, efsctl_home):
    from efsctl.state import StackState, StateStore

    StateStore(efsctl_home).save(StackState(stack="default", target="local", region="us-east-1",
                                            resources={"vpc": {"id": "vpc-1"}}))
    result = cli("status", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["target"] == "local" and doc["resources"]["vpc"]["id"] == "vpc-1"


def test_python_dash_m_runs_the_cli():
    env = {k: v for k, v in os.environ.items()}
    out = subprocess.run([sys.executable, "-m", "efsctl", "--help"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0 and "Usage: efsctl" in out.stdout


def test_help_does_not_import_heavy_modules():
    code = ("import sys\nfrom efsctl.cli import app\n"
            "bad=[m for m in ('boto3','botocore','moto','rich') if m in sys.modules]\nprint(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`efsctl ... | head` must not end in an error when head stops reading."""
    script = (
        "import sys, typer\n"
        "from efsctl.cli.app import app\n"
        "@app.command('spew')\n"
        "def spew():\n"
        "    for i in range(100000):\n"
        "        print('line', i)\n"
        "app(['spew'], prog_name='efsctl')\n"
    )
    out = subprocess.run(f"{sys.executable} -c \"{script}\" | head -1", shell=True, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout == "line 0\n"
    assert out.stderr == ""
