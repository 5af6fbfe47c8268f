"""``efsctl tail-logs``: both functions' logs, interleaved by time, as a generator.

:func:`tail` yields :class:`LogEvent` objects: first the history since ``--since`` (every
group read with FilterLogEvents, merged by timestamp), then, with ``follow``, new events as
they arrive: from a StartLiveTail session where the endpoint supports it, else by polling
FilterLogEvents from a little before the newest event seen and dropping event ids already
yielded. The generator never sleeps on its own clock: tests pass a clock whose ``sleep``
raises ``KeyboardInterrupt`` to end a follow.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from efsctl.errors import ConfigError
from efsctl.waits import Clock, Poll

# CloudWatch may ingest an event a few seconds after its timestamp; re-read that much.
OVERLAP_MS = 15_000
FOLLOW_POLL = Poll(floor=1.0, ceiling=5.0, fraction=0.1)
LIVE_MIN_SESSION_S = 30.0
FUNCTION_STYLES = {"producer": "cyan", "consumer": "magenta"}
LEVEL_STYLES = {"ERROR": "bold red", "CRITICAL": "bold red", "FATAL": "bold red", "WARNING": "yellow",
                "WARN": "yellow", "INFO": "green", "DEBUG": "dim"}
PLATFORM_PREFIXES = ("START RequestId:", "END RequestId:", "REPORT RequestId:", "INIT_START", "INIT_REPORT",
                     "EXTENSION", "TELEMETRY", "RESTORE_START", "RESTORE_REPORT")
BUSINESS_KEYS = ("key", "model", "bytes", "size", "sha256", "duration_ms", "status", "error")
RECORD_META = {"ts", "timestamp", "time", "level", "fn", "function", "request_id", "requestId", "msg",
               "message", "logger", "location"}
_RUNTIME_LINE = re.compile(r"^\[(?P<level>[A-Z]+)\]\t(?P<ts>\S+)\t(?P<rid>\S+)\t(?P<msg>.*)$", re.S)
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# -- events ------------------------------------------------------------------------------

@dataclass
class LogEvent:
    timestamp_ms: int
    function: str
    group: str
    stream: str
    message: str
    event_id: str | None = None
    record: dict[str, Any] | None = field(default=None, repr=False)
    level: str | None = None
    text: str = ""
    platform: bool = False

    @classmethod
    def parse(cls, raw: dict[str, Any], function: str, group: str) -> "LogEvent":
        message = str(raw.get("message", "")).rstrip("\n")
        event = cls(timestamp_ms=int(raw.get("timestamp") or 0), function=function, group=group,
                    stream=str(raw.get("logStreamName", "")), message=message, event_id=raw.get("eventId"))
        event._interpret()
        return event

    def _interpret(self) -> None:
        text = self.message.strip()
        if text.startswith(PLATFORM_PREFIXES):
            self.platform, self.text = True, text
            return
        runtime = _RUNTIME_LINE.match(text)
        if runtime:  # the Python runtime's own "[LEVEL]\tts\trequest-id\tmessage" lines
            self.level, text = runtime.group("level"), runtime.group("msg").strip()
        if text.startswith("{"):
            try:
                record = json.loads(text)
            except ValueError:
                record = None
            if isinstance(record, dict):
                self.record = record
                self.level = str(record.get("level") or self.level or "").upper() or None
                self.text = str(record.get("msg") or record.get("message") or "")
                return
        self.text = text

    @property
    def request_id(self) -> str | None:
        if self.record:
            return self.record.get("request_id") or self.record.get("requestId")
        return None

    def key(self) -> tuple:
        return (self.group, self.stream, self.timestamp_ms, self.message)

    def to_dict(self) -> dict[str, Any]:
        return {"timestamp": iso_ms(self.timestamp_ms), "timestamp_ms": self.timestamp_ms,
                "function": self.function, "log_group": self.group, "log_stream": self.stream,
                "event_id": self.event_id, "level": self.level, "message": self.message,
                "record": self.record}


def iso_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


# -- --since -----------------------------------------------------------------------------

def parse_since(text: str, now_s: float | None = None) -> int:
    """``10m``, ``1h``, ``2d``, ``30s``, ``1w`` ago, or an ISO 8601 time (UTC unless it says
    otherwise), as epoch milliseconds."""
    now_s = time.time() if now_s is None else now_s
    match = _DURATION.match(text or "")
    if match:
        since_ms = int((now_s - int(match.group(1)) * _UNITS[match.group(2).lower()]) * 1000)
    else:
        try:
            when = dt.datetime.fromisoformat((text or "").strip())
        except ValueError:
            raise ConfigError(f"Cannot read --since {text!r}.", SINCE_HINT) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        try:
            since_ms = int(when.timestamp() * 1000)
        except (OverflowError, OSError, ValueError):
            since_ms = -1
    # CloudWatch Logs counts time from 1970 and keeps events ten years at most.
    if since_ms < 0:
        raise ConfigError(f"--since {text} reaches back before 1970, where CloudWatch Logs keeps nothing.", SINCE_HINT)
    if since_ms > now_s * 1000 + 60_000:
        raise ConfigError(f"--since {text} is in the future.", SINCE_HINT)
    return since_ms


SINCE_HINT = "Use a duration like 30s, 10m, 1h or 2d, or an ISO time like 2024-05-01T12:00:00Z."


# -- reading -----------------------------------------------------------------------------

def server_pattern(filter_text: str | None) -> str | None:
    """A CloudWatch filter pattern for ``--filter`` (a quoted term), or ``None`` when the text
    cannot be quoted; matching is then done here only."""
    if not filter_text or '"' in filter_text or "\\" in filter_text:
        return None
    return f'"{filter_text}"'


def _matches(event: LogEvent, filter_text: str | None) -> bool:
    return not filter_text or filter_text in event.message


def read_window(reader: Any, groups: dict[str, str], start_ms: int, end_ms: int | None = None,
                filter_text: str | None = None) -> list[LogEvent]:
    """Every event of every group in the window, sorted by time (then group and stream)."""
    pattern = server_pattern(filter_text)
    events = [LogEvent.parse(raw, function, group)
              for function, group in groups.items()
              for raw in reader.filter(group, start_ms, end_ms, pattern)]
    events = [e for e in events if _matches(e, filter_text)]
    # Stable: events of one stream in the same millisecond keep the order CloudWatch returned.
    events.sort(key=lambda e: (e.timestamp_ms, e.group, e.stream))
    return events


class _Seen:
    """Events already yielded, by event id and by content (live-tail events carry no id),
    forgotten once older than the re-read window; ``newest`` is the latest timestamp yielded."""

    def __init__(self, since_ms: int) -> None:
        self._seen: dict[Any, int] = {}
        self.newest = since_ms

    def add(self, event: LogEvent) -> bool:
        content = event.key()
        # Two identical lines in one stream and millisecond are distinct events when they have
        # ids; content only matches live-tail events (no id) against what was read before.
        if (event.event_id in self._seen) if event.event_id else (content in self._seen):
            return False
        self._seen[content] = event.timestamp_ms
        if event.event_id:
            self._seen[event.event_id] = event.timestamp_ms
        self.newest = max(self.newest, event.timestamp_ms)
        return True

    def prune(self) -> None:
        before_ms = self.newest - 2 * OVERLAP_MS
        self._seen = {k: ts for k, ts in self._seen.items() if ts >= before_ms}

    def __len__(self) -> int:
        return len(self._seen)


def tail(reader: Any, groups: dict[str, str], *, since_ms: int, follow: bool = False,
         filter_text: str | None = None, live: bool = False, clock: Clock | None = None,
         notice: Callable[[str], None] | None = None,
         following: Callable[[], None] | None = None) -> Iterator[LogEvent]:
    """The events of ``groups`` (``{function: log group}``) since ``since_ms``, then new ones
    while ``follow``; ends only when the caller stops iterating (or a sleep raises).
    ``following()`` is called once the history is out and the follow begins."""
    clock = clock or Clock()
    seen = _Seen(since_ms)
    for event in read_window(reader, groups, since_ms, None, filter_text):
        if seen.add(event):
            yield event
    if not follow:
        return
    if following:
        following()
    if live:
        try:
            yield from _live(reader, groups, filter_text, clock, seen)
            return
        except _LiveUnavailable as exc:
            if notice:
                notice(f"Live tail is not available ({exc}); polling every few seconds instead.")
    yield from _poll(reader, groups, filter_text, clock, seen, since_ms)


def tail_stack(aws: Any, target: Any, *, function: str = "all", since_ms: int, follow: bool = False,
               filter_text: str | None = None, notice: Callable[[str], None] | None = None,
               following: Callable[[], None] | None = None) -> Iterator[LogEvent]:
    """:func:`tail` for a stack (``target``: its :class:`~efsctl.drive.target.DriveTarget`):
    ``function`` is ``producer``, ``consumer`` or ``all``; a follow on AWS uses Live Tail."""
    from efsctl.aws.logs_tail import LogsReader

    groups = {fn: group for fn, group in target.log_groups.items() if function in ("all", fn)}
    live = follow and not target.is_local and not aws.endpoint_url
    return tail(LogsReader(aws), groups, since_ms=since_ms, follow=follow, filter_text=filter_text, live=live,
                notice=notice, following=following)


def _poll(reader: Any, groups: dict[str, str], filter_text: str | None, clock: Clock, seen: _Seen,
          since_ms: int) -> Iterator[LogEvent]:
    idle_since = clock.now()
    while True:
        clock.sleep(FOLLOW_POLL.interval(clock.now() - idle_since))
        start = max(since_ms, seen.newest - OVERLAP_MS)
        fresh = [e for e in read_window(reader, groups, start, None, filter_text) if seen.add(e)]
        if fresh:
            idle_since = clock.now()
        yield from fresh
        seen.prune()


class _LiveUnavailable(Exception):
    pass


def _live(reader: Any, groups: dict[str, str], filter_text: str | None, clock: Clock,
          seen: _Seen) -> Iterator[LogEvent]:
    from efsctl.aws.logs_tail import LiveTailUnavailable

    arns: dict[str, tuple[str, str]] = {}
    for function, group in groups.items():
        arn = reader.group_arn(group)
        if not arn:
            raise _LiveUnavailable(f"log group {group} does not exist yet")
        arns[arn] = (function, group)
    pattern = server_pattern(filter_text)
    while True:
        started = clock.now()
        first = True
        try:
            for batch in reader.live_tail(list(arns), pattern):
                events = []
                if first:  # what arrived between the history read and the session start
                    first = False
                    events += [e for e in read_window(reader, groups, seen.newest - OVERLAP_MS, None,
                                                      filter_text) if seen.add(e)]
                for raw in batch:
                    ident = str(raw.get("logGroupIdentifier", ""))
                    function, group = arns.get(ident) or arns.get(ident.removesuffix(":*")) or _by_name(groups, ident)
                    event = LogEvent.parse(raw, function, group)
                    if _matches(event, filter_text) and seen.add(event):
                        events.append(event)
                events.sort(key=lambda e: e.timestamp_ms)
                yield from events
                seen.prune()
        except LiveTailUnavailable as exc:
            raise _LiveUnavailable(str(exc)) from None
        if clock.now() - started < LIVE_MIN_SESSION_S:
            raise _LiveUnavailable("the live tail session ended at once")


def _by_name(groups: dict[str, str], ident: str) -> tuple[str, str]:
    for function, group in groups.items():
        if ident.endswith(group) or ident.endswith(group + ":*"):
            return function, group
    return "?", ident


# -- rendering ---------------------------------------------------------------------------

def render(event: LogEvent, *, width: int = 8) -> Any:
    """A rich ``Text`` line: time, function (coloured), level, message, business keys."""
    from rich.text import Text

    stamp = dt.datetime.fromtimestamp(event.timestamp_ms / 1000).strftime("%H:%M:%S.%f")[:-3]
    line = Text()
    line.append(stamp, style="dim")
    line.append(" ")
    line.append(f"{event.function:<{width}}", style=FUNCTION_STYLES.get(event.function, "blue"))
    line.append(" ")
    if event.platform:
        line.append(event.text, style="dim")
        return line
    level = (event.level or "").upper()
    line.append(f"{level:<5}", style=LEVEL_STYLES.get(level, ""))
    line.append(" ")
    line.append(event.text, style="bold red" if level in ("ERROR", "CRITICAL") else "")
    for key, value in business_keys(event.record):
        line.append(f" {key}=", style="dim")
        line.append(value)
    if event.request_id:
        line.append(f" [{str(event.request_id)[:8]}]", style="dim")
    return line


def business_keys(record: dict[str, Any] | None) -> Iterable[tuple[str, str]]:
    if not record:
        return []
    keys = [k for k in BUSINESS_KEYS if k in record]
    keys += [k for k in record if k not in RECORD_META and k not in BUSINESS_KEYS]
    out = []
    for key in keys:
        value = record[key]
        if key == "sha256" and isinstance(value, str) and len(value) > 16:
            value = value[:12] + "…"
        elif isinstance(value, (dict, list)):
            value = json.dumps(value, separators=(",", ":"))[:120]
        out.append((key, str(value)))
    return out
