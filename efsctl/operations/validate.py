"""The `validate` use case: the claims measured on the stack, under its lock.

It holds the stack's lock for the whole run (the run changes a function's configuration for a
while, and may restart the local cloud, so an `up` or `down` meanwhile would be refused, not
interleaved), hands the experiments the stack's connection and what only the use cases may do:
the local cloud's least-privilege report and its restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from efsctl.drive.validate.runner import Report, ValidateOptions
    from efsctl.operations import Operations

NOT_LOCAL = ("cloud restart not measured: it applies to the local cloud only; on AWS the configuration change "
             "that recycles the execution environments is the test")


def validate(ops: "Operations", options: "ValidateOptions") -> "Report":
    from efsctl.drive.target import api_client
    from efsctl.drive.validate.core import Stack
    from efsctl.drive.validate.runner import run_validation

    conn = ops.connect()   # first: no lock file is made for a stack that is not there
    with ops.store.lock(ops.stack, "efsctl validate"):
        local = conn.state.is_local

        def restart() -> tuple[Any, Any]:
            again = ops.restart_local_cloud(locked=True)
            return again.aws, again.target

        stack = Stack(aws=conn.aws, target=conn.target,
                      api_client=lambda aws, target, connections: api_client(target, aws, max_connections=connections),
                      iam_report=ops.iam_report,
                      # the local cloud keeps its state across a restart: claim 5 restarts it
                      restart_cloud=restart if local else None, restart_note=None if local else NOT_LOCAL)
        return run_validation(stack, ops.console, options, clock=ops.clock)
