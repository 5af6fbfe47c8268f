"""All terminal output goes through :class:`Console`.

Human output uses rich, imported on first use so ``--help`` stays fast. In ``--json`` mode
stdout carries exactly one JSON document (:meth:`Console.emit_json`) and every human line
goes to stderr instead.

Two kinds of output:

- permanent lines (:meth:`line`, :meth:`info`, :meth:`warn`, tables...), printed once;
- activities: what is running right now (a step waiting on AWS, a transfer, a load run). In a
  terminal each activity is one line updated in place, its elapsed time ticking, under the
  permanent lines (rich's live display); it disappears when the activity ends, usually replaced
  by its permanent line (:meth:`line` with the same label ends it). When output is not a
  terminal, an activity prints a line when its state changes and a "still waiting" line at a
  steady interval, so logs stay readable.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from efsctl.units import human_bytes, human_duration, human_rate

_SYMBOLS = {"ok": ("✓", "green"), "skip": ("·", "dim"), "fail": ("✗", "red"),
            "wait": ("…", "yellow"), "run": ("→", "cyan"), "warn": ("!", "yellow")}
STILL_EVERY = 30.0   # seconds between "still waiting" lines when output is not a terminal
LABEL_WIDTH = 16


@dataclass
class _Activity:
    key: str
    detail: str
    base: float          # elapsed seconds as last reported
    base_at: float       # when (monotonic) it was reported
    task: Any = None     # the rich task id in a terminal
    printed: str | None = None   # the detail last printed (not a terminal)
    next_still: float = STILL_EVERY
    total: int | None = None


class Console:
    def __init__(self, *, json_mode: bool = False, debug: bool = False, out: Any = None, err: Any = None,
                 clock: Callable[[], float] = time.monotonic, auto_refresh: bool = True,
                 still_every: float = STILL_EVERY) -> None:
        """``out``/``err``: rich consoles to write to (tests pass recording ones); ``clock``: what
        elapsed times tick on; ``auto_refresh``: redraw live lines on a timer (off: on each update)."""
        self.json_mode = json_mode
        self.debug = debug
        self.json_emitted = False
        self._out = out
        self._err = err
        self._clock = clock
        self._auto_refresh = auto_refresh
        self._still_every = still_every
        self._lock = threading.RLock()
        self._activities: dict[str, _Activity] = {}
        self._live: Any = None

    # rich consoles, created lazily; file=None lets rich follow sys.stdout/stderr swaps.
    def _rich(self, stderr: bool):
        if stderr:
            if self._err is None:
                self._err = _rich_console(stderr=True)
            return self._err
        if self._out is None:
            self._out = _rich_console(stderr=False)
        return self._out

    @property
    def human(self):
        """The rich console for human output (stderr in JSON mode)."""
        return self._rich(stderr=self.json_mode)

    @property
    def is_terminal(self) -> bool:
        return bool(self.human.is_terminal)

    # --- permanent output -------------------------------------------------------------------

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
            self._stop_live()
            err = self._rich(stderr=True)
            err.print(f"[bold red]error:[/] {_escape(message)}")
            if hint:
                err.print(f"  {_escape(hint)}", style="dim")

    def line(self, status: str, label: str, detail: str = "", elapsed: float | None = None) -> None:
        """One step line: ``✓ label  detail  1.2s``; ``status`` is ok/skip/fail/wait/run/warn.
        It ends the activity of the same label, if one is running."""
        symbol, colour = _SYMBOLS.get(status, ("-", "white"))
        text = f"[{colour}]{symbol}[/] {_escape(label):<{LABEL_WIDTH}} {_escape(detail)}"
        if elapsed is not None:
            text += f" [dim]{human_duration(elapsed)}[/]"
        with self._lock:
            self.end(label)
            self.print(text.rstrip())

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
        from rich.table import Table

        table = Table(title=title, show_header=True, header_style="bold", box=None, pad_edge=False)
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        self.print(table)

    # --- activities -------------------------------------------------------------------------

    def progress(self, what: str, elapsed: float, detail: str = "") -> None:
        """Report ``what`` in progress for ``elapsed`` seconds, now in state ``detail``."""
        self.activity(what, detail, elapsed)

    def activity(self, key: str, detail: str = "", elapsed: float = 0.0, *, total: int | None = None,
                 log: bool = True) -> None:
        """Start or update the activity ``key``. ``log=False``: shown live in a terminal only (not
        worth a line of its own in a log)."""
        now = self._clock()
        with self._lock:
            act = self._activities.get(key)
            if act is None:
                act = self._activities[key] = _Activity(key, detail, elapsed, now, total=total)
            else:
                act.detail, act.base, act.base_at = detail, elapsed, now
            if self.is_terminal:
                self._show(act)
            elif log:
                self._log(act)

    def end(self, key: str) -> None:
        """The activity ``key`` is over (nothing happens if there is none)."""
        with self._lock:
            act = self._activities.pop(key, None)
            if act is not None and act.task is not None and self._live is not None:
                self._live.remove_task(act.task)
                if not self._activities:
                    self._stop_live()
                elif not self._auto_refresh:
                    self._live.refresh()

    def close(self) -> None:
        """End every activity (the command is over)."""
        with self._lock:
            for key in list(self._activities):
                self.end(key)
            self._stop_live()

    def _log(self, act: _Activity) -> None:
        """Not a terminal: a line per change of state, and one every ``still_every`` seconds."""
        if act.total is not None:
            return  # transfers report once, when they end
        if act.detail != act.printed:
            act.printed = act.detail
            act.next_still = (int(act.base // self._still_every) + 1) * self._still_every
            self.print(f"[yellow]…[/] {_escape(act.key):<{LABEL_WIDTH}} {_escape(act.detail)}".rstrip())
        elif act.base >= act.next_still:
            act.next_still = (int(act.base // self._still_every) + 1) * self._still_every
            self.print(f"[yellow]…[/] {_escape(act.key):<{LABEL_WIDTH}} still waiting "
                       f"({human_duration(act.base)}): {_escape(act.detail)}".rstrip())

    def _show(self, act: _Activity) -> None:
        live = self._live_display()
        fields = {"detail": act.detail, "base": act.base, "base_at": act.base_at}
        if act.task is None:
            act.task = live.add_task(act.key, total=act.total, **fields)
        else:
            live.update(act.task, **fields)
        if not self._auto_refresh:
            live.refresh()

    def _live_display(self):
        if self._live is None:
            from rich.progress import Progress

            self._live = Progress(*_columns(self._clock), console=self.human, transient=True, expand=True,
                                  auto_refresh=self._auto_refresh, refresh_per_second=4,
                                  redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        return self._live

    def _stop_live(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()
            for act in self._activities.values():
                act.task = None

    @contextmanager
    def status(self, message: str) -> Iterator[Callable[[str], None]]:
        """An activity for something that runs a while (a spinner in a terminal); yields
        ``update(detail)``."""
        started = self._clock()
        self.activity(message, "", 0.0, log=False)   # in a log, only what it reports is worth a line
        try:
            yield lambda detail: self.activity(message, detail, self._clock() - started)
        finally:
            self.end(message)

    @contextmanager
    def transfer(self, total: int, description: str) -> Iterator[Callable[[int], None]]:
        """A byte bar (size, rate, time); yields ``advance(nbytes)``, safe to call from threads.
        Once every byte has gone it says what it still waits for (the object being assembled)."""
        started = self._clock()
        done = [0]
        lock = threading.Lock()
        self.activity(description, "", 0.0, total=total)

        def advance(n: int) -> None:
            with lock:
                done[0] += n
                moved = done[0]
            act = self._activities.get(description)
            if act is None or act.task is None or self._live is None:
                return
            detail = "finishing" if moved >= total else ""
            self._live.update(act.task, completed=moved, detail=detail, base=self._clock() - started,
                              base_at=self._clock())
            if not self._auto_refresh:
                self._live.refresh()

        try:
            yield advance
        finally:
            self.end(description)

    # --- JSON ---------------------------------------------------------------------------------

    def emit_json(self, document: Any) -> None:
        """Print the command's one JSON document on stdout."""
        if self.json_emitted:
            raise RuntimeError("a --json command emits exactly one document")
        self.json_emitted = True
        self.close()
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
        sys.stdout.flush()

    def emit_json_line(self, document: Any) -> None:
        """One compact JSON object per line, for streaming commands (``tail-logs --json``);
        the one exception to one-document-per-command. Errors then go to stderr only."""
        with self._lock:
            self.json_emitted = True
            sys.stdout.write(json.dumps(document, separators=(",", ":"), default=str, ensure_ascii=False) + "\n")
            sys.stdout.flush()


