"""Backtest report as one self-contained HTML page (``DIR/report.html``).

Everything is generated here in Python: the charts are inline SVG, the CSS and
the few lines of JavaScript are inline too, so the page opens offline (no CDN,
no network). Per service/model key there are six charts — requests, error rate,
latency p50/p95/p99, tokens in/out, cost and output tokens/s per window — with
the key's anomalies as markers along the top of the chart that shows the
anomaly's metric (colour = severity; hover for type, observed, expected and
method) and, with labels, the labelled incidents shaded.

Every string that comes from telemetry (service and model names, details) is
escaped with :func:`html.escape`; no data is embedded in the script, which only
checks after load that every chart drew its lines and publishes the result as
``<body data-charts=… data-rendered=…>`` (a ``console.error`` names any chart
that did not) — what the browser test reads.

Long runs stay small: a series with more than ``max_points`` points is reduced
by time buckets that keep each bucket's minimum and maximum, so spikes survive.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from sentinel.models import Severity, parse_ts

__all__ = [
    "CHARTS",
    "MAX_POINTS",
    "ChartSpec",
    "Geometry",
    "chart_for_anomaly",
    "downsample",
    "render_html",
    "write_html",
]

MAX_POINTS = 2000

SEVERITY_COLOURS = {"low": "#d4a72c", "medium": "#e8710a", "high": "#d93025", "critical": "#7b1fa2"}
SEVERITY_ORDER = tuple(s.value for s in sorted(Severity, key=lambda s: -s.rank))  # most severe first
LINE_COLOURS = ("#1a73e8", "#12a4af", "#5e35b1")


@dataclass(frozen=True, slots=True)
class ChartSpec:
    name: str
    title: str
    fields: tuple[tuple[str, str], ...]  # (window field, legend label)
    scale: float = 1.0  # multiply values (error rate → %)
    zero_fill: bool = False  # a missing window means 0 (sums), else the line breaks (rates, quantiles)


CHARTS: tuple[ChartSpec, ...] = (
    ChartSpec("requests", "Requests per window", (("requests", "requests"),), zero_fill=True),
    ChartSpec("error_rate", "Error rate (%)", (("error_rate", "error rate"),), scale=100.0),
    ChartSpec(
        "latency",
        "Latency (ms)",
        (("latency_p50_ms", "p50"), ("latency_p95_ms", "p95"), ("latency_p99_ms", "p99")),
    ),
    ChartSpec("tokens", "Tokens per window", (("input_tokens", "in"), ("output_tokens", "out")), zero_fill=True),
    ChartSpec("cost", "Cost per window (USD)", (("cost_usd", "cost"),), zero_fill=True),
    ChartSpec("throughput", "Output tokens/s", (("output_tokens_per_s", "tokens/s"),)),
)

_TYPE_CHART = {
    "traffic_spike": "requests",
    "traffic_drop": "requests",
    "error_rate_spike": "error_rate",
    "latency_spike": "latency",
    "latency_degradation": "latency",
    "token_usage_spike": "tokens",
    "token_usage_drop": "tokens",
    "input_drift": "tokens",
    "output_drift": "tokens",
    "cost_spike": "cost",
    "throughput_degradation": "throughput",
}
_METRIC_CHART = (  # metric-name prefixes, for types without a fixed chart (multivariate, new ones)
    ("latency", "latency"),
    ("output_tokens_per_s", "throughput"),
    ("error", "error_rate"),
    ("request", "requests"),
    ("traffic", "requests"),
    ("cost", "cost"),
    ("input_tokens", "tokens"),
    ("output_tokens", "tokens"),
    ("token", "tokens"),
)


def chart_for_anomaly(anomaly: Mapping[str, Any]) -> str:
    """The chart an anomaly is drawn on: by its type, else by its (first) metric, else requests."""
    by_type = _TYPE_CHART.get(str(anomaly.get("anomaly_type", "")))
    if by_type:
        return by_type
    first = str(anomaly.get("metric") or "").split(",")[0].strip()
    for prefix, chart in _METRIC_CHART:
        if first.startswith(prefix):
            return chart
    return "requests"


@dataclass(frozen=True, slots=True)
class Geometry:
    """Chart size in SVG user units (the SVG scales to its column)."""

    width: float = 680.0
    height: float = 190.0
    left: float = 58.0
    right: float = 12.0
    top: float = 16.0  # the anomaly marker strip lives here
    bottom: float = 24.0

    @property
    def plot_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> float:
        return self.height - self.top - self.bottom

    def x(self, t: float, t0: float, t1: float) -> float:
        return self.left + (t - t0) / (t1 - t0) * self.plot_w if t1 > t0 else self.left

    def y(self, v: float, ymax: float) -> float:
        return self.top + self.plot_h * (1.0 - (v / ymax if ymax > 0 else 0.0))


GEOMETRY = Geometry()

# --------------------------------------------------------------------------- data helpers


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


Point = tuple[float, float]
Segment = list[Point]


def downsample(points: Sequence[Point], max_points: int = MAX_POINTS, gap_s: float | None = None) -> list[Segment]:
    """Split a time-sorted series into drawable segments of at most ``max_points`` points in all.

    Up to ``max_points`` points: kept as they are, split where consecutive times
    are more than ``gap_s`` apart. Above it: ``max_points // 2`` equal time
    buckets, each contributing its minimum and maximum (in time order), so
    spikes and dips survive; an empty bucket (or a ``gap_s`` gap between two
    buckets' points) breaks the line.
    """
    if not points:
        return []
    pts = sorted(points)
    if len(pts) <= max_points:
        segs: list[Segment] = [[pts[0]]]
        for prev, cur in itertools.pairwise(pts):
            if gap_s is not None and cur[0] - prev[0] > gap_s:
                segs.append([])
            segs[-1].append(cur)
        return segs
    n_buckets = max(1, max_points // 2)
    t0, t1 = pts[0][0], pts[-1][0]
    width = (t1 - t0) / n_buckets or 1.0
    buckets: dict[int, list[Point]] = defaultdict(list)
    for p in pts:
        buckets[min(n_buckets - 1, int((p[0] - t0) / width))].append(p)
    out: list[Segment] = []
    prev_idx = -2
    prev_t: float | None = None
    for idx in sorted(buckets):
        b = buckets[idx]
        lo = min(b, key=lambda p: p[1])
        hi = max(b, key=lambda p: p[1])
        keep = [lo] if lo is hi else sorted((lo, hi))
        first_t = b[0][0]
        gap = idx != prev_idx + 1 or (gap_s is not None and prev_t is not None and first_t - prev_t > max(gap_s, width))
        if gap or not out:
            out.append([])
        out[-1].extend(keep)
        prev_idx, prev_t = idx, b[-1][0]
    return out


def _zero_filled(points: list[Point], step: float) -> list[Point]:
    """Insert zeros at the edges of missing windows (a missing window of a sum means 0)."""
    if not points or step <= 0:
        return points
    out = [points[0]]
    for prev, cur in itertools.pairwise(points):
        if cur[0] - prev[0] > 1.5 * step:
            out.append((prev[0] + step, 0.0))
            if cur[0] - step > prev[0] + step:
                out.append((cur[0] - step, 0.0))
        out.append(cur)
    return out


# --------------------------------------------------------------------------- formatting


def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    a = abs(v)
    for size, div, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if a >= size:
            return f"{v / div:.{digits}g}{suffix}"
    if float(v).is_integer():
        return f"{int(v):,}"
    if a >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _count(v: Any) -> str:
    f = _num(v)
    return "–" if f is None else f"{f:,.0f}"


def _pct(v: Any) -> str:
    f = _num(v)
    return "–" if f is None else f"{f * 100:.1f}%"


def _dur(v: Any) -> str:
    f = _num(v)
    if f is None:
        return "–"
    if f < 120:
        return f"{f:.0f} s"
    if f < 7200:
        return f"{f / 60:.1f} min"
    return f"{f / 3600:.1f} h"


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    exp = math.floor(math.log10(raw))
    base = raw / 10**exp
    nice = 1.0 if base <= 1 else 2.0 if base <= 2 else 5.0 if base <= 5 else 10.0
    return float(nice * 10.0**exp)


def _y_ticks(vmax: float, n: int = 4) -> tuple[float, list[float]]:
    if vmax <= 0:
        vmax = 1.0
    step = _nice_step(vmax / n)
    top = math.ceil(vmax / step - 1e-9) * step
    ticks = [i * step for i in range(round(top / step) + 1)]
    return top, ticks


_TIME_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)


def _x_ticks(t0: float, t1: float, n: int = 8) -> list[float]:
    span = max(t1 - t0, 1.0)
    step = next((s for s in _TIME_STEPS if span / s <= n), _TIME_STEPS[-1] * math.ceil(span / n / _TIME_STEPS[-1]))
    first = math.ceil(t0 / step) * step
    return [float(t) for t in range(int(first), int(t1) + 1, int(step))]


def _x_label(t: float, span: float) -> str:
    d = datetime.fromtimestamp(t, UTC)
    return d.strftime("%m-%d %H:%M") if span > 86400 else d.strftime("%H:%M")


def _c(v: float) -> str:
    """A compact SVG coordinate."""
    s = f"{v:.1f}"
    return s[:-2] if s.endswith(".0") else s


# --------------------------------------------------------------------------- charts


@dataclass(slots=True)
class _Series:
    label: str
    segments: list[Segment]


def _chart_svg(
    *,
    chart_id: str,
    spec: ChartSpec,
    key_label: str,
    series: list[_Series],
    anomalies: list[tuple[float, Mapping[str, Any], str | None]],
    incidents: Sequence[Mapping[str, Any]],
    t0: float,
    t1: float,
    geo: Geometry = GEOMETRY,
) -> str:
    n_points = sum(len(s) for sr in series for s in sr.segments)
    vmax = max((p[1] for sr in series for s in sr.segments for p in s), default=0.0)
    ymax, yticks = _y_ticks(vmax)
    parts = [
        f'<svg class="chart" id="{chart_id}" data-metric="{spec.name}" data-points="{n_points}" '
        f'data-t0="{t0:.3f}" data-t1="{t1:.3f}" viewBox="0 0 {_c(geo.width)} {_c(geo.height)}" '
        f'preserveAspectRatio="none" role="img" aria-label="{escape(f"{key_label}: {spec.title}")}">',
        f'<rect class="plot" x="{_c(geo.left)}" y="{_c(geo.top)}" width="{_c(geo.plot_w)}" height="{_c(geo.plot_h)}"/>',
    ]
    # labelled incidents, shaded
    for inc in incidents:
        s, e = max(t0, inc["_s"]), min(t1, inc["_e"])
        if e <= s:
            continue
        x0, x1 = geo.x(s, t0, t1), geo.x(e, t0, t1)
        missed = " missed" if inc.get("_missed") else ""
        tip = f"{inc.get('id', '')} {inc.get('kind', '')} {_ts(inc['_s'])} → {_ts(inc['_e'])} UTC" + (
            " (not detected)" if missed else ""
        )
        if inc.get("description"):
            tip += f"\n{inc['description']}"
        parts.append(
            f'<rect class="incident{missed}" x="{_c(x0)}" y="{_c(geo.top)}" width="{_c(max(x1 - x0, 1.0))}" '
            f'height="{_c(geo.plot_h)}"><title>{escape(tip)}</title></rect>'
        )
    # grid and axes
    for v in yticks:
        y = geo.y(v, ymax)
        parts.append(
            f'<line class="grid" x1="{_c(geo.left)}" x2="{_c(geo.width - geo.right)}" y1="{_c(y)}" y2="{_c(y)}"/>'
            f'<text class="ytick" x="{_c(geo.left - 5)}" y="{_c(y + 3.5)}">{escape(_fmt(v))}</text>'
        )
    span = t1 - t0
    for t in _x_ticks(t0, t1):
        x = geo.x(t, t0, t1)
        parts.append(
            f'<line class="xgrid" x1="{_c(x)}" x2="{_c(x)}" y1="{_c(geo.top)}" y2="{_c(geo.top + geo.plot_h)}"/>'
            f'<text class="xtick" x="{_c(x)}" y="{_c(geo.height - 8)}">{_x_label(t, span)}</text>'
        )
    # lines
    if n_points == 0:
        parts.append(
            f'<text class="nodata" x="{_c(geo.left + geo.plot_w / 2)}" y="{_c(geo.top + geo.plot_h / 2)}">'
            "no windows</text>"
        )
    for i, sr in reversed(list(enumerate(series))):  # the first series (p50, input) on top
        d: list[str] = []
        dots: list[str] = []
        for seg in sr.segments:
            if not seg:
                continue
            coords = [(geo.x(t, t0, t1), geo.y(v, ymax)) for t, v in seg]
            if len(coords) == 1:
                dots.append(f'<circle class="pt s{i}" cx="{_c(coords[0][0])}" cy="{_c(coords[0][1])}" r="1.8"/>')
                continue
            d.append("M" + "L".join(f"{_c(x)},{_c(y)}" for x, y in coords))
        if d:
            parts.append(f'<path class="line s{i}" data-series="{escape(sr.label)}" d="{"".join(d)}"/>')
        parts.extend(dots)
    # anomaly markers: a faint rule through the plot and a dot on the strip above it
    if anomalies:
        parts.append('<g class="anomalies">')
        for t, a, alert_id in sorted(anomalies, key=lambda x: (_sev_rank(x[1]), x[0])):  # most severe on top
            sev = str(a.get("severity", "low"))
            sev_cls = sev if sev in SEVERITY_COLOURS else "low"
            x = geo.x(min(max(t, t0), t1), t0, t1)
            lines = [
                f"{a.get('anomaly_type', '?')} ({sev}) at {_ts(t)} UTC",
                f"metric {a.get('metric', '?')}: observed {_fmt(_num(a.get('observed')), 4)}, "
                f"expected {_fmt(_num(a.get('expected')), 4)}, threshold {_fmt(_num(a.get('threshold')), 4)}",
                f"method {a.get('detection_method', '?')}, score {_fmt(_num(a.get('score')), 4)}",
            ]
            if alert_id:
                lines.append(f"alert {alert_id}")
            parts.append(
                f'<g class="anomaly sev-{sev_cls}" data-t="{t:.3f}" data-type="{escape(str(a.get("anomaly_type")))}">'
                f'<line x1="{_c(x)}" x2="{_c(x)}" y1="{_c(geo.top)}" y2="{_c(geo.top + geo.plot_h)}"/>'
                f'<circle cx="{_c(x)}" cy="{_c(geo.top / 2)}" r="4.2"><title>{escape(chr(10).join(lines))}</title>'
                "</circle></g>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _sev_rank(a: Mapping[str, Any]) -> int:
    sev = str(a.get("severity", "low"))
    return Severity(sev).rank if sev in SEVERITY_ORDER else 0


# --------------------------------------------------------------------------- page


_CSS = """
:root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--bg:#fff;--panel:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
 background:var(--bg);margin:0;padding:20px 28px 40px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid var(--line);
 padding-bottom:4px}h3{font-size:14px;margin:0 0 6px}
