"""Consumer Lambda behind the HTTP API: ``POST /predict``, ``GET /models``, ``GET /models/{name+}``.

``handler`` is an adapter: it turns a payload 2.0 (or 1.0) event into a Request, dispatches
through ROUTES to a core function taking the layout and clients as arguments, and maps typed
errors to statuses through ERROR_STATUS. Bad input is always a 4xx JSON error.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import unquote

import efs_analysis as analysis
import efs_common as common
import efs_store as store
import efs_stream as stream
from efs_common import (BadRequest, ChecksumMismatch, HandlerError, InvalidModelName, ModelChanging,
                        ModelNotFound, PayloadTooLarge, RouteNotFound, UnsafePath)

MAX_BODY_BYTES = 64 * 1024
MAX_LISTED = 10_000
CACHE_ENTRIES = 1024

ERROR_STATUS = {
    InvalidModelName: 400,
    BadRequest: 400,
    ModelNotFound: 404,
    UnsafePath: 404,
    RouteNotFound: 404,
    ChecksumMismatch: 404,
    ModelChanging: 409,
    PayloadTooLarge: 413,
}

log = common.JsonLogger("consumer")
_clients: dict = {}
_prepared: set = set()


@dataclass(frozen=True)
class Known:
    """What one version of a model (one file identity) is."""

    sha256: str
    format: str
    analysis: Dict[str, Any]


# Warm-container cache: (st_dev, st_ino, st_size, st_mtime_ns) -> Known. A replaced model is a
# new inode, so a stale entry is never hit; the LRU bound keeps memory flat.
_cache: "OrderedDict[Tuple[int, int, int, int], Known]" = OrderedDict()


def reset_caches() -> None:
    """Forget the warm-container state (tests; a new container does the same)."""
    _cache.clear()
    _clients.clear()
    _prepared.clear()


def _cache_get(identity) -> Optional[Known]:
    known = _cache.get(identity)
    if known is not None:
        _cache.move_to_end(identity)
    return known


def _cache_put(identity, known: Known) -> None:
    _cache[identity] = known
    _cache.move_to_end(identity)
    while len(_cache) > CACHE_ENTRIES:
        _cache.popitem(last=False)


def _s3():
    """One S3 client per warm container (created on first use; honours AWS_ENDPOINT_URL)."""
    return common.s3_client(_clients, max_attempts=3, connect_timeout=5, read_timeout=10)


def _identity(st: os.stat_result) -> Tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


# --------------------------------------------------------------------------- core


def _open_or_explain(layout: store.Layout, name: str):
    """open_model, turning "not found" into ChecksumMismatch when the latest upload was rejected."""
    try:
        return store.open_model(layout, name)
    except ModelNotFound:
        rejection = store.read_rejection(layout, name)
        if rejection is None:
            raise
        raise ChecksumMismatch(
            f"the latest upload of {name!r} was rejected: x-amz-meta-sha256 was "
            f"{rejection.expected_sha256} but the object's sha256 is {rejection.actual_sha256}") from None


def _known_sha256(layout: store.Layout, name: str, st: os.stat_result) -> Optional[str]:
    """The checksum without reading the file: the producer's record, then the warm cache."""
    record = store.read_record(layout, name)
    if store.record_matches(record, st):
        return record.sha256
    known = _cache.get(_identity(st))
    return known.sha256 if known else None


def inspect_model(layout: store.Layout, name: str, verify: bool = False) -> Tuple[os.stat_result, Known, bool]:
    """(stat, Known, cached) for a model. ``cached`` is False only when this call read the
    whole file to hash it: when ``verify`` is set, or no record or cache entry still matches."""
    fd, st = _open_or_explain(layout, name)
    try:
        identity = _identity(st)
        sha256 = None
        if not verify:
            known = _cache_get(identity)
            if known is not None:
                return st, known, True
            record = store.read_record(layout, name)
            sha256 = record.sha256 if store.record_matches(record, st) else None
        cached = sha256 is not None
        if cached:
            fmt, details = analysis.analyse(fd, st.st_size)
        else:
            sha256, (fmt, details) = _hash_and_analyse(fd, st, name)
            record = store.read_record(layout, name)
            if store.record_matches(record, st) and record.sha256 != sha256:
                log.error("model bytes differ from the producer's record", key=name,
                          sha256=sha256, recorded_sha256=record.sha256)
    finally:
        os.close(fd)
    known = Known(sha256=sha256, format=fmt, analysis=details)
    _cache_put(identity, known)
    return st, known, cached


