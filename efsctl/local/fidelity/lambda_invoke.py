"""Lambda invocations run on the local runtime instead of moto's Docker executor.

Every invoke path in moto ends in ``LambdaFunction.invoke`` (the Invoke API, sync and
``InvocationType=Event``, SNS, SQS and DynamoDB event sources, log subscriptions) or its
``_invoke_lambda``; S3 notifications are redirected by the ``s3_events`` patch. We answer as
Lambda does: the handler's error as ``FunctionError: Unhandled`` with Lambda's error document,
``Event`` queued and acknowledged at once, ``DryRun`` not run, ``LogType=Tail`` honoured, a
throttle as ``TooManyRequestsException``. Deleting a function retires its warm environments.
"""

from __future__ import annotations

import base64
import contextlib
from typing import Any, Iterator

from efsctl.local import moto_models
from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is None and isinstance(headers, dict):
        lowered = {k.lower(): v for k, v in headers.items()}
        value = lowered.get(name.lower())
    return value


def _bytes(body: Any) -> bytes:
    if not body:
        return b"{}"
    return body.encode() if isinstance(body, str) else bytes(body)


def function_spec(ctx: PatchContext, fn: Any):
    """The runtime's view of a moto function; a missing access point is Lambda's mount failure."""
    from moto.awslambda.exceptions import LambdaClientError

    try:
        return moto_models.function_spec(fn, ctx.data_dir)
    except moto_models.NotFound as exc:
        error = LambdaClientError("EFSMountFailureException", f"{exc}.")
        error.code = 403
        raise error from None


def locator(ctx: PatchContext, arn: str):
    """Finds the function again when a queued event runs (it may have changed or gone)."""

    def locate():
        fn = moto_models.find_function(ctx.account_id, ctx.region, arn)
        return None if fn is None else moto_models.function_spec(fn, ctx.data_dir)

    return locate


@contextlib.contextmanager
def outside_the_gate(ctx: PatchContext) -> Iterator[None]:
    """A synchronous invocation runs a handler that calls the cloud back: the request lets go of
    the persister's gate meanwhile, or a commit waiting for the gate would wait for it forever.
    What the runtime looks up meanwhile is not a change (what the run changes reports itself)."""
    if ctx.persist is None:
        yield
        return
    with ctx.persist.gate.outside(), ctx.persist.tracker.untracked():
        yield


def throttled(reason: str):
    from moto.awslambda.exceptions import LambdaClientError

    error = LambdaClientError("TooManyRequestsException", "Rate Exceeded.")
    error.code = 429
    error.description = moto_models.to_json({"__type": "TooManyRequestsException", "message": "Rate Exceeded.",
                                             "Reason": reason, "Type": "User"})
    return error


def install(ctx: PatchContext, patcher: Patcher) -> None:
    from moto.awslambda.models import LambdaBackend, LambdaFunction

    from efsctl.local.runtime import Throttled

    def invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
        invocation_type = _header(request_headers, "X-Amz-Invocation-Type") or "RequestResponse"
        if invocation_type == "DryRun":
            return b""
        if invocation_type == "Event":
            function_spec(ctx, self)   # fail now, as Lambda does, if the mount cannot be resolved
            ctx.invoker.submit(self.function_name, locator(ctx, self.function_arn), _bytes(body), source="Invoke",
                               arn=self.function_arn)
            return b""
        spec = function_spec(ctx, self)
        try:
            with outside_the_gate(ctx):
                result = ctx.runtime.invoke(spec, _bytes(body))
        except Throttled as exc:
            raise throttled(exc.reason) from None
        if result.function_error:
            response_headers["x-amz-function-error"] = result.function_error
        response_headers["x-amz-executed-version"] = str(self.version)
        if _header(request_headers, "X-Amz-Log-Type") == "Tail":
            response_headers["x-amz-log-result"] = base64.b64encode(result.log_tail().encode()).decode()
        return result.payload

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        payload = event if isinstance(event, (str, bytes)) else moto_models.to_json(event or {})
        spec = function_spec(ctx, self)
        with outside_the_gate(ctx):
            result = ctx.runtime.invoke(spec, _bytes(payload))
        return result.payload.decode(), result.error is not None, "\n".join(result.log)

    def wrap_delete(original):
        def delete_function(self: Any, function_name: str, qualifier: str | None = None) -> None:
            original(self, function_name, qualifier)
            if qualifier is None:
                ctx.runtime.retire(moto_models.function_name_of(function_name))
        return delete_function

    patcher.replace(LambdaFunction, "invoke", invoke)
    patcher.replace(LambdaFunction, "_invoke_lambda", _invoke_lambda)
    patcher.wrap(LambdaBackend, "delete_function", wrap_delete)


PATCH = Patch(
    name="lambda_invoke",
    summary="run invocations on the local runtime (warm workers, timeouts, logs), not in Docker",
    targets=(
        Target("moto.awslambda.models:LambdaFunction.invoke", ("self", "body", "request_headers", "response_headers")),
        Target("moto.awslambda.models:LambdaFunction._invoke_lambda", ("self", "event")),
        Target("moto.awslambda.models:LambdaBackend.delete_function", ("self", "function_name", "qualifier")),
        Target("moto.awslambda.models:LambdaBackend.invoke",
               ("self", "function_name", "qualifier", "body", "headers", "response_headers")),
        Target("moto.awslambda.exceptions:LambdaClientError", ("error", "message")),
    ),
    install=install,
)
