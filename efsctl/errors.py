"""The error types efsctl raises, each carrying its exit code.

Every failure a user can meet is one of these: a sentence saying what went wrong and,
where it helps, a hint saying what to do next. The command layer maps them to exit codes
in one place (``efsctl.cli.app``); nothing else prints tracebacks.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class EfsctlError(Exception):
    """An operation failed in a way we can explain (exit 1)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} {self.hint}"


class ConfigError(EfsctlError):
    """Bad usage or configuration: the user must change something before retrying (exit 2)."""

    exit_code = EXIT_USAGE


class CredentialsError(ConfigError):
    """No usable AWS credentials or region for an AWS target."""


class StackNotFound(EfsctlError):
    """The named stack has no state and no resources here."""


class StackLocked(EfsctlError):
    """Another efsctl process is changing the same stack."""


class AwsError(EfsctlError):
    """An AWS call failed; ``code`` is the service's error code."""

    def __init__(self, message: str, hint: str | None = None, *, code: str = "", operation: str = "") -> None:
        super().__init__(message, hint)
        self.code = code
        self.operation = operation


class WaitTimeout(EfsctlError):
    """A bounded wait ran out; re-running the command resumes it."""
