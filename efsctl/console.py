"""All terminal output goes through :class:`Console`.

Human output uses rich, imported on first use so ``--help`` stays fast. In ``--json`` mode
stdout carries exactly one JSON document (:meth:`Console.emit_json`) and every human line
goes to stderr instead.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

_SYMBOLS = {"ok": ("✓", "green"), "skip": ("·", "dim"), "fail": ("✗", "red"),
            "wait": ("…", "yellow"), "run": ("→", "cyan"), "warn": ("!", "yellow")}


class Console:
    def __init__(self, *, json_mode: bool = False, debug: bool = False) -> None:
        self.json_mode = json_mode
        self.debug = debug
        self.json_emitted = False
        self._out = None
        self._err = None
        self._lock = threading.Lock()
        self._last_progress: dict[str, float] = {}

    # rich consoles, created lazily; file=None lets rich follow sys.stdout/stderr swaps.
    def _rich(self, stderr: bool):
        from rich.console import Console as RichConsole

        if stderr:
            if self._err is None:
                self._err = RichConsole(stderr=True, highlight=False, soft_wrap=True)
            return self._err
        if self._out is None:
            self._out = RichConsole(highlight=False, soft_wrap=True)
        return self._out

    @property
    def human(self):
        """The rich console for human output (stderr in JSON mode)."""
        return self._rich(stderr=self.json_mode)

    def print(self, *objects: Any, **kwargs: Any) -> None:
        with self._lock:
            self.human.print(*objects, **kwargs)

    def info(self, message: str) -> None:
        self.print(message, markup=False)

    def success(self, message: str) -> None:
        self.print(f"[green]✓[/] {_escape(message)}")

    def warn(self, message: str) -> None:
        with self._lock:
            self._rich(stderr=True).print(f"[yellow]warning:[/] {_escape(message)}")

    def error(self, message: str, hint: str | None = None) -> None:
        with self._lock:
            err = self._rich(stderr=True)
            err.print(f"[bold red]error:[/] {_escape(message)}")
            if hint:
                err.print(f"  {_escape(hint)}", style="dim")

    def line(self, status: str, label: str, detail: str = "", elapsed: float | None = None) -> None:
        """One step line: ``✓ label  detail  1.2s``; ``status`` is ok/skip/fail/wait/run/warn."""
        symbol, colour = _SYMBOLS.get(status, ("-", "white"))
        text = f"[{colour}]{symbol}[/] {_escape(label):<16} {_escape(detail)}"
        if elapsed is not None:
            text += f" [dim]{elapsed:.1f}s[/]"
        self.print(text.rstrip())

    def progress(self, what: str, elapsed: float, detail: str = "", every: float = 5.0) -> None:
        """Report a wait in progress, at most once per ``every`` seconds per ``what``."""
        now = time.monotonic()
        if now - self._last_progress.get(what, -every) < every:
            return
        self._last_progress[what] = now
        self.line("wait", what, detail, elapsed)

    @contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A spinner while something short runs (silent when not a terminal)."""
        human = self.human
        if not human.is_terminal:
            yield
            return
        with human.status(message):
            yield

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
        from rich.table import Table

        table = Table(title=title, show_header=True, header_style="bold", box=None, pad_edge=False)
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        self.print(table)

    @contextmanager
    def transfer(self, total: int, description: str) -> Iterator[Any]:
        """A byte progress bar (bytes, rate, ETA); yields a callable ``advance(nbytes)``."""
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)

        progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), TimeRemainingColumn(), console=self.human,
                            disable=not self.human.is_terminal, transient=False)
        with progress:
            task = progress.add_task(description, total=total)
            yield lambda n: progress.update(task, advance=n)

    def emit_json(self, document: Any) -> None:
        """Print the command's one JSON document on stdout."""
        if self.json_emitted:
            raise RuntimeError("a --json command emits exactly one document")
        self.json_emitted = True
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
        sys.stdout.flush()

    def emit_json_line(self, document: Any) -> None:
        """One compact JSON object per line, for streaming commands (``tail-logs --json``);
        the one exception to one-document-per-command. Errors then go to stderr only."""
        with self._lock:
            self.json_emitted = True
            sys.stdout.write(json.dumps(document, separators=(",", ":"), default=str, ensure_ascii=False) + "\n")
            sys.stdout.flush()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))
