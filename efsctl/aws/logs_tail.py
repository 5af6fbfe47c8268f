"""Reading CloudWatch Logs for ``efsctl tail-logs``: FilterLogEvents pages and StartLiveTail.

A log group that does not exist yet (the function was never invoked) reads as empty. Live
tail is only an accelerator: when it cannot start (endpoint without it, missing group,
missing permission) the caller falls back to polling FilterLogEvents.
"""

from __future__ import annotations

from typing import Any, Iterator

from botocore.exceptions import BotoCoreError, ClientError

from efsctl.aws.errors import error_code, error_message
from efsctl.aws.paginate import paginate

NOT_FOUND = "ResourceNotFoundException"


class LiveTailUnavailable(Exception):
    """StartLiveTail cannot serve this request; poll instead."""


class LogsReader:
    def __init__(self, aws: Any, *, page_size: int | None = None) -> None:
        self._aws = aws
        self._page_size = page_size

    @property
    def _client(self) -> Any:
        return self._aws.client("logs")

    def filter(self, group: str, start_ms: int, end_ms: int | None = None,
               pattern: str | None = None) -> Iterator[dict[str, Any]]:
        """Every event of ``group`` in ``[start_ms, end_ms]``, page after page."""
        params: dict[str, Any] = {"logGroupName": group, "startTime": int(start_ms)}
        if end_ms is not None:
            params["endTime"] = int(end_ms)
        if pattern:
            params["filterPattern"] = pattern
        if self._page_size:
            params["PaginationConfig"] = {"PageSize": self._page_size}
        try:
            yield from paginate(self._client, "filter_log_events", "events", **params)
        except ClientError as exc:
            if error_code(exc) != NOT_FOUND:
                raise

    def group_arn(self, group: str) -> str | None:
        """The ARN of ``group`` (without the ``:*`` suffix), or ``None`` if it does not exist."""
        for found in paginate(self._client, "describe_log_groups", "logGroups", logGroupNamePrefix=group):
            if found.get("logGroupName") == group:
                arn = found.get("logGroupArn") or found.get("arn", "")
                return arn[:-2] if arn.endswith(":*") else arn
        return None

    def live_tail(self, group_arns: list[str], pattern: str | None = None) -> Iterator[list[dict[str, Any]]]:
        """Batches of new events from a StartLiveTail session, until the session ends.

        Raises :class:`LiveTailUnavailable` when the session cannot start or breaks.
        """
        params: dict[str, Any] = {"logGroupIdentifiers": group_arns}
        if pattern:
            params["logEventFilterPattern"] = pattern
        try:
            response = self._client.start_live_tail(**params)
        except (ClientError, BotoCoreError) as exc:
            raise LiveTailUnavailable(_describe(exc)) from None
        stream = response.get("responseStream")
        if stream is None:
            raise LiveTailUnavailable("the endpoint returned no event stream")
        try:
            for message in stream:
                update = message.get("sessionUpdate")
                if update:
                    yield list(update.get("sessionResults") or [])
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "SessionTimeoutException":
                return  # sessions last at most 3 hours; the caller starts a new one
            raise LiveTailUnavailable(_describe(exc)) from None
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()


def _describe(exc: BaseException) -> str:
    code = error_code(exc)
    return f"{code}: {error_message(exc)}" if code else str(exc)
