"""Text and JSON, judged on a bounded streaming read rather than on the sample alone.

One pass over the first ``TEXT_MAX_BYTES`` validates UTF-8 (an incremental decoder), counts
lines, and runs a JSON grammar over regex tokens, counting the top-level keys or items. Memory
stays at one chunk plus the nesting stack, whatever the file (a 2 GB JSON is never parsed
whole); a file longer than the budget is reported with ``complete: false``.
"""

from __future__ import annotations

import codecs
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

Analysis = Dict[str, Any]

TEXT_MAX_BYTES = 64 << 20
CHUNK = 1 << 20
MAX_DEPTH = 512
MAX_TOKEN = 16 << 20  # a string this long is carried across chunks; a longer one ends the JSON check
_CONTROL_BYTES = bytes(b for b in range(32) if chr(b) not in "\t\n\r\f\v\b") + b"\x7f"
_TOKEN = re.compile(rb'[ \t\n\r]*(?:("(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")'
                    rb"|(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)|(true|false|null)|([{}\[\]:,]))")
# What a token cut by the end of a chunk can look like: the start of a string, number or literal.
_PARTIAL = re.compile(rb'[ \t\n\r]*(?:"(?:[^"\\\x00-\x1f]|\\.)*\\?|-?[0-9]*(?:\.[0-9]*)?(?:[eE][-+]?[0-9]*)?'
                      rb"|t(?:ru?)?|f(?:a(?:ls?)?)?|n(?:ul?)?)")
_NUMBER_TAIL = re.compile(rb"[0-9.eE+-]*")
_SPACE = re.compile(rb"[ \t\n\r]*")
_TYPES = {b"{": "object", b"[": "array", b'"': "string"}


class _Json:
    """A JSON grammar over a stream of tokens. ``feed`` returns False once the input is not
    JSON; ``keys``/``items`` count the top-level container's members."""

    def __init__(self) -> None:
        self.stack: List[bytes] = []
        self.expect = "value"  # value | key | colon | comma | value_or_end | key_or_end | done
        self.type: Optional[str] = None
        self.members = 0

    def token(self, kind: int, text: bytes) -> bool:
        expect = self.expect
        if expect == "done":
            return False
        if kind == 4 and text in (b"}", b"]"):
            opener = b"{" if text == b"}" else b"["
            if not self.stack or self.stack[-1] != opener or expect not in ("comma", f"{'key' if opener == b'{' else 'value'}_or_end"):
                return False
            self.stack.pop()
            return self._value_done()
        if expect in ("key", "key_or_end"):
            if kind != 1:
                return False
            self.expect = "colon"
            return True
        if expect == "colon":
            if text != b":":
                return False
            self.expect = "value"
            return True
        if expect == "comma":
            if text != b",":
                return False
            self.expect = "key" if self.stack[-1] == b"{" else "value"
            return True
        # a value is expected
        if kind == 4:
            if text not in (b"{", b"["):
                return False
            if self.type is None:
                self.type = _TYPES[text]
            if len(self.stack) >= MAX_DEPTH:
                return False
            self.stack.append(text)
            self.expect = "key_or_end" if text == b"{" else "value_or_end"
            return True
        if self.type is None:
            self.type = {1: "string", 2: "number", 3: "literal"}[kind]
        return self._value_done()

    def _value_done(self) -> bool:
        if len(self.stack) == 1:
            self.members += 1  # a member of the top-level container just ended
        self.expect = "comma" if self.stack else "done"
        return True

    def result(self) -> Analysis:
        if self.type == "object":
            return {"type": "object", "keys": self.members}
        if self.type == "array":
            return {"type": "array", "items": self.members}
        return {"type": self.type}


def _tokens(machine: _Json, buf: bytes, final: bool) -> Tuple[bool, int]:
    """Feed the complete tokens of ``buf``: (still JSON, bytes consumed). Unless ``final``, the
    bytes after the last complete token may be the start of one that the next chunk ends."""
    pos, end = 0, len(buf)
    for match in _TOKEN.finditer(buf):
        if match.start() != pos or (match.lastindex == 2 and not final and _NUMBER_TAIL.fullmatch(buf, match.end())):
            break  # a gap (maybe a cut token), or a number the next chunk may continue ("1.5" + "e-9")
        kind = match.lastindex
        if not machine.token(kind, match.group(kind)):
            return False, pos
        pos = match.end()
    if _SPACE.fullmatch(buf, pos):
        return True, end
    if not final and end - pos <= MAX_TOKEN and _PARTIAL.fullmatch(buf, pos):
        return True, pos  # carried into the next chunk
    return False, pos


def text(read: Callable[[int, int], bytes], size: int, sample: bytes) -> Optional[Tuple[str, Analysis]]:
    """("json" | "text", analysis) for UTF-8 text, else None. ``read(n, offset)`` reads the file."""
    if b"\x00" in sample:
        return None
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    if controls > len(sample) // 100:
        return None
    decoder = codecs.getincrementaldecoder("utf-8")()
    machine: Optional[_Json] = _Json()
    limit = min(size, TEXT_MAX_BYTES)
    offset, lines, carry, last = 0, 0, b"", b""
    while offset < limit:
        raw = read(min(CHUNK, limit - offset), offset)
        if not raw:
            break
        chunk = raw[3:] if offset == 0 and raw.startswith(codecs.BOM_UTF8) else raw
        offset += len(raw)
        final = offset >= size
        try:
            decoder.decode(chunk, final=final)
        except UnicodeDecodeError:
            return None
        if b"\x00" in chunk:
            return None
        lines += chunk.count(b"\n")
        last = chunk[-1:]
        if machine is not None:
            ok, used = _tokens(machine, carry + chunk, final)
            carry = (carry + chunk)[used:] if ok else b""
            if not ok:
                machine = None
    complete = offset >= size
    if machine is not None and (machine.expect == "done" or not complete) and machine.type in ("object", "array"):
        result = machine.result()
        if not complete:
            result["complete"] = False
        return "json", result
    result = {"encoding": "utf-8", "lines": lines + (1 if last and last != b"\n" else 0)}
    if not complete:
        result["complete"] = False
    return "text", result