def _hash_and_analyse(fd: int, st: os.stat_result, name: str):
    """One full SHA-256 pass, then the analysis (headers and sample, now in the page cache)."""
    sha256, nbytes = stream.hash_fd(fd)
    if nbytes != st.st_size or _identity(os.fstat(fd)) != _identity(st):
        raise ModelChanging(f"model {name!r} changed while it was being read; retry")
    return sha256, analysis.analyse(fd, st.st_size)


def predict(layout: store.Layout, config: common.Config, name: str, verify: bool, request_id: str,
            started: float, s3_factory: Callable[[], Any]) -> bytes:
    """Analyse a model, write the result to outputs/ on EFS and S3; returns the result bytes."""
    st, known, cached = inspect_model(layout, name, verify)
    unique = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + os.urandom(12).hex()
    efs_path = os.path.join(layout.outputs, unique + ".json")
    s3_key = config.outputs_prefix + unique + ".json" if config.bucket else None
    result = {
        "model": name,
        "size": st.st_size,
        "sha256": known.sha256,
        "format": known.format,
        "analysis": known.analysis,
        "cached": cached,
        "output": {"efs_path": efs_path, "s3_key": s3_key},
        "request_id": request_id,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
    }
    body = json.dumps(result).encode()
    store.write_atomic(layout, efs_path, body)
    if s3_key is not None:
        s3_factory().put_object(Bucket=config.bucket, Key=s3_key, Body=body, ContentType="application/json")
    log.info("prediction written", key=name, bytes=st.st_size, sha256=known.sha256, cached=cached,
             format=known.format, output=s3_key or efs_path, duration_ms=result["duration_ms"])
    return body


def _modified(st: os.stat_result) -> str:
    return common.utc_iso(st.st_mtime_ns / 1e9)


def describe_model(layout: store.Layout, name: str) -> Dict[str, Any]:
    """name, size, sha256 (null when unknown without a full read), modified; plus ``rejected``
    when a later upload of this name was rejected while this version stays in place."""
    fd, st = _open_or_explain(layout, name)
    os.close(fd)
    obj: Dict[str, Any] = {"name": name, "size": st.st_size, "sha256": _known_sha256(layout, name, st),
                           "modified": _modified(st)}
    rejection = store.read_rejection(layout, name)
    if rejection is not None:
        obj["rejected"] = {"expected_sha256": rejection.expected_sha256,
                           "actual_sha256": rejection.actual_sha256, "rejected_at": rejection.rejected_at}
    return obj


def list_models(layout: store.Layout, limit: Optional[int] = None) -> Dict[str, Any]:
    """Every model with its size, sha256 (when known without reading) and mtime; at most
    MAX_LISTED of them (then ``truncated`` is set) to stay far below Lambda's 6 MB response."""
    limit = MAX_LISTED if limit is None else limit
    found = list(store.iter_models(layout, limit + 1))
    models = [{"name": name, "size": st.st_size, "sha256": _known_sha256(layout, name, st),
               "modified": _modified(st)} for name, st in found[:limit]]
    result: Dict[str, Any] = {"models": models}
    if len(found) > limit:
        result["truncated"] = True
    return result


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    method: str
    route: str            # a route template ("/models/{name+}") or, when unknown, the path
    name: Optional[str]   # the {name+} path parameter
    body: Any
    base64: bool


_TEMPLATES = ("/predict", "/models", "/models/{name+}")


def _path_route(path: str) -> Tuple[str, Optional[str]]:
    if path in ("/predict", "/predict/"):
        return "/predict", None
    if path in ("/models", "/models/"):
        return "/models", None
    if path.startswith("/models/"):
        return "/models/{name+}", unquote(path[len("/models/"):])
    return path, None