.muted{color:var(--muted)}code{font-size:12px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:20px}.card span{color:var(--muted);font-size:12px}
.tables{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:right;white-space:nowrap}
th{background:var(--panel)}td:first-child,th:first-child{text-align:left}
td.l,table.left td,table.left th{text-align:left}
.legend{display:flex;flex-wrap:wrap;gap:14px;margin:8px 0;font-size:12px;color:var(--muted);align-items:center}
.sw{display:inline-block;width:11px;height:11px;border-radius:50%;vertical-align:-1px;margin-right:4px}
.sw.box{border-radius:2px}.sw.ln{height:3px;border-radius:0;vertical-align:3px;width:16px}
details.key{border:1px solid var(--line);border-radius:6px;margin:14px 0;padding:0 14px 10px}
details.key>summary{cursor:pointer;padding:10px 0;font-weight:600;font-size:15px}
details.key>summary .muted{font-weight:400;font-size:13px}
.grid2{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:8px 18px}
.cbox h4{margin:6px 0 0;font-size:13px;font-weight:600;display:flex;gap:12px;align-items:center}
.cbox h4 .legend{margin:0}
svg.chart{width:100%;height:auto;aspect-ratio:680/190;display:block;overflow:visible}
svg.chart .plot{fill:#fff;stroke:var(--line)}
svg.chart .grid{stroke:#eef1f4}svg.chart .xgrid{stroke:#f3f4f6}
svg.chart text{font-size:10.5px;fill:var(--muted);font-family:inherit}
svg.chart .ytick{text-anchor:end}svg.chart .xtick{text-anchor:middle}
svg.chart .nodata{text-anchor:middle;font-size:13px}
svg.chart .line{fill:none;stroke-width:1.3;stroke-linejoin:round;vector-effect:non-scaling-stroke}
svg.chart .incident{fill:rgba(46,160,67,.13);stroke:rgba(46,160,67,.55);stroke-dasharray:3 2}
svg.chart .incident.missed{fill:rgba(130,80,223,.12);stroke:rgba(130,80,223,.6)}
svg.chart .anomaly line{stroke-width:1;opacity:.28}
svg.chart .anomaly circle{stroke:#fff;stroke-width:1}
svg.chart .anomaly:hover line{opacity:.9}
"""
_CSS += "".join(
    f"svg.chart .sev-{s} line{{stroke:{c}}}svg.chart .sev-{s} circle{{fill:{c}}}.sw.sev-{s}{{background:{c}}}"
    for s, c in SEVERITY_COLOURS.items()
)
# series colours (a line's fill stays none: ``svg.chart .line`` is the more specific rule)
_CSS += "".join(f".s{i}{{stroke:{c};fill:{c}}}.sw.s{i}{{background:{c}}}" for i, c in enumerate(LINE_COLOURS))

# Checks that every chart drew something; the browser test reads body[data-rendered]. No data inside.
_JS = """
(function () {
  var charts = document.querySelectorAll("svg.chart"), ok = 0, bad = [];
  for (var i = 0; i < charts.length; i++) {
    var svg = charts[i], good = false, r = svg.getBoundingClientRect();
    if (+svg.getAttribute("data-points") === 0) {
      good = svg.querySelector(".nodata") !== null;
    } else {
      var marks = svg.querySelectorAll("path.line, circle.pt");
      for (var j = 0; j < marks.length; j++) {
        var b = marks[j].getBBox();
        if (b.width > 0 || b.height > 0 || marks[j].tagName === "circle") { good = true; break; }
      }
    }
    if (r.width <= 0) { good = false; }
    if (good) { ok++; } else { bad.push(svg.id); }
  }
  document.body.setAttribute("data-charts", String(charts.length));
  document.body.setAttribute("data-rendered", String(ok));
  if (bad.length) { console.error("report: charts not rendered: " + bad.join(", ")); }
})();
"""


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    h = "".join(f"<th>{escape(str(c))}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def _card(value: str, label: str) -> str:
    return f'<div class="card"><b>{escape(value)}</b><span>{escape(label)}</span></div>'


def _label_section(scores: Mapping[str, Any]) -> str:
    out = ["<h2>Against the labels</h2>", '<div class="cards">']
    delay = scores.get("delay_s") or {}
    delay_m = scores.get("delay_matching_s") or {}
    out += [
        _card(_pct(scores.get("recall")), "recall (alert of any type)"),
        _card(_pct(scores.get("recall_matching")), "recall (alert of the incident's type)"),
        _card(_pct(scores.get("precision")), "alert precision"),
        _card(_fmt(_num(scores.get("false_alerts"))), "false alerts"),
        _card(_fmt(_num(scores.get("false_alerts_per_series_hour"))), "false alerts / series-hour"),
        _card(_dur(delay.get("median")), "detection delay, median"),
        _card(_dur(delay.get("p90")), "detection delay, p90"),
        _card(_dur(delay_m.get("median")), "delay (matching type), median"),
        "</div>",
        '<div class="tables">',
    ]
    per_kind = scores.get("per_kind") or {}
    out.append(
        _table(
            ("incident kind", "incidents", "detected", "recall", "matching", "recall (matching)"),
            (
                (
                    k,
                    v.get("incidents", 0),
                    v.get("detected", 0),
                    _pct(v.get("recall")),
                    v.get("detected_matching", 0),
                    _pct(v.get("recall_matching")),
                )
                for k, v in sorted(per_kind.items())
            ),
        )
    )
    fbs = scores.get("false_alerts_by_series") or {}
    if fbs:
        out.append(_table(("series", "false alerts"), sorted(fbs.items())))
    out.append("</div>")
    und = scores.get("undetected") or []
    out.append(
        f'<p class="muted">{escape(str(scores.get("incidents", 0)))} incidents over '
        f"{escape(_fmt(_num(scores.get('series_hours'))))} series-hours; an incident counts as detected by an alert "
        f"of its series from {escape(_dur(scores.get('tolerance_s')))} before its start to "
        f"{escape(_dur(scores.get('grace_s')))} after its end."
        + (f" Not detected: {escape(', '.join(map(str, und)))}." if und else "")
        + "</p>"
    )
    return "".join(out)


def render_html(
    report: Mapping[str, Any],
    windows: Sequence[Mapping[str, Any]],
    anomalies: Sequence[Mapping[str, Any]],
    alerts: Sequence[Mapping[str, Any]],
    labels: Mapping[str, Any] | None,
    *,
    max_points: int = MAX_POINTS,
) -> str:
    """The report page as a string (see :func:`write_html`)."""
    # ---- group by key
    win_by_key: dict[tuple[str, str], list[tuple[float, Mapping[str, Any]]]] = defaultdict(list)
    lengths: list[float] = []
    for w in windows:
        try:
            s, e = parse_ts(w["window_start"]), parse_ts(w["window_end"])
        except (KeyError, ValueError, TypeError):
            continue
        lengths.append(e - s)
        win_by_key[(str(w.get("service", "")), str(w.get("model", "")))].append(((s + e) / 2, w))
    step = sorted(lengths)[len(lengths) // 2] if lengths else 60.0
    alert_of: dict[str, str] = {}
    for al in alerts:
        if al.get("id") and al.get("alert_id"):
            alert_of.setdefault(str(al["id"]), str(al["alert_id"]))
    an_by_key: dict[tuple[str, str], list[tuple[float, Mapping[str, Any]]]] = defaultdict(list)
    for a in anomalies:
        try:
            t = parse_ts(a["timestamp"])
        except (KeyError, ValueError, TypeError):
            continue
        an_by_key[(str(a.get("service", "")), str(a.get("model", "")))].append((t, a))
    alerts_by_key = Counter((str(a.get("service", "")), str(a.get("model", ""))) for a in alerts)
    undetected = set(map(str, ((report.get("labels") or {}).get("undetected") or [])))
    inc_by_key: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for inc in (labels or {}).get("incidents", []) or []:
        try:
            s, e = parse_ts(inc["start"]), parse_ts(inc["end"])
        except (KeyError, ValueError, TypeError):
            continue
        inc_by_key[(str(inc.get("service", "")), str(inc.get("model", "")))].append(
            {**inc, "_s": s, "_e": e, "_missed": str(inc.get("id")) in undetected}
        )
    keys = sorted(set(win_by_key) | set(an_by_key) | set(inc_by_key))

    # ---- one time axis for every chart, so charts line up
    times = [t for v in win_by_key.values() for t, _ in v] + [t for v in an_by_key.values() for t, _ in v]
    times += [x for v in inc_by_key.values() for i in v for x in (i["_s"], i["_e"])]
    if win_by_key:
        times += [t - step / 2 for v in win_by_key.values() for t, _ in v[:1]]
        times += [t + step / 2 for v in win_by_key.values() for t, _ in v[-1:]]
    t0 = min(times) if times else 0.0
    t1 = max(times) if times else 60.0
    if t1 <= t0:
        t1 = t0 + step

    # ---- header and summary
    events = _num(report.get("events")) or 0.0
    h: list[str] = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>LLM-Sentinel backtest — {escape(str(report.get('input') or ''))}</title>",
        f"<style>{_CSS}</style></head>",
        f'<body data-expected="{len(keys) * len(CHARTS)}">',
        "<h1>LLM-Sentinel backtest report</h1>",
        f'<div class="muted">input <code>{escape(str(report.get("input") or "–"))}</code> · '
        f"event time {escape(_ts(t0))} → {escape(_ts(t1))} UTC · {len(keys)} service/model keys · "
        f"window {escape(_dur(step))}</div>",
        '<div class="cards">',
        _card(_count(events), "events"),
        _card(_count(report.get("events_per_s")), "events/s"),
        _card(f"{_fmt(_num(report.get('elapsed_s')))} s", "elapsed"),
        _card(_count(report.get("windows")), "windows"),
        _card(_count(report.get("anomalies")), "anomalies"),
        _card(_count(report.get("alerts")), "alerts"),
        _card(_count(report.get("dead_letters")), "dead letters"),
        "</div>",
        '<div class="tables">',
    ]
    an_types = dict(report.get("anomalies_by_type") or {})
    al_types = dict(report.get("alerts_by_type") or {})
    h.append(
        _table(
            ("anomaly type", "anomalies", "alerts"),
            [(t, an_types.get(t, 0), al_types.get(t, 0)) for t in sorted(set(an_types) | set(al_types))]
            + [("total", report.get("anomalies", 0), report.get("alerts", 0))],
        )
    )
    sev_an = Counter(str(a.get("severity")) for a in anomalies)
    sev_al = dict(report.get("alerts_by_severity") or {})
    h.append(
        _table(
            ("severity", "anomalies", "alerts"),
            [(s, sev_an.get(s, 0), sev_al.get(s, 0)) for s in SEVERITY_ORDER if sev_an.get(s) or sev_al.get(s)],
        )
    )
    # per key overview, linking to the charts
    rows = []
    for i, k in enumerate(keys):
        ws = [w for _, w in win_by_key.get(k, [])]
        req = sum(_num(w.get("requests")) or 0 for w in ws)
        err = sum(_num(w.get("errors")) or 0 for w in ws)
        cost = sum(_num(w.get("cost_usd")) or 0 for w in ws)
        incs = inc_by_key.get(k, [])
        det = sum(1 for x in incs if not x["_missed"])
        rows.append(
            f'<tr><td class="l"><a href="#key-{i}">{escape(k[0])} · {escape(k[1])}</a></td>'
            f"<td>{len(ws)}</td><td>{escape(_fmt(req))}</td><td>{escape(_pct(err / req if req else 0))}</td>"
            f"<td>{escape(_fmt(cost, 4))}</td><td>{len(an_by_key.get(k, []))}</td><td>{alerts_by_key.get(k, 0)}</td>"
            + (f"<td>{det}/{len(incs)}</td>" if labels is not None else "")
            + "</tr>"
        )
    head = ["service · model", "windows", "requests", "error rate", "cost USD", "anomalies", "alerts"]
    if labels is not None:
        head.append("incidents detected")
    h.append(
        "<table><thead><tr>"
        + "".join(f"<th>{escape(c)}</th>" for c in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
    h.append("</div>")
    if report.get("labels"):
        h.append(_label_section(report["labels"]))

    # ---- charts per key
    h.append("<h2>Per service and model</h2>")
    legend = ['<div class="legend"><span>anomalies by severity:</span>']
    legend += [f'<span><i class="sw sev-{s}"></i>{s}</span>' for s in SEVERITY_ORDER]
    if labels is not None:
        legend.append('<span><i class="sw box" style="background:rgba(46,160,67,.3)"></i>labelled incident</span>')
        legend.append('<span><i class="sw box" style="background:rgba(130,80,223,.3)"></i>incident not detected</span>')
    legend.append(
        f"<span>x = event time (UTC), one point per {escape(_dur(step))} window; hover a marker or an incident for "
        "details; the marker sits on the chart of the anomaly's metric</span></div>"
    )
    h.append("".join(legend))
    for i, k in enumerate(keys):
        key_label = f"{k[0]} · {k[1]}"
        wins = win_by_key.get(k, [])
        anoms = an_by_key.get(k, [])
        incs = inc_by_key.get(k, [])
        by_chart: dict[str, list[tuple[float, Mapping[str, Any], str | None]]] = defaultdict(list)
        for t, a in anoms:
            by_chart[chart_for_anomaly(a)].append((t, a, alert_of.get(str(a.get("id")))))
        types = Counter(str(a.get("anomaly_type")) for _, a in anoms)
        summary_bits = [f"{len(wins)} windows", f"{len(anoms)} anomalies", f"{alerts_by_key.get(k, 0)} alerts"]
        if labels is not None:
            summary_bits.append(f"{len(incs)} labelled incidents")
        h.append(
            f'<details class="key" id="key-{i}" open><summary>{escape(key_label)} '
            f'<span class="muted">— {escape(", ".join(summary_bits))}</span></summary>'
        )
        if types:
            h.append(
                '<div class="muted">'
                + escape(", ".join(f"{t} × {n}" for t, n in sorted(types.items(), key=lambda x: -x[1])))
                + "</div>"
            )
        if incs:
            h.append(
                _table(
                    ("incident", "kind", "start (UTC)", "end (UTC)", "detected"),
                    (
                        (
                            x.get("id", ""),
                            x.get("kind", ""),
                            _ts(x["_s"]),
                            _ts(x["_e"]),
                            "no" if x["_missed"] else "yes",
                        )
                        for x in sorted(incs, key=lambda x: x["_s"])
                    ),
                    cls="left",
                )
            )
        h.append('<div class="grid2">')
        for spec in CHARTS:
            series = []
            for fld, lab in spec.fields:
                pts: list[Point] = []
                for t, w in wins:
                    v = _num(w.get(fld))
                    if v is not None:
                        pts.append((t, v * spec.scale))
                if spec.zero_fill:
                    pts = _zero_filled(pts, step)
                series.append(_Series(lab, downsample(pts, max_points, None if spec.zero_fill else 1.5 * step)))
            leg = "".join(
                f'<span><i class="sw ln s{j}"></i>{escape(lab)}</span>' for j, (_, lab) in enumerate(spec.fields)
            )
            n_an = len(by_chart.get(spec.name, []))
            h.append(
                f'<div class="cbox"><h4>{escape(spec.title)}<span class="legend">{leg}'
                + (f"<span>{n_an} anomalies</span>" if n_an else "")
                + "</span></h4>"
            )
            h.append(
                _chart_svg(
                    chart_id=f"c{i}-{spec.name}",
                    spec=spec,
                    key_label=key_label,
                    series=series,
                    anomalies=by_chart.get(spec.name, []),
                    incidents=incs,
                    t0=t0,
                    t1=t1,
                )
            )
            h.append("</div>")
        h.append("</div></details>")
    h.append(
        f'<p class="muted">Generated {escape(datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"))} UTC by LLM-Sentinel. '
        "Series with more than "
        f"{max_points} points are reduced to per-bucket minimum and maximum.</p>"
    )
    h.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(h)


def write_html(
    out_dir: Path,
    report: dict[str, Any],
    windows: list[dict[str, Any]],
    anomalies: list[dict[str, Any]],
    alerts: list[dict[str, Any]],
    labels: dict[str, Any] | None,
    *,
    max_points: int = MAX_POINTS,
) -> Path:
    """Write ``out_dir/report.html`` (self-contained, offline) and return its path.

    ``report`` is what goes into ``report.json`` (its ``labels`` entry, if any, is
    the label scoring); ``labels`` is the raw labels file, whose incidents are shaded.
    """
    path = Path(out_dir) / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render_html(report, windows, anomalies, alerts, labels, max_points=max_points), encoding="utf-8")
    tmp.replace(path)
    return path
