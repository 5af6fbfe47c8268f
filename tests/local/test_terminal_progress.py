"""What a person sees while `up` and `down` wait on AWS (the local cloud's aws profile, x0.02):
in a terminal each running step is one line rewritten in place with its elapsed time growing,
and gone when the step ends; in a log (not a terminal) a line per change of state and a
"still waiting" line at a steady interval. The terminal is rich's own, forced to be one and
recorded; pyte, a terminal emulator, plays the recording back to tell what stays on screen."""

from __future__ import annotations

import io
import re

import pyte
import pytest
from rich.console import Console as RichConsole

from efsctl.cli.stackview import ConsoleReporter
from efsctl.config import Settings
from efsctl.console import Console
from efsctl.operations import CloudProfile, Operations, UpRequest

PROFILE = CloudProfile(realism="aws", time_scale=0.02)


def recording(terminal: bool) -> tuple[io.StringIO, RichConsole]:
    out = io.StringIO()
    return out, RichConsole(file=out, force_terminal=terminal, width=120, highlight=False, soft_wrap=True,
                            color_system="standard" if terminal else None)


def screen_of(stream: str) -> list[str]:
    """What a 120-column terminal shows once ``stream`` has been written to it."""
    screen = pyte.Screen(120, 200)
    pyte.Stream(screen).feed(stream.replace("\n", "\r\n"))
    return [line.rstrip() for line in screen.display if line.strip()]


def ops_for(efsctl_home, stack: str, console: Console) -> Operations:
    return Operations(Settings(stack=stack, home=efsctl_home), console)


def renders_of(stream: str, key: str) -> list[float]:
    """The elapsed seconds each redraw of ``key``'s live line showed, in order."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream)
    return [float(m) for m in re.findall(rf"{re.escape(key)} +fsmt-\w+ creating +([0-9.]+)s", plain)]


@pytest.fixture
def stacks(efsctl_home):
    made = []
    yield made
    quiet = Console(out=recording(False)[1])
    for stack in made:
        try:
            ops_for(efsctl_home, stack, quiet).destroy(confirm=None)
        finally:
            from efsctl.local import stop_local_cloud

            stop_local_cloud(ops_for(efsctl_home, stack, quiet).store, stack, quiet)


def test_in_a_terminal_each_waiting_step_is_one_line_rewritten_in_place_with_its_time(efsctl_home, stacks):
    # up in a terminal, redrawn on every update (no timer), so the recording holds every frame
    stream, terminal = recording(True)
    console = Console(out=terminal, err=terminal, auto_refresh=False)
    stacks.append("tty")
    ops = ops_for(efsctl_home, "tty", console)
    up = ops.converge(UpRequest(local=True, cloud=PROFILE), ConsoleReporter(console))
    console.close()
    frames = renders_of(stream.getvalue(), "mt-a")
    assert len(frames) >= 3, stream.getvalue()[-3000:]
    assert frames == sorted(frames) and frames[-1] > frames[0]     # the same line, its time growing
    assert "\x1b[2K" in stream.getvalue()                          # ... redrawn in place (erased, rewritten)
    shown = screen_of(stream.getvalue())
    assert [line for line in shown if re.search(r"\bmt-a\b", line)] == [
        next(line for line in shown if line.startswith("✓ mt-a"))]   # once on screen, as the finished step
    assert not any("creating" in line for line in shown)            # no live line left behind
    assert up.deployment.preview.plan.counts()["create"] == 25

    # down: the ENI wait's line counts what is left
    stream, terminal = recording(True)
    console = Console(out=terminal, err=terminal, auto_refresh=False)
    down = ops_for(efsctl_home, "tty", console).destroy(confirm=None, reporter=ConsoleReporter(console))
    console.close()
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    counts = re.findall(r"lambda-enis +(\d+) of (\d+) Lambda network interfaces? left", plain)
    assert counts and all(int(left) <= int(total) for left, total in counts)
    shown = screen_of(stream.getvalue())
    assert any(line.startswith("✓ lambda-enis") and "none left" in line for line in shown)
    assert not any("network interfaces left" in line for line in shown)
    assert down.execution.error is None and down.local_cloud_stopped


def test_without_a_terminal_a_wait_prints_its_state_changes_and_still_waiting_lines(efsctl_home, stacks):
    stream, log = recording(False)
    console = Console(out=log, err=log, still_every=0.5)
    stacks.append("log")
    ops_for(efsctl_home, "log", console).converge(UpRequest(local=True, cloud=PROFILE), ConsoleReporter(console))
    lines = stream.getvalue().splitlines()
    waits = [line for line in lines if line.startswith("… mt-a")]
    assert re.match(r"… mt-a +fsmt-\w+ creating$", waits[0]), waits
    still = [line for line in waits if "still waiting" in line]
    assert len(still) >= 2 and all(re.search(r"still waiting \([0-9.]+s\): fsmt-\w+ creating$", s) for s in still)
    seconds = [float(re.search(r"\(([0-9.]+)s\)", s).group(1)) for s in still]
    assert seconds == sorted(seconds) and len(set(seconds)) == len(seconds)
    assert "\x1b[" not in stream.getvalue()                         # nothing but plain lines in a log
    assert sum(1 for line in lines if line.startswith("✓ mt-a")) == 1