def _rich_console(*, stderr: bool) -> Any:
    """A rich console whose reader may go away (``efsctl tail-logs | head``): rich's own answer is
    ``SystemExit(1)``; efsctl ends quietly with exit 0 instead (the command layer maps the
    ``BrokenPipeError``), and whatever is printed after that goes nowhere."""
    import os

    from rich.console import Console as RichConsole

    class PipeConsole(RichConsole):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            stream = sys.stderr if stderr else sys.stdout
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
            except (OSError, ValueError):
                pass
            raise BrokenPipeError(32, "the reader of efsctl's output went away")

    return PipeConsole(stderr=stderr, highlight=False, soft_wrap=True)


def _columns(clock: Callable[[], float]) -> list[Any]:
    """The live line: spinner, label, state (or a byte bar with size and rate), elapsed time."""
    from rich.progress import BarColumn, ProgressColumn, SpinnerColumn
    from rich.table import Column
    from rich.text import Text

    class Label(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.description:<{LABEL_WIDTH}}")

    class State(ProgressColumn):
        """The state, or for a transfer its bar and ``done/total MiB  rate``."""

        bar = BarColumn(bar_width=24)

        def render(self, task: Any) -> Any:
            detail = task.fields.get("detail", "")
            if task.total is None:
                return Text(detail, style="yellow", no_wrap=True, overflow="ellipsis")
            seconds = task.fields.get("base", 0.0)
            rate = human_rate(task.completed / seconds) if seconds > 0.2 else "?/s"
            from rich.table import Table

            grid = Table.grid(padding=(0, 1))
            grid.add_row(self.bar.render(task), Text(f"{human_bytes(task.completed)}/{human_bytes(task.total)}"),
                         Text(rate, style="dim"), Text(detail, style="yellow"))
            return grid

    class Elapsed(ProgressColumn):
        max_refresh = None

        def render(self, task: Any) -> Text:
            fields = task.fields
            seconds = fields.get("base", 0.0) + max(0.0, clock() - fields.get("base_at", clock()))
            return Text(human_duration(seconds), style="dim")

    # The state takes what the line has left and is cut with an ellipsis: a live line that wrapped
    # would no longer be one line rewritten in place.
    return [SpinnerColumn(style="yellow"), Label(),
            State(table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")), Elapsed()]


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))


__all__ = ["Console"]
