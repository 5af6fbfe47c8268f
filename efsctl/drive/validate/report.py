"""``--report FILE.html``: one self-contained page with the verdicts and the charts.

The charts are plotly's (the ``report`` extra: ``pip install 'efsctl[report]'``), written with
plotly.js inlined once at the top of the page, so the file opens anywhere with no network: no
CDN, no font or script fetched. Plotly rather than matplotlib: one pure-Python package (plus
``narwhals``) instead of a compiled stack, and charts a reader can hover and zoom (exact
latencies, one level at a time), at the price of a page of about 5 MB.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from efsctl.drive.validate.core import FAIL, PASS
from efsctl.errors import ConfigError
from efsctl.units import human_bytes

MISSING = ("--report draws its charts with plotly, which is not installed: "
           "`pip install 'efsctl[report]'` adds it.")
COLOURS = {PASS: "#1a7f37", FAIL: "#cf222e"}


def require_charting() -> None:
    """Raise :class:`ConfigError` (one sentence) when the charting library is missing."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        raise ConfigError(MISSING) from None


def check_destination(path: Path) -> Path:
    if path.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--report {str(path)!r} should name an .html file.")
    if not path.parent.is_dir():
        raise ConfigError(f"--report {str(path)!r}: the folder {str(path.parent)!r} does not exist.")
    if path.is_dir():
        raise ConfigError(f"--report {str(path)!r} is a folder; give a file name ending in .html.")
    return path


def write_report(report: Any, path: Path) -> Path:
    """Write ``report`` (a :class:`~efsctl.drive.validate.runner.Report`) as one HTML page."""
    require_charting()
    figures = [f for f in (_latency_to_efs(report), _predict_histograms(report), _concurrency_curve(report),
                           _atomic_reads(report)) if f is not None]
    parts = []
    for index, (title, figure) in enumerate(figures):
        figure.update_layout(title=title, template="plotly_white", height=420, margin={"t": 60, "l": 60, "r": 30})
        parts.append(figure.to_html(full_html=False, include_plotlyjs=index == 0, include_mathjax=False,
                                    config={"displaylogo": False, "responsive": True}))
    doc = _page(report, parts)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(path)
    return path


def _samples(report: Any, claim: int) -> dict[str, list[float]]:
    found = next((r for r in report.results if r.claim.number == claim), None)
    return found.samples if found is not None else {}


def _latency_to_efs(report: Any):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    samples = _samples(report, 1)
    latencies, sizes = samples.get("s3_to_efs_s") or [], samples.get("sizes") or []
    if not latencies:
        return None
    figure = make_subplots(rows=1, cols=2, subplot_titles=("distribution", "by model size"))
    figure.add_trace(go.Histogram(x=latencies, name="uploads", nbinsx=max(5, min(30, len(latencies))),
                                  marker_color="#0969da"), row=1, col=1)
    figure.add_trace(go.Scatter(x=sizes, y=latencies, mode="markers", name="one upload",
                                text=[human_bytes(s) for s in sizes], marker={"size": 10, "color": "#0969da"},
                                hovertemplate="%{text}: %{y:.3f} s<extra></extra>"), row=1, col=2)
    figure.update_xaxes(title_text="seconds from upload to EFS", row=1, col=1)
    figure.update_yaxes(title_text="uploads", row=1, col=1)
    figure.update_xaxes(title_text="model size (bytes)", type="log", row=1, col=2)
    figure.update_yaxes(title_text="seconds", row=1, col=2)
    figure.update_layout(showlegend=False)
    return "Claim 1: S3 → EFS latency", figure


def _predict_histograms(report: Any):
    import plotly.graph_objects as go

    samples = _samples(report, 3)
    levels = sorted((int(k[1:]), v) for k, v in samples.items() if k.startswith("c") and v)
    if not levels:
        return None
    figure = go.Figure()
    for concurrency, values in levels:
        figure.add_trace(go.Histogram(x=values, name=f"concurrency {concurrency}", opacity=0.6, nbinsx=40))
    figure.update_layout(barmode="overlay", xaxis_title="predict round trip (ms)", yaxis_title="requests")
    return "Claim 3: predict latency per concurrency level", figure