def parse_request(event: object) -> Request:
    """Request from an HTTP API payload 2.0 event, or a payload 1.0 (REST-style) one."""
    if not isinstance(event, dict):
        raise BadRequest("not an API Gateway event")
    context = event.get("requestContext") if isinstance(event.get("requestContext"), dict) else {}
    if event.get("version") == "2.0" or "httpMethod" not in event:
        http = context.get("http") if isinstance(context.get("http"), dict) else {}
        method = str(http.get("method") or "").upper()
        path = event.get("rawPath") or http.get("path") or ""
        route_key = event.get("routeKey")
        template = None
        if isinstance(route_key, str) and " " in route_key:
            key_method, key_template = route_key.split(" ", 1)
            if key_template in _TEMPLATES:
                method, template = key_method.upper(), key_template
    else:
        method = str(event.get("httpMethod") or "").upper()
        path = event.get("path") or ""
        template = event.get("resource") if event.get("resource") in _TEMPLATES else None
    if not isinstance(path, str):
        path = ""
    stage = context.get("stage")
    if isinstance(stage, str) and stage not in ("", "$default") and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1:]
    route, name = _path_route(path)
    if template is not None:
        route = template
    params = event.get("pathParameters")
    if route == "/models/{name+}" and isinstance(params, dict) and isinstance(params.get("name"), str):
        name = params["name"]  # API Gateway has already decoded it: never decode twice
    return Request(method=method, route=route, name=name, body=event.get("body"),
                   base64=bool(event.get("isBase64Encoded")))


def _reject_constant(value: str):
    raise ValueError(f"{value} is not valid JSON")


def _json_body(request: Request) -> Dict[str, Any]:
    body = request.body
    if body is None or body == "":
        raise BadRequest("a JSON body is required")
    if not isinstance(body, str):
        raise BadRequest("the body must be a string")
    if request.base64:
        if len(body) > (MAX_BODY_BYTES + 2) // 3 * 4 + 4:
            raise PayloadTooLarge(f"the body exceeds {MAX_BODY_BYTES} bytes")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("the body is not valid base64") from None
    else:
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"the body exceeds {MAX_BODY_BYTES} bytes")
        raw = body.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body exceeds {MAX_BODY_BYTES} bytes")
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object")
    return document


# --------------------------------------------------------------------------- routes


def _route_predict(request: Request, layout, config, request_id, started) -> Tuple[int, bytes]:
    document = _json_body(request)
    if "model" not in document:
        raise BadRequest("'model' is required")
    name = common.validate_model_name(document["model"])
    verify = document.get("verify", False)
    if not isinstance(verify, bool):
        raise BadRequest("'verify' must be true or false")
    return 200, predict(layout, config, name, verify, request_id, started, _s3)


def _route_list(request: Request, layout, config, request_id, started) -> Tuple[int, bytes]:
    return 200, json.dumps(list_models(layout)).encode()


def _route_describe(request: Request, layout, config, request_id, started) -> Tuple[int, bytes]:
    if request.name is None:
        raise BadRequest("a model name is required")
    name = common.validate_model_name(request.name)
    return 200, json.dumps(describe_model(layout, name)).encode()


ROUTES = {
    ("POST", "/predict"): _route_predict,
    ("GET", "/models"): _route_list,
    ("GET", "/models/{name+}"): _route_describe,
}


def _status_for(exc: HandlerError) -> int:
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 500


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def _response(status: int, body: bytes) -> Dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"},
            "body": body.decode(), "isBase64Encoded": False}


def _prepare(layout: store.Layout) -> None:
    if layout.root not in _prepared:
        layout.ensure()
        store.sweep_temps(layout)
        _prepared.add(layout.root)


def handler(event, context):
    """Lambda entry point for API Gateway (HTTP API payload 2.0; 1.0 tolerated)."""
    started = time.perf_counter()
    request_id = common.context_request_id(context)
    log.bind(request_id, common.context_function_name(context, "consumer"))
    route = None
    try:
        request = parse_request(event)
        route = f"{request.method} {request.route}"
        action = ROUTES.get((request.method, request.route))
        if action is None:
            raise RouteNotFound(f"no route for {request.method or '?'} {request.route or '/'}")
        config = common.Config.from_env()
        layout = store.Layout(config.mount)
        _prepare(layout)
        status, body = action(request, layout, config, request_id, started)
    except HandlerError as exc:
        status = _status_for(exc)
        body = _error_body(exc.code, str(exc))
        log.warning("request refused", route=route, status=status, error=exc.code, detail=str(exc)[:300])
    except Exception as exc:
        status = 500
        body = _error_body("InternalError", f"internal error; request id {request_id}")
        log.error("unhandled error", route=route, error=type(exc).__name__, detail=str(exc)[:500],
                  traceback=traceback.format_exc(limit=8))
    log.info("request done", route=route, status=status,
             duration_ms=round((time.perf_counter() - started) * 1000, 3))
    return _response(status, body)
