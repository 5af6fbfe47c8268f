"""Every moto request runs inside the persister's gate, and is answered only once what it changed
is on disk.

A request that may change something (by AWS's naming: not Describe/Get/List/...; for REST APIs,
not GET or HEAD) counts every backend it reaches as changed; any request still reports what it
creates. After moto has answered, the response waits for the commit that carries the request's
changes (usually the next one, shared with every request that finished meanwhile). If a change
could not be saved the client gets a 500 InternalError instead of a success it could rely on.
"""

from __future__ import annotations

import io
import logging
import sys
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

from efsctl.local.persist.ingest import error_response

log = logging.getLogger("efsctl.local.persist")

READ_PREFIXES = ("Describe", "Get", "List", "Head", "Lookup", "Search", "Filter", "Check", "Select", "Test",
                 "BatchGet", "Simulate", "Query", "Scan", "Preview", "Estimate")
FORM = "application/x-www-form-urlencoded"
MAX_FORM = 1 << 20

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def action_of(environ: dict[str, Any]) -> str | None:
    """The API action of a JSON (``X-Amz-Target``) or query (``Action=``) request, else None (REST)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    found = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if found:
        return found[0]
    length = environ.get("CONTENT_LENGTH") or ""
    if environ.get("CONTENT_TYPE", "").startswith(FORM) and length.isdigit() and int(length) <= MAX_FORM:
        body = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(body)
        found = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if found:
            return found[0]
    return None


def may_change(environ: dict[str, Any]) -> bool:
    action = action_of(environ)
    if action is not None:
        return not action.startswith(READ_PREFIXES)
    return environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD", "OPTIONS")


def wrap_wsgi(app: App, persist: Any) -> App:
    def persisted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with persist.tracker.request(may_change(environ)) as scope:
            with persist.gate.shared():
                body = app(environ, start_response)
        problem = persist.wait(scope)
        if problem is None:
            return body
        close = getattr(body, "close", None)
        if close is not None:
            close()
        log.error("%s %s was applied but could not be saved: %s", environ.get("REQUEST_METHOD"),
                  environ.get("PATH_INFO"), problem)
        status, headers, payload = error_response(
            "InternalError", f"The local cloud could not save this change ({problem}); see its log.",
            "500 Internal Server Error")
        try:
            raise RuntimeError(problem)
        except RuntimeError:
            start_response(status, headers, sys.exc_info())
        return [payload]

    return persisted
