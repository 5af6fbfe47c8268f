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
import efs_records as rec
import efs_store as store
import efs_stream as stream
from efs_read import reject_json_constant
from efs_common import (BadRequest, HandlerError, IntegrityError, InvalidModelName, ModelChanging,
                        ModelNotFound, ModelUnreadable, PayloadTooLarge, RouteNotFound, UnsafePath,
                        UploadRejected)

MAX_BODY_BYTES = 64 * 1024
MAX_LISTED = 10_000
CACHE_ENTRIES = 1024

# The one map from what went wrong to the answer: exception -> (HTTP status, log level).
# A model that is not (yet) there is routine: `upload --wait` polls for it. Anything not in
# the table is a 500, logged with its traceback: a fault of ours or of AWS, never of the input.
ERRORS = {
    InvalidModelName: (400, "WARNING"),
    BadRequest: (400, "WARNING"),
    ModelNotFound: (404, "INFO"),
    UnsafePath: (404, "WARNING"),
    RouteNotFound: (404, "WARNING"),
    UploadRejected: (409, "INFO"),      # the producer already logged the refusal as an error
    IntegrityError: (409, "ERROR"),
    ModelChanging: (409, "WARNING"),
    ModelUnreadable: (409, "ERROR"),
    PayloadTooLarge: (413, "WARNING"),
}
UNEXPECTED = (500, "ERROR")

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


def _refused(name: str, refusal: rec.Refusal) -> UploadRejected:
    return UploadRejected(f"the producer refused the latest upload of {name!r}: {refusal.message}",
                          name=name, **refusal.public())


def _open_or_explain(layout: store.Layout, name: str):
    """open_model, turning "not found" into UploadRejected when the latest upload was refused."""
    try:
        return store.open_model(layout, name)
    except ModelNotFound:
        refusal = rec.read_refusal(layout, name)
        if refusal is None:
            raise
        raise _refused(name, refusal) from None


def _corrupt(name: str, corruption: rec.Corruption) -> IntegrityError:
    return IntegrityError(
        f"model {name!r} is corrupt on EFS: its bytes hash to {corruption.actual_sha256} but the producer "
        f"installed {corruption.expected_sha256}; upload it again to repair it", name=name, **corruption.public())


def _trusted_sha256(record: Optional[rec.ModelRecord], st: os.stat_result) -> Optional[str]:
    """The producer's checksum, when its record vouches for this very file as it is."""
    if rec.record_is_for(record, st) and rec.record_matches(record, st):
        return record.sha256
    return None


def inspect_model(layout: store.Layout, name: str, verify: bool = False) -> Tuple[os.stat_result, Known, bool]:
    """(stat, Known, cached) for a model. ``cached`` is False only when this call read the
    whole file to hash it: when ``verify`` is set, or no record or cache entry still matches.
    A full read that disagrees with the producer's record raises IntegrityError (and marks the
    model corrupt until it is installed again)."""
    fd, st = _open_or_explain(layout, name)
    try:
        identity = _identity(st)
        corruption = rec.read_corruption(layout, name)
        if corruption is not None and corruption.matches(st) and not verify:
            raise _corrupt(name, corruption)
        if not verify:
            known = _cache_get(identity)
            if known is not None:
                return st, known, True
        record = rec.read_record(layout, name)
        sha256 = None if verify else _trusted_sha256(record, st)
        cached = sha256 is not None
        if cached:
            fmt, details = _analyse(fd, st.st_size, name)
        else:
            sha256, (fmt, details) = _hash_and_analyse(fd, st, name)
            _check_integrity(layout, name, st, sha256, record)
            if corruption is not None and corruption.matches(st):
                rec.clear_corruption(layout, name)  # the same file hashes right again
    finally:
        os.close(fd)
    known = Known(sha256=sha256, format=fmt, analysis=details)
    _cache_put(identity, known)
    return st, known, cached


def _expected(record: Optional[rec.ModelRecord], st: os.stat_result) -> set:
    if not rec.record_is_for(record, st):
        return set()  # no record, or one for a file since replaced: nothing to compare with
    return {v for v in (record.sha256, record.declared_sha256) if v}


def _check_integrity(layout: store.Layout, name: str, st: os.stat_result, sha256: str,
                     record: Optional[rec.ModelRecord]) -> None:
    """Compare a fresh hash with the producer's record (and the uploader's declared sha256).

    A mismatch is confirmed under the name's lock, which the producer holds while it renames a
    new version into place and writes its record: a reader that caught that instant sees the
    new record then, not a corruption."""
    if not _expected(record, st) - {sha256}:
        return
    with store.name_lock(layout, name):
        record = rec.read_record(layout, name)
        try:
            now = os.stat(layout.model_path(name))
        except OSError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise ModelChanging(f"model {name!r} was replaced while it was being read; retry")
        expected = _expected(record, st)
        if not expected - {sha256}:
            return
        corruption = rec.Corruption(name=name, ino=st.st_ino, size=st.st_size, mtime_ns=st.st_mtime_ns,
                                    expected_sha256=record.sha256, actual_sha256=sha256,
                                    detected_at=common.utc_iso(time.time()))
        rec.write_corruption(layout, corruption)
    log.error("model bytes differ from the producer's record: marked corrupt", key=name, sha256=sha256,
              recorded_sha256=record.sha256, declared_sha256=record.declared_sha256)
    raise _corrupt(name, corruption)


