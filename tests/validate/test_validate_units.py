"""The pieces of `efsctl validate` that need no stack: options, the data set, the scaling curve,
the report page, and the command's usage errors (exit 2, before anything is touched)."""

from __future__ import annotations

import re
import struct
import sys

import pytest

from efsctl.drive.validate import dataset as ds
from efsctl.drive.validate.concurrency import saturation
from efsctl.drive.validate.core import BY_NUMBER, FAIL, PASS, SKIP, ClaimResult, parse_claims, summarize
from efsctl.errors import ConfigError
from efsctl.units import parse_size


def test_sizes_read_as_iec():
    assert parse_size("64MiB") == 64 << 20 and parse_size("1.5 GiB") == 3 << 29
    assert parse_size("512k") == 512 << 10 and parse_size("4096") == 4096 and parse_size("2gb") == 2 << 30
    for bad in ("", "MiB", "1 parsec", "-4k", "1e9"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_claims_by_number_or_name():
    assert parse_claims(None) == (1, 2, 3, 4, 5, 6)
    assert parse_claims("5, atomic,1,1") == (1, 4, 5)
    for bad in ("7", "0", "speed", ",", ""):
        with pytest.raises(ConfigError):
            parse_claims(bad)


def test_the_model_set_spans_a_few_kib_to_the_largest():
    sizes = ds.DEFAULT.sizes()
    assert len(sizes) == 8 and sizes[0] == 4096 and sizes[-1] == 32 << 20 and sizes == sorted(sizes)
    assert ds.profile(True).sizes()[-1] == 1 << 20 and ds.profile(False, 1 << 30).sizes()[-1] == 1 << 30
    assert ds.profile(True, 2048).sizes() == [2048, 2048, 2048, 2048]


def test_the_models_are_what_they_say(tmp_path):
    from safetensors import safe_open

    data = ds.build(tmp_path, [1000, 5000, 70_000], lambda rel: f"efsctl-validate/r/{rel}")
    assert [m.size for m in data.models] == [1000, 5000, 70_000]
    assert [m.path.stat().st_size for m in data.models] == [1000, 5000, 70_000]
    assert len({m.sha256 for m in data.models}) == 3
    assert [m.format for m in data.models] == ["safetensors", "binary", "safetensors"]
    with safe_open(str(data.models[2].path), "numpy") as f:
        assert f.get_tensor("weights").shape == (70_000 - 8 - struct.unpack("<Q", data.models[2].path.read_bytes()[:8])[0],)
    assert data.models[0].name.startswith("efsctl-validate/r/models/")


def test_throughput_stops_growing_where_it_reaches_nine_tenths_of_its_best():
    levels = [{"concurrency": c, "rps": r} for c, r in ((1, 50), (2, 95), (4, 180), (8, 190), (16, 185))]
    assert saturation(levels) == 4
    assert saturation([{"concurrency": 1, "rps": 100}, {"concurrency": 2, "rps": 60}]) == 1
    assert saturation([{"concurrency": 1, "rps": None}]) is None


def test_summaries_use_nearest_rank():
    assert summarize([3.0, 1.0, 2.0, 10.0]) == {"count": 4, "min": 1.0, "mean": 4.0, "p50": 2.0, "p90": 10.0,
                                                 "p99": 10.0, "max": 10.0}
    assert summarize([]) == {"count": 0}


def fake_report():
    from efsctl.drive.validate.runner import Report, ValidateOptions

    report = Report("default", "local", "20260101-000000-abc123", "efsctl-validate/20260101-000000-abc123/",
                    ValidateOptions(quick=True), seconds=4.2)
    report.results = [
        ClaimResult(BY_NUMBER[1], PASS, "4/4 uploads on EFS", samples={"s3_to_efs_s": [0.1, 0.2, 0.15, 0.3],
                                                                      "sizes": [4096, 26000, 165000, 1 << 20]}),
        ClaimResult(BY_NUMBER[3], PASS, "120 predicts", measurements={"saturates_at": 2, "levels": [
            {"concurrency": 1, "rps": 50.0, "p50_ms": 10.0, "p90_ms": 14.0},
            {"concurrency": 2, "rps": 90.0, "p50_ms": 12.0, "p90_ms": 20.0}]},
            samples={"c1": [9.0, 10.0, 11.0], "c2": [11.0, 12.0, 19.0]}),
        ClaimResult(BY_NUMBER[4], FAIL, "30 reads", "3 of 30 reads were torn <b>",
                    measurements={"reads": 30, "reads_by_version": {"A": 20, "B": 7}, "torn_by_kind": {"x": 3}}),
        ClaimResult(BY_NUMBER[6], SKIP, "no report", "not measured: AWS"),
    ]
    return report


def test_the_report_is_one_page_that_needs_no_network(tmp_path):
    from efsctl.drive.validate.report import write_report

    page = write_report(fake_report(), tmp_path / "validate.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<html") == 1
    # plotly.js inlined once, every chart drawn by it, nothing fetched from anywhere
    assert page.count("Plotly.newPlot") == 4 and len(re.findall(r"<script[^>]*>", page)) >= 4
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|@import|url\(\s*['\"]?https?:", page)
    assert "EFS latency" in page and "Claim 3: throughput and latency against concurrency" in page
    assert "FAIL" in page and "3 of 30 reads were torn &lt;b&gt;" in page and "NOT MEASURED" in page


def test_without_the_charting_library_report_says_how_to_get_it(cli, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "plotly", None)  # import plotly now raises ImportError
    result = cli("validate", "--report", str(tmp_path / "r.html"))
    assert result.exit_code == 2, result
    assert "pip install 'efsctl[report]'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--claims", "7"], "There is no claim '7'"),
    (["--size", "lots"], "--size: 'lots' is not a size"),
    (["--size", "12"], "--size must be at least 1KiB"),
    (["--report", "/nonexistent-dir/r.html"], "does not exist"),
    (["--report", "r.txt"], "should name an .html file"),
])
def test_usage_errors_exit_2_before_touching_anything(cli, args, message):
    result = cli("validate", *args)
    assert result.exit_code == 2, result
    assert message in result.stderr


