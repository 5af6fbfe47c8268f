"""A local stack for the validation tests (one per test module), and efsctl run in-process on it."""

from __future__ import annotations

import json

import pytest

CLEAN_ENV = {name: None for name in (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "XDG_STATE_HOME")}


class Result:
    def __init__(self, result):
        self.exit_code, self.stdout, self.stderr = result.exit_code, result.stdout, result.stderr

    def json(self):
        return json.loads(self.stdout)

    def claim(self, number):
        return next(c for c in self.json()["claims"] if c["claim"] == number)

    def __repr__(self):
        return f"<exit={self.exit_code} stdout={self.stdout[-3000:]!r} stderr={self.stderr[-3000:]!r}>"


class Efsctl:
    """Runs efsctl in-process against one home and stack; ``aws`` is the account's context."""

    def __init__(self, home, stack):
        from typer.testing import CliRunner

        self.home, self.stack, self.runner = home, stack, CliRunner()

    def __call__(self, *args: str) -> Result:
        from efsctl.cli import app

        env = dict(CLEAN_ENV, EFSCTL_HOME=str(self.home), EFSCTL_STACK=self.stack)
        return Result(self.runner.invoke(app, list(args), env=env, catch_exceptions=True))

    def connection(self):
        from efsctl.config import Settings
        from efsctl.console import Console
        from efsctl.operations import Operations

        return Operations(Settings(stack=self.stack, home=self.home), Console()).connect()

    def client(self, service):
        return self.connection().aws.client(service)

    def efs_root(self):
        return next(self.home.glob(f"local/{self.stack}/efs/*/lambda"))


def local_stack(tmp_path_factory, stack):
    home = tmp_path_factory.mktemp(f"efsctl-{stack}")
    run = Efsctl(home, stack)
    with pytest.MonkeyPatch.context() as mp:  # the local cloud process inherits a clean environment
        for name in CLEAN_ENV:
            mp.delenv(name, raising=False)
        mp.setenv("EFSCTL_HOME", str(home))
        mp.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
        up = run("up", "--local", "--json")
        assert up.exit_code == 0, up
        try:
            yield run
        finally:
            if run("down", "--yes", "--json").exit_code != 0:
                from efsctl.console import Console
                from efsctl.local import stop_local_cloud
                from efsctl.state import StateStore

                stop_local_cloud(StateStore(home), stack, Console())