def _hash_and_analyse(fd: int, st: os.stat_result, name: str):
    """One full SHA-256 pass, then the analysis (headers and sample, now in the page cache)."""
    sha256, nbytes = stream.hash_fd(fd)
    if nbytes != st.st_size or _identity(os.fstat(fd)) != _identity(st):
        raise ModelChanging(f"model {name!r} changed while it was being read; retry")
    return sha256, _analyse(fd, st.st_size, name)


def _analyse(fd: int, size: int, name: str) -> Tuple[str, Dict[str, Any]]:
    """The content analysis, or, if it fails (a bug of ours on some file), a result without it:
    a prediction never fails because a header could not be understood."""
    try:
        fmt, details = analysis.analyse(fd, size)
        json.dumps(details, allow_nan=False)  # what the response will do; never let it fail there
        return fmt, details
    except (MemoryError, RecursionError, Exception) as exc:  # noqa: B014 - both named on purpose
        log.error("analysis failed; answering without it", key=name, error=type(exc).__name__,
                  detail=str(exc)[:300], traceback=traceback.format_exc(limit=8))
        return "unknown", {"error": f"the analysis failed ({type(exc).__name__}); the file was not analysed"}


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


def _entry(layout: store.Layout, name: str, st: os.stat_result, index: Optional[set] = None) -> Dict[str, Any]:
    """A model as the listing shows it; ``index`` (the meta directory's names) saves opening
    records that do not exist."""
    def has(cls) -> bool:
        return index is None or rec.has(index, layout, name, cls)

    record = rec.read_record(layout, name) if has(rec.ModelRecord) else None
    sha256 = _trusted_sha256(record, st)
    if sha256 is None:
        known = _cache.get(_identity(st))
        sha256 = known.sha256 if known else None
    obj: Dict[str, Any] = {"name": name, "size": st.st_size, "sha256": sha256, "modified": _modified(st)}
    corruption = rec.read_corruption(layout, name) if has(rec.Corruption) else None
    if corruption is not None and corruption.matches(st):
        obj["sha256"] = corruption.actual_sha256
        obj["corrupt"] = corruption.public()
    refusal = rec.read_refusal(layout, name) if has(rec.Refusal) else None
    if refusal is not None:
        obj["rejected"] = refusal.public()
    return obj


def describe_model(layout: store.Layout, name: str) -> Dict[str, Any]:
    """name, size, sha256 (null when unknown without a full read), modified; plus ``rejected``
    when a later upload of this name was refused while this version stays in place, and
    ``corrupt`` when its bytes were found changed since the producer installed it."""
    fd, st = _open_or_explain(layout, name)
    os.close(fd)
    return _entry(layout, name, st)


def list_models(layout: store.Layout, limit: Optional[int] = None) -> Dict[str, Any]:
    """Every model with its size, sha256 (when known without reading) and mtime; at most
    MAX_LISTED of them (then ``truncated`` is set) to stay far below Lambda's 6 MB response.
    ``orphaned`` counts the temporary files that killed copies left on EFS, if any."""
    limit = MAX_LISTED if limit is None else limit
    found = list(store.iter_models(layout, limit + 1))
    index = rec.meta_index(layout)
    result: Dict[str, Any] = {"models": [_entry(layout, name, st, index) for name, st in found[:limit]]}
    if len(found) > limit:
        result["truncated"] = True
    files, nbytes = store.orphaned_temps(layout)
    if files:
        result["orphaned"] = {"files": files, "bytes": nbytes}
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
        document = json.loads(raw.decode("utf-8"), parse_constant=reject_json_constant)
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
    try:
        name = common.validate_model_name(request.name)
    except InvalidModelName:
        # an upload under a name that breaks the rules was refused: say so rather than only "invalid"
        refusal = rec.read_refusal(layout, request.name) if len(request.name) <= 2048 else None
        if refusal is None:
            raise
        raise _refused(request.name, refusal) from None
    return 200, json.dumps(describe_model(layout, name)).encode()


ROUTES = {
    ("POST", "/predict"): _route_predict,
    ("GET", "/models"): _route_list,
    ("GET", "/models/{name+}"): _route_describe,
}


def classify(exc: BaseException) -> Tuple[int, str]:
    """(HTTP status, log level) for an exception, from ERRORS (most specific class first)."""
    for cls in type(exc).__mro__:
        if cls in ERRORS:
            return ERRORS[cls]
    return UNEXPECTED


def _error_body(code: str, message: str, details: Optional[dict] = None) -> bytes:
    error = {"code": code, "message": message}
    for key, value in (details or {}).items():
        error.setdefault(key, value)
    return json.dumps({"error": error}).encode()


def _response(status: int, body: bytes) -> Dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"},
            "body": body.decode(), "isBase64Encoded": False}


def _prepare(layout: store.Layout) -> None:
    if layout.root not in _prepared:
        layout.ensure()
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
    except Exception as exc:
        status, level = classify(exc)
        if isinstance(exc, HandlerError) and status != UNEXPECTED[0]:
            body = _error_body(exc.code, str(exc), exc.details)
            log.log(level, "request refused", route=route, status=status, error=exc.code, detail=str(exc)[:300])
        else:
            body = _error_body("InternalError", f"internal error; request id {request_id}")
            log.log(level, "unhandled error", route=route, error=type(exc).__name__, detail=str(exc)[:500],
                    traceback=traceback.format_exc(limit=8))
    log.info("request done", route=route, status=status,
             duration_ms=round((time.perf_counter() - started) * 1000, 3))
    return _response(status, body)
