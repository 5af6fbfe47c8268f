"""Before moto serves an API call: apply due lifecycle transitions, and maybe throttle the call.

Every call but S3's (which has its own dispatch) passes through ``BaseResponse.call_action``.
There the :class:`~efsctl.local.fidelity.timeline.Timeline` applies what became due (an
interface released by a deleted function disappears), so the call sees the cloud as it is now.

With the ``throttle_rate`` option (a fraction, default 0) a call is refused, at that rate, the
way each service throttles: Lambda and API Gateway ``TooManyRequestsException`` (429), EFS
``ThrottlingException`` (429), EC2 ``RequestLimitExceeded`` (503), IAM and STS ``Throttling``
(400), the rest ``ThrottlingException`` (400). botocore's standard retry mode absorbs all of
them; ``throttle_seed`` makes the sequence of refusals repeatable.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from typing import Any

from efsctl.local.fidelity import Patch, PatchContext, Patcher, Target
from efsctl.local.fidelity.timeline import timeline

THROTTLES = {
    "lambda": ("TooManyRequestsException", 429, "Rate exceeded"),
    "apigatewayv2": ("TooManyRequestsException", 429, "Too Many Requests"),
    "efs": ("ThrottlingException", 429, "Rate exceeded"),
    "ec2": ("RequestLimitExceeded", 503, "Request limit exceeded."),
    "iam": ("Throttling", 400, "Rate exceeded"),
    "sts": ("Throttling", 400, "Rate exceeded"),
}
DEFAULT_THROTTLE = ("ThrottlingException", 400, "Rate exceeded")


def throttle_response(service: str, protocol: str) -> tuple[int, dict[str, str], str]:
    """The HTTP answer ``service`` (speaking ``protocol``) gives a throttled call."""
    code, status, message = THROTTLES.get(service, DEFAULT_THROTTLE)
    return error_response(service, protocol, code, status, message)


def error_response(service: str, protocol: str, code: str, status: int,
                   message: str) -> tuple[int, dict[str, str], str]:
    """An error answer in the shape ``protocol`` uses (JSON body, EC2 or query XML, REST XML)."""
    from xml.sax.saxutils import escape

    request_id = str(uuid.uuid4())
    headers = {"status": str(status), "x-amzn-RequestId": request_id}
    if protocol in ("json", "rest-json"):
        headers.update({"Content-Type": "application/x-amz-json-1.1" if protocol == "json" else "application/json",
                        "x-amzn-ErrorType": code})
        body = json.dumps({"__type": code, "message": message})
    elif protocol == "ec2":
        headers["Content-Type"] = "text/xml"
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
                f"<Message>{escape(message)}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>")
    elif protocol == "query":
        headers["Content-Type"] = "text/xml"
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message>"
                f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>")
    else:
        headers["Content-Type"] = "application/xml"
        body = (f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>"
                f"<RequestId>{request_id}</RequestId></Error>")
    return status, headers, body


class Throttle:
    """Decides, at ``rate``, which calls are refused (a seeded sequence, so runs repeat)."""

    def __init__(self, rate: float, seed: int = 0) -> None:
        if not 0.0 <= rate < 1.0:
            raise ValueError("throttle rate must be at least 0 and below 1")
        self.rate = rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.refused = 0

    def refuse(self) -> bool:
        if self.rate <= 0.0:
            return False
        with self._lock:
            hit = self._random.random() < self.rate
            self.refused += hit
            return hit


def install(ctx: PatchContext, patcher: Patcher) -> None:
    from moto.core.responses import BaseResponse
    from moto.core.utils import get_service_model

    line = timeline(ctx)
    throttle = Throttle(float(ctx.extra.get("throttle_rate") or 0.0), int(ctx.extra.get("throttle_seed") or 0))
    ctx.extra["_throttle"] = throttle

    def wrap_call_action(original):
        def call_action(self: Any) -> Any:
            line.sweep()
            if throttle.refuse():
                service = self.boto3_service_name
                return throttle_response(service, get_service_model(service).protocol)
            return original(self)
        return call_action

    patcher.wrap(BaseResponse, "call_action", wrap_call_action)


PATCH = Patch(
    name="api_calls",
    summary="due lifecycle transitions applied before each call; optional throttling as each service does it",
    targets=(
        Target("moto.core.responses:BaseResponse.call_action", ("self",)),
        Target("moto.core.responses:BaseResponse.boto3_service_name"),
        Target("moto.core.utils:get_service_model", ("service_name",)),
    ),
    install=install,
)
