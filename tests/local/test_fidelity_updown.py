"""`efsctl up` then `down` under the aws realism profile at a small time scale, with throttling.

The local cloud delays and refuses as AWS does (x0.02: a mount target takes 1.8 s, a function
is Pending 1.2 s, Lambda's interfaces linger 2.4 s after the functions leave the VPC) and
throttles 5 % of the calls; efsctl must converge, leave a stack with nothing to change, and
leave nothing behind: the cloud's inventory is read just before `down` stops it.
"""

from __future__ import annotations

import json

import pytest
from localhelpers import http_request

from efsctl.cli.commands import COMMANDS

pytestmark = pytest.mark.skipif({"up", "down"} - {c[0] for c in COMMANDS} != set(),
                                reason="the up and down commands are not both merged yet")

SCALE = "0.02"


def test_up_then_down_converge_under_the_aws_profile_and_throttling(cli, efsctl_home, monkeypatch):
    import efsctl.local as local

    stop = local.stop_local_cloud
    up = cli("up", "--local", "--realism", "aws", "--time-scale", SCALE, "--throttle-rate", "0.05", "--json")
    assert up.exit_code == 0, up.output
    assert up.json()["summary"]["create"] == 25
    left: dict = {}
    try:
        plan = cli("plan", "--json")
        assert plan.exit_code == 0, plan.output
        assert {k: v for k, v in plan.json()["summary"].items() if k != "skip" and v} == {}

        record = json.loads((efsctl_home / "local" / "default" / "cloud.json").read_text())
        assert (record["realism"], record["time_scale"]) == ("aws", float(SCALE))
        status, _, body = http_request("GET", record["endpoint_url"] + "/_efsctl/stats")
        fidelity = json.loads(body)["fidelity"]
        assert status == 200 and fidelity["throttled"] > 0, fidelity   # refused calls were retried

        def inventory_then_stop(store, stack, console, **kwargs):
            _, _, found = http_request("GET", record["endpoint_url"] + "/_efsctl/inventory")
            left.update(json.loads(found))
            return stop(store, stack, console, **kwargs)

        monkeypatch.setattr(local, "stop_local_cloud", inventory_then_stop)
    finally:
        down = cli("down", "--yes", "--json")
        from efsctl.console import Console
        from efsctl.state import StateStore

        stop(StateStore(efsctl_home), "default", Console())   # whatever happened above
    assert down.exit_code == 0, down.output
    assert down.json()["left"] == []
    assert left == {}, f"left in the local cloud after down: {left}"
