"""efsctl run in-process on a real `up --local` stack in its own EFSCTL_HOME (for module fixtures).

``Efsctl(home, stack)("upload", ...)`` runs one command with a clean environment and returns its
:class:`Result`; ``local_stack(run)`` brings the stack up for a ``with`` block and takes it down
after (stopping its cloud even if `down` fails, so no process outlives the tests).
"""

from __future__ import annotations

import contextlib
import json
from typing import Iterator

import pytest

CLEAN_ENV = {name: None for name in (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "XDG_STATE_HOME", "EFSCTL_STACK")}


class Result:
    def __init__(self, result) -> None:
        self.exit_code, self.stdout, self.stderr = result.exit_code, result.stdout, result.stderr

    def json(self):
        return json.loads(self.stdout)

    def lines(self):
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def claim(self, number):
        return next(c for c in self.json()["claims"] if c["claim"] == number)

    def __repr__(self) -> str:
        return f"<exit={self.exit_code} stdout={self.stdout[-3000:]!r} stderr={self.stderr[-3000:]!r}>"


class Efsctl:
    """Runs efsctl in-process against one home and stack."""

    def __init__(self, home, stack: str) -> None:
        from typer.testing import CliRunner

        self.home, self.stack, self.runner = home, stack, CliRunner()

    def __call__(self, *args: str) -> Result:
        from efsctl.cli import app

        env = dict(CLEAN_ENV, EFSCTL_HOME=str(self.home))
        return Result(self.runner.invoke(app, ["--stack", self.stack, *args], env=env, catch_exceptions=True))

    def state(self):
        from efsctl.state import StateStore

        return StateStore(self.home).load(self.stack)

    def connection(self):
        from efsctl.config import Settings
        from efsctl.console import Console
        from efsctl.operations import Operations

        return Operations(Settings(stack=self.stack, home=self.home), Console()).connect()


@contextlib.contextmanager
def local_stack(run: Efsctl) -> Iterator[Efsctl]:
    """`up --local` for the block, `down --yes` after (which must succeed)."""
    with pytest.MonkeyPatch.context() as mp:  # the local cloud process inherits a clean environment
        for name in CLEAN_ENV:
            mp.delenv(name, raising=False)
        mp.setenv("EFSCTL_HOME", str(run.home))
        mp.setenv("AWS_CONFIG_FILE", str(run.home / "no-aws-config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(run.home / "no-aws-credentials"))
        up = run("up", "--local", "--json")
        assert up.exit_code == 0, up
        try:
            yield run
        finally:
            down = run("down", "--yes", "--json")
            if down.exit_code != 0:
                from efsctl.console import Console
                from efsctl.local import stop_local_cloud
                from efsctl.state import StateStore

                stop_local_cloud(StateStore(run.home), run.stack, Console())
            assert down.exit_code == 0, down
