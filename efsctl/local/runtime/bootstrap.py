"""The program inside one local Lambda execution environment (a warm worker process).

Standard library only, run by path with ``python -I -u -B``: it imports nothing from efsctl and
puts only the deployed code (``LAMBDA_TASK_ROOT``, the extracted zip) in front of ``sys.path``,
as Lambda's ``/var/task``. It imports the handler once (the init phase), then serves invocations
one at a time over two pipes until the parent closes them.

Frames on the pipes: ``>II`` (header length, body length), a JSON header, raw body bytes.
The handler's stdout and stderr are the process's fds 1 and 2 (a pipe the parent reads as log
lines); after each invocation a sentinel line on fd 1 tells the parent it has all the output.
"""

import importlib
import json
import logging
import os
import resource
import struct
import sys
import time
import traceback

FRAME = struct.Struct(">II")
SENTINEL = b"\x1eefsctl-end "


def read_exact(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv(fd):
    head = read_exact(fd, FRAME.size)
    if head is None:
        return None, None
    hlen, blen = FRAME.unpack(head)
    header = json.loads(read_exact(fd, hlen) or b"{}")
    body = read_exact(fd, blen) if blen else b""
    return header, body


def send(fd, header, body=b""):
    data = json.dumps(header).encode()
    view = memoryview(FRAME.pack(len(data), len(body)) + data + body)
    while view:
        view = view[os.write(fd, view):]


def max_rss_kb():
    # VmHWM, not ru_maxrss: getrusage's peak survives execve, so it would report the daemon's.
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class LambdaContext:
    """The context object Lambda passes to a Python handler."""

    def __init__(self, request_id, deadline_ms, arn):
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - time.time() * 1000))


class RequestIdFilter(logging.Filter):
    request_id = ""

    def filter(self, record):
        record.aws_request_id = RequestIdFilter.request_id
        return True


def setup_logging():
    # Lambda's Python runtime puts one handler on the root logger with this format.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n", "%Y-%m-%dT%H:%M:%S"))
    handler.formatter.converter = time.gmtime
    handler.addFilter(RequestIdFilter())
    logging.getLogger().addHandler(handler)


def error_of(exc, error_type=None, skip=0):
    tb = exc.__traceback__
    for _ in range(skip):
        tb = tb.tb_next if tb is not None else None
    return {"errorMessage": str(exc), "errorType": error_type or type(exc).__name__,
            "requestId": "", "stackTrace": traceback.format_list(traceback.extract_tb(tb))}


def load_handler(name):
    try:
        module_name, func_name = name.rsplit(".", 1)
    except ValueError as exc:
        return None, {"errorMessage": f"Bad handler '{name}': {exc}", "errorType": "Runtime.MalformedHandlerName",
                      "requestId": "", "stackTrace": []}
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        return None, {"errorMessage": f"Unable to import module '{module_name}': {exc}",
                      "errorType": "Runtime.ImportModuleError", "requestId": "", "stackTrace": []}
    except Exception as exc:  # noqa: BLE001 - any error at import is the function's init error
        err = error_of(exc, skip=1)
        err["errorType"] = "Runtime.UserCodeSyntaxError" if isinstance(exc, SyntaxError) else err["errorType"]
        return None, err
    func = getattr(module, func_name, None)
    if func is None:
        return None, {"errorMessage": f"Handler '{func_name}' missing on module '{module_name}'",
                      "errorType": "Runtime.HandlerNotFound", "requestId": "", "stackTrace": []}
    return func, None


def log_error(err):
    text = f"[ERROR] {err['errorType']}: {err['errorMessage']}"
    if err.get("stackTrace"):
        text += "\nTraceback (most recent call last):\n" + "".join(err["stackTrace"]).rstrip("\n")
    return text


def main():
    req_fd, resp_fd = int(sys.argv[1]), int(sys.argv[2])
    sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
    os.chdir(os.environ["LAMBDA_TASK_ROOT"])
    setup_logging()
    started = time.perf_counter()
    handler, init_error = load_handler(os.environ.get("_HANDLER", ""))
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, SENTINEL + b"init\n")
    send(resp_fd, {"type": "ready", "error": init_error, "init_ms": (time.perf_counter() - started) * 1000,
                   "max_rss_kb": max_rss_kb()})
    if init_error:
        return
    while True:
        header, event_bytes = recv(req_fd)
        if header is None:
            return
        request_id = header["request_id"]
        RequestIdFilter.request_id = request_id
        context = LambdaContext(request_id, header["deadline_ms"], header["arn"])
        reply = {"type": "result", "error": None}
        body = b""
        try:
            event = json.loads(event_bytes or b"{}")
            result = handler(event, context)
            try:
                body = json.dumps(result).encode()
            except (TypeError, ValueError) as exc:
                reply["error"] = {"errorMessage": f"Unable to marshal response: {exc}",
                                  "errorType": "Runtime.MarshalError", "requestId": request_id, "stackTrace": []}
        except Exception as exc:  # noqa: BLE001 - reported to the caller as Lambda does
            reply["error"] = error_of(exc, skip=1)
            reply["error"]["requestId"] = request_id
        if reply["error"]:
            reply["log"] = log_error(reply["error"])
            body = json.dumps({k: v for k, v in reply["error"].items() if k != "requestId" or v}).encode()
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(1, SENTINEL + request_id.encode() + b"\n")
        reply["max_rss_kb"] = max_rss_kb()
        send(resp_fd, reply, body)


if __name__ == "__main__":
    main()