def _concurrency_curve(report: Any):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    found = next((r for r in report.results if r.claim.number == 3), None)
    levels = (found.measurements.get("levels") if found else None) or []
    levels = [lv for lv in levels if lv.get("rps")]
    if not levels:
        return None
    x = [str(lv["concurrency"]) for lv in levels]   # a category axis: log axes put shapes at 10^x
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(go.Scatter(x=x, y=[lv["rps"] for lv in levels], name="throughput (req/s)",
                                mode="lines+markers", line={"width": 3}), secondary_y=False)
    for key, dash in (("p50_ms", "dot"), ("p90_ms", "dash")):
        figure.add_trace(go.Scatter(x=x, y=[lv.get(key) for lv in levels], name=f"{key[:3]} latency (ms)",
                                    mode="lines+markers", line={"dash": dash}), secondary_y=True)
    knee = found.measurements.get("saturates_at")
    if knee:
        rps = next(lv["rps"] for lv in levels if lv["concurrency"] == knee)
        figure.add_annotation(x=str(knee), y=rps, text=f"stops growing at {knee}", showarrow=True, arrowhead=2,
                              ay=-40, font={"color": "#cf222e"})
    figure.update_xaxes(title_text="concurrent clients", type="category")
    figure.update_yaxes(title_text="requests per second", secondary_y=False, rangemode="tozero")
    figure.update_yaxes(title_text="latency (ms)", secondary_y=True, rangemode="tozero")
    return "Claim 3: throughput and latency against concurrency", figure


def _atomic_reads(report: Any):
    import plotly.graph_objects as go

    found = next((r for r in report.results if r.claim.number == 4), None)
    if found is None or not found.measurements.get("reads"):
        return None
    by_version = dict(found.measurements.get("reads_by_version") or {})
    torn = found.measurements.get("torn_by_kind") or {}
    labels = [f"version {v}" for v in by_version] + [f"torn: {k}" for k in torn]
    values = list(by_version.values()) + list(torn.values())
    colours = ["#0969da"] * len(by_version) + ["#cf222e"] * len(torn)
    figure = go.Figure(go.Bar(x=labels, y=values, marker_color=colours))
    figure.update_layout(yaxis_title="verified reads")
    return "Claim 4: what the readers saw while the name was overwritten", figure


def _page(report: Any, charts: list[str]) -> str:
    esc = html.escape
    rows = []
    for r in report.results:
        colour = COLOURS.get(r.verdict, "#57606a")
        text = r.reason if r.failed else r.summary
        notes = "".join(f"<div class='note'>{esc(n)}</div>" for n in r.notes)
        rows.append(f"<tr><td>{r.claim.number}</td><td>{esc(r.claim.title)}</td>"
                    f"<td style='color:{colour};font-weight:bold'>{esc(r.verdict.upper())}</td>"
                    f"<td>{esc(text or '')}{notes}</td><td>{r.seconds:.1f} s</td></tr>")
    verdict = "every selected claim holds" if not report.failed else (
        "failed: " + ", ".join(f"claim {r.claim.number}" for r in report.failed))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>efsctl validate: stack {esc(report.stack)}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #1f2328; }}
table {{ border-collapse: collapse; width: 100%; margin: 1em 0 2em; }}
td, th {{ border-bottom: 1px solid #d0d7de; padding: .5em .6em; text-align: left; vertical-align: top; }}
th {{ background: #f6f8fa; }}
.note {{ color: #57606a; font-size: 90%; margin-top: .3em; }}
.meta {{ color: #57606a; }}
</style></head><body>
<h1>efsctl validate</h1>
<p class="meta">Stack <b>{esc(report.stack)}</b> on {esc(report.target)}, run {esc(report.run_id)},
started {esc(report.to_dict()["started_at"])}, {report.seconds:.1f} s{", quick" if report.options.quick else ""}:
<b>{esc(verdict)}</b>.</p>
<table><tr><th>#</th><th>claim</th><th>verdict</th><th>figures</th><th>time</th></tr>
{''.join(rows)}
</table>
{''.join(f'<div class="chart">{c}</div>' for c in charts)}
</body></html>
"""