def test_without_a_stack_it_says_so(cli):
    result = cli("validate", "--quick")
    assert result.exit_code == 1 and "There is no stack 'default' here" in result.stderr


def test_uploads_under_the_reserved_folder_are_refused(cli, tmp_path):
    model = tmp_path / "m.bin"
    model.write_bytes(b"x")
    result = cli("upload", str(model), "--name", "efsctl-validate/mine.bin")
    assert result.exit_code == 2 and "reserved for `efsctl validate`" in result.stderr


def test_on_aws_claim_6_and_the_cloud_restart_are_not_measured(efsctl_home, aws_credentials, monkeypatch):
    """What the use case hands the experiments for a stack on AWS (no call reaches AWS here)."""
    from efsctl.config import Settings
    from efsctl.console import Console
    from efsctl.drive.validate import persistence, privilege, runner
    from efsctl.drive.validate.core import Run
    from efsctl.operations import Operations
    from efsctl.operations import validate as use_case
    from efsctl.state import StackState, StateStore

    store = StateStore(efsctl_home)
    store.save(StackState(stack="prod", region="us-east-1", account="123456789012",
                          outputs={"bucket": "b", "api_url": "https://x.execute-api.us-east-1.amazonaws.com"}))
    seen = {}
    monkeypatch.setattr(runner, "run_validation", lambda stack, console, options, clock=None: seen.setdefault("s", stack))
    Operations(Settings(stack="prod", home=efsctl_home), Console()).validate(runner.ValidateOptions())
    stack = seen["s"]
    assert stack.target.is_local is False and stack.restart_cloud is None and stack.restart_note == use_case.NOT_LOCAL
    assert stack.iam_report() is None
    run = Run(stack, Console(), runner.ValidateOptions().profile, efsctl_home)
    six = privilege.claim(run)
    assert six.verdict == SKIP and "only the local cloud reports" in six.reason and not six.failed
    assert persistence._restart(run, {}, None) == {"measured": False, "note": use_case.NOT_LOCAL}
