"""tail-logs: FilterLogEvents pages, interleaving, de-dup, --since, follow and its end, rendering."""

import datetime as dt
import json

import pytest

from efsctl.drive.logs import LogEvent, parse_since, read_window, render, tail
from efsctl.errors import ConfigError
from efsctl.waits import FakeClock

REGION = "us-east-1"
PRODUCER, CONSUMER = "/aws/lambda/efsctl-default-producer", "/aws/lambda/efsctl-default-consumer"
GROUPS = {"producer": PRODUCER, "consumer": CONSUMER}
T0 = (int(dt.datetime.now(dt.timezone.utc).timestamp()) // 3600 - 1) * 3_600_000  # AWS refuses events > 14 days old


def logs():
    import boto3

    return boto3.client("logs", region_name=REGION)


def put(group, stream, *events):
    client = logs()
    try:
        client.create_log_group(logGroupName=group)
    except client.exceptions.ResourceAlreadyExistsException:
        pass
    try:
        client.create_log_stream(logGroupName=group, logStreamName=stream)
    except client.exceptions.ResourceAlreadyExistsException:
        pass
    client.put_log_events(logGroupName=group, logStreamName=stream,
                          logEvents=[{"timestamp": ts, "message": msg} for ts, msg in events])


def record(**fields):
    return json.dumps({"ts": "x", "level": "INFO", "fn": "producer", "request_id": "0123456789abcdef", **fields})


def reader(page_size=None):
    from efsctl.aws.logs_tail import LogsReader
    from efsctl.aws.session import AwsContext

    return LogsReader(AwsContext(region=REGION), page_size=page_size)


class StopAfter(FakeClock):
    """A clock whose n-th sleep is a Ctrl-C."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def _sleep(self, seconds):
        super()._sleep(seconds)
        if len(self.sleeps) >= self.n:
            raise KeyboardInterrupt


# -- reading with moto --------------------------------------------------------------------

def test_history_interleaves_both_groups_across_pages(moto_drive):
    put(PRODUCER, "2024/01/01/[$LATEST]a", (T0 + 10, "p1"), (T0 + 30, "p3"), (T0 + 50, "p5"))
    put(PRODUCER, "2024/01/01/[$LATEST]b", (T0 + 40, "p4"))
    put(CONSUMER, "2024/01/01/[$LATEST]c", (T0 + 20, "c2"), (T0 + 60, "c6"))
    events = read_window(reader(page_size=2), GROUPS, T0)
    assert [e.message for e in events] == ["p1", "c2", "p3", "p4", "p5", "c6"]
    assert [e.function for e in events] == ["producer", "consumer", "producer", "producer", "producer", "consumer"]
    assert all(e.event_id for e in events) and len({e.event_id for e in events}) == 6


def test_since_bounds_the_window(moto_drive):
    put(PRODUCER, "s", (T0, "old"), (T0 + 5000, "new"))
    assert [e.message for e in read_window(reader(), GROUPS, T0 + 1000)] == ["new"]


def test_missing_log_groups_are_not_an_error(moto_drive):
    assert read_window(reader(), GROUPS, T0) == []
    put(CONSUMER, "s", (T0 + 1, "only the consumer ran"))
    assert [e.function for e in read_window(reader(), GROUPS, T0)] == ["consumer"]


def test_filter_text(moto_drive):
    put(PRODUCER, "s", (T0 + 1, record(msg="copied", key="models/a b.bin")), (T0 + 2, record(msg="skipped")))
    events = read_window(reader(), GROUPS, T0, filter_text="a b.bin")
    assert [e.text for e in events] == ["copied"]


def test_live_tail_against_moto(moto_drive):
    put(PRODUCER, "s", (T0 + 1, "hello"))
    r = reader()
    arn = r.group_arn(PRODUCER)
    assert arn.endswith(":log-group:" + PRODUCER) and r.group_arn("/aws/lambda/nope") is None
    batches = list(r.live_tail([arn]))
    assert [e["message"] for batch in batches for e in batch] == ["hello"]


# -- follow with a fake reader ------------------------------------------------------------

class FakeReader:
    """FilterLogEvents answers per call (a list of pages per group); records each window."""

    def __init__(self, polls):
        self.polls = list(polls)
        self.windows = []
        self.current = None
        self.live_batches = None

    def filter(self, group, start_ms, end_ms=None, pattern=None):
        self.windows.append((group, start_ms))
        poll = self.polls[0] if self.polls else {}
        return [dict(e, logStreamName="s") for e in poll.get(group, []) if e["timestamp"] >= start_ms]

    def next_poll(self):
        if len(self.polls) > 1:
            self.polls.pop(0)

    def group_arn(self, group):
        return f"arn:aws:logs:us-east-1:1:log-group:{group}"

    def live_tail(self, arns, pattern=None):
        from efsctl.aws.logs_tail import LiveTailUnavailable

        if self.live_batches is None:
            raise LiveTailUnavailable("UnknownOperationException: not here")
        yield from self.live_batches


def ev(ts, msg, eid):
    return {"timestamp": ts, "message": msg, "eventId": eid}


def test_follow_polls_and_dedups_by_event_id():
    polls = [
        {PRODUCER: [ev(T0 + 1, "a", "1")]},
        {PRODUCER: [ev(T0 + 1, "a", "1"), ev(T0 + 2, "b", "2")], CONSUMER: [ev(T0 + 2, "c", "3")]},
        {PRODUCER: [ev(T0 + 1, "a", "1"), ev(T0 + 2, "b", "2")], CONSUMER: [ev(T0 + 2, "c", "3"), ev(T0 + 9, "d", "4")]},
    ]
    fake = FakeReader(polls)
    clock = StopAfter(4)

    original_sleep = clock._sleep

    def sleep(seconds):
        original_sleep(seconds)
        fake.next_poll()

    clock.sleep = sleep
    seen = []
    with pytest.raises(KeyboardInterrupt):
        for event in tail(fake, GROUPS, since_ms=T0, follow=True, clock=clock):
            seen.append(event.message)
    assert seen == ["a", "c", "b", "d"]  # same-millisecond events: ordered by group
    assert all(1.0 <= s <= 5.0 for s in clock.sleeps)
    # each poll re-reads from a little before the newest event seen, never from the start
    starts = [start for group, start in fake.windows[2:]]
    assert all(start >= T0 for start in starts)


def test_follow_without_events_is_quiet_and_bounded_in_interval():
    fake = FakeReader([{}])
    clock = StopAfter(30)
    with pytest.raises(KeyboardInterrupt):
        list(tail(fake, GROUPS, since_ms=T0, follow=True, clock=clock))
    assert clock.sleeps[0] == 1.0 and max(clock.sleeps) <= 5.0


def test_live_tail_is_used_when_available():
    fake = FakeReader([{PRODUCER: [ev(T0 + 1, "history", "1")]}])
    fake.live_batches = [[], [{"logGroupIdentifier": fake.group_arn(CONSUMER), "logStreamName": "s",
                               "timestamp": T0 + 5, "message": "live!"}]]
    # the session ends at once (as moto's does), so after its events tail falls back to polling
    notices = []
    events = tail(fake, GROUPS, since_ms=T0, follow=True, live=True, clock=StopAfter(1), notice=notices.append)
    got = []
    with pytest.raises(KeyboardInterrupt):
        for e in events:
            got.append((e.function, e.message))
    assert got == [("producer", "history"), ("consumer", "live!")]
    assert notices == ["Live tail is not available (the live tail session ended at once); polling every few "
                       "seconds instead."]


def test_live_tail_unavailable_falls_back_to_polling():
    fake = FakeReader([{PRODUCER: [ev(T0 + 1, "a", "1")]}])
    notices = []
    with pytest.raises(KeyboardInterrupt):
        list(tail(fake, GROUPS, since_ms=T0, follow=True, live=True, clock=StopAfter(2), notice=notices.append))
    assert notices and "polling" in notices[0] and "UnknownOperationException" in notices[0]


# -- --since ------------------------------------------------------------------------------

NOW = 1_714_564_800.0  # 2024-05-01T12:00:00Z


@pytest.mark.parametrize("text, seconds_ago", [("10m", 600), ("1h", 3600), ("2d", 172800), ("30s", 30),
                                               ("1w", 604800), (" 5M ", 300)])
def test_since_durations(text, seconds_ago):
    assert parse_since(text, NOW) == int((NOW - seconds_ago) * 1000)


@pytest.mark.parametrize("text, iso", [("2024-05-01T11:00:00Z", "2024-05-01T11:00:00+00:00"),
                                       ("2024-05-01T11:00:00", "2024-05-01T11:00:00+00:00"),
                                       ("2024-05-01T13:00:00+02:00", "2024-05-01T11:00:00+00:00"),
                                       ("2024-05-01", "2024-05-01T00:00:00+00:00")])
def test_since_iso(text, iso):
    assert parse_since(text, NOW) == int(dt.datetime.fromisoformat(iso).timestamp() * 1000)


@pytest.mark.parametrize("text", ["yesterday", "10x", "", "-5m"])
def test_since_rejects_garbage(text):
    with pytest.raises(ConfigError) as info:
        parse_since(text, NOW)
    assert info.value.exit_code == 2


# -- rendering ----------------------------------------------------------------------------

def test_render_handler_json_line():
    event = LogEvent.parse({"timestamp": T0, "message": record(msg="copied to EFS", key="models/a.bin", bytes=2048,
                                                               sha256="ab" * 32, duration_ms=12, extra="x") + "\n",
                            "eventId": "9", "logStreamName": "s"}, "producer", PRODUCER)
    text = render(event)
    assert event.level == "INFO" and event.text == "copied to EFS"
    assert "producer INFO  copied to EFS key=models/a.bin bytes=2048 sha256=abababababab… duration_ms=12 extra=x " \
           "[01234567]" in text.plain
    assert any(span.style == "cyan" for span in text.spans)


def test_render_platform_lines_dim_and_errors_red():
    start = LogEvent.parse({"timestamp": T0, "message": "START RequestId: abc Version: $LATEST\n"}, "consumer", CONSUMER)
    assert start.platform and start.level is None
    text = render(start)
    assert text.plain.endswith("consumer START RequestId: abc Version: $LATEST")
    assert any(span.style == "dim" and text.plain[span.start:span.end].startswith("START") for span in text.spans)
    error = LogEvent.parse({"timestamp": T0, "message": record(level="ERROR", msg="sha256 mismatch")}, "producer", PRODUCER)
    assert any(span.style == "bold red" for span in render(error).spans)
    runtime = LogEvent.parse({"timestamp": T0, "message": "[WARNING]\t2024-01-01T00:00:00.000Z\treq\tslow\n"},
                             "consumer", CONSUMER)
    assert runtime.level == "WARNING" and runtime.text == "slow"


def test_json_line_document():
    event = LogEvent.parse({"timestamp": T0, "message": record(msg="m", key="k"), "eventId": "7",
                            "logStreamName": "s"}, "producer", PRODUCER)
    doc = event.to_dict()
    assert doc["timestamp"] == dt.datetime.fromtimestamp(T0 / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:00:00.000Z")
    assert doc["timestamp_ms"] == T0
    assert doc["function"] == "producer" and doc["event_id"] == "7" and doc["record"]["key"] == "k"
    assert doc["level"] == "INFO" and doc["log_group"] == PRODUCER


# -- the command --------------------------------------------------------------------------

def now_ms():
    return int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)


def test_cli_tail_logs_text_and_json(cli, drive_stack):
    t = now_ms() - 60_000
    put(PRODUCER, "p", (t, "START RequestId: r1 Version: $LATEST"), (t + 2, record(msg="copied", key="models/m")))
    put(CONSUMER, "c", (t + 1, record(fn="consumer", msg="predicted", sha256="cd" * 32)))
    result = cli("tail-logs", "--since", "10m")
    assert result.exit_code == 0, result
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert "producer START RequestId: r1" in lines[0]
    assert "consumer INFO  predicted sha256=cdcdcdcdcdcd…" in lines[1]
    assert "producer INFO  copied key=models/m" in lines[2]

    result = cli("tail-logs", "--since", "10m", "--json", "--function", "producer")
    assert result.exit_code == 0
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["function"] for d in docs] == ["producer", "producer"]
    assert docs[1]["record"]["msg"] == "copied"


def test_cli_tail_logs_before_any_invocation(cli, drive_stack):
    result = cli("tail-logs")
    assert result.exit_code == 0 and "No log events since 10m" in result.stdout
    result = cli("tail-logs", "--json")
    assert result.exit_code == 0 and result.stdout == "" and "No log events since 10m" in result.stderr


def test_cli_tail_logs_bad_since(cli, drive_stack):
    result = cli("tail-logs", "--since", "soon")
    assert result.exit_code == 2 and "Cannot read --since 'soon'" in result.stderr


def test_cli_follow_ends_cleanly_on_ctrl_c(cli, drive_stack, monkeypatch):
    import efsctl.drive.logs as logs_mod

    put(PRODUCER, "p", (now_ms() - 1000, record(msg="before")))
    clock = StopAfter(2)
    monkeypatch.setattr(logs_mod, "Clock", lambda: clock)
    result = cli("tail-logs", "-f", "--json")
    assert result.exit_code == 0, result
    assert [json.loads(line)["record"]["msg"] for line in result.stdout.splitlines()] == ["before"]
    assert len(clock.sleeps) == 2 and "Interrupted" not in result.stderr


def test_same_millisecond_lines_keep_their_order_and_identical_lines_both_show(moto_drive):
    lines = ["START RequestId: r Version: $LATEST"] + [f"line {i}" for i in range(12)] + ["same", "same",
                                                                                          "END RequestId: r"]
    put(CONSUMER, "s", *[(T0 + 7, line) for line in lines])
    assert [e.message for e in read_window(reader(), GROUPS, T0)] == lines
    assert [e.message for e in tail(reader(), GROUPS, since_ms=T0)] == lines
