"""Model names: the same rules the handlers enforce (DESIGN section 4), checked before any call.

A model name is a relative path such as ``resnet.safetensors`` or ``team/a.gguf``. The CLI
refuses a bad name before anything reaches S3 or the API, so a typo never leaves an object
the producer would ignore. Beyond DESIGN's list the handlers also refuse ASCII control
characters, segments over 255 bytes (a file name's limit on EFS) and a leading dot in any
segment (dot names are where the producer keeps its temporary files and metadata); so does
this module, rule for rule.
"""

from __future__ import annotations

from efsctl.errors import ConfigError

MAX_NAME_BYTES = 1024
MAX_SEGMENT_BYTES = 255
# `efsctl validate` writes its models here, one folder per run, and removes them after; the
# producer's removal of validation data (lambda_code/efs_scratch.py) touches nothing else.
RESERVED_PREFIX = "efsctl-validate/"


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid model name, or ``None`` when it is."""
    if not isinstance(name, str) or name == "":
        return "it is empty"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid UTF-8"
    if size > MAX_NAME_BYTES:
        return f"it is {size} bytes long (at most {MAX_NAME_BYTES} bytes in UTF-8)"
    if "\x00" in name:
        return "it contains a NUL character"
    if "\\" in name:
        return "it contains a backslash (use '/' between folders)"
    control = next((ch for ch in name if ord(ch) < 0x20 or ord(ch) == 0x7F), None)
    if control is not None:
        return f"it contains the control character U+{ord(control):04X}"
    if name.startswith("/"):
        return "it starts with '/' (names are relative paths)"
    for segment in name.split("/"):
        if segment == "":
            return "it has an empty path segment ('//' or a trailing '/')"
        if segment in (".", ".."):
            return f"it has a {segment!r} path segment"
        if segment.startswith("."):
            return f"a path segment starts with a dot ({segment[:40]!r})"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"a path segment is over {MAX_SEGMENT_BYTES} bytes ({segment[:40]!r}...)"
    return None


def validate_model_name(name: str) -> str:
    """Return ``name`` unchanged, or raise :class:`ConfigError` (exit 2) saying what is wrong."""
    problem = name_problem(name)
    if problem:
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise ConfigError(
            f"Invalid model name {shown!r}: {problem}.",
            "Model names are relative paths like 'resnet.safetensors' or 'team/a.gguf': no leading slash, "
            "no empty segments or segments starting with a dot, no backslash or control characters, "
            "at most 1024 bytes (255 per segment).",
        )
    return name


def check_not_reserved(name: str) -> str:
    """Return ``name``, or raise :class:`ConfigError` if it lies in ``efsctl validate``'s folder."""
    if name.startswith(RESERVED_PREFIX):
        raise ConfigError(f"Model names under {RESERVED_PREFIX} are reserved for `efsctl validate`, which removes "
                          "what it writes there.", "Pick another --name.")
    return name


def model_key(name: str, prefix: str = "models/") -> str:
    """The S3 key a model is uploaded under."""
    return prefix + validate_model_name(name)
