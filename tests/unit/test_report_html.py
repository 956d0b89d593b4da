"""report.html: structure, marker positions, escaping, downsampling (no browser; see tests/integration)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest

from sentinel.models import AnomalyType, format_ts
from sentinel.report import write_report
from sentinel.report_html import CHARTS, GEOMETRY, chart_for_anomaly, downsample, render_html, write_html

T0 = 1_767_571_200.0  # 2026-01-05T00:00:00Z
VOID = {"meta", "br", "img", "input", "link", "hr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.text = ""

    def iter(self, tag: str | None = None) -> list[Node]:
        out = [self] if tag in (None, self.tag) else []
        for c in self.children:
            out += c.iter(tag)
        return out

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def all_text(self) -> str:
        return self.text + "".join(c.all_text() for c in self.children)


class Tree(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.cur = Node("#root", {}, None)
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.cur.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.cur))

    def handle_endtag(self, tag: str) -> None:
        n: Node | None = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data: str) -> None:
        self.cur.text += data


def window(service: str, model: str, start: float, **over: Any) -> dict[str, Any]:
    w: dict[str, Any] = {
        "service": service,
        "model": model,
        "window_start": format_ts(start),
        "window_end": format_ts(start + 60),
        "requests": 10,
        "errors": 1,
        "error_rate": 0.1,
        "latency_p50_ms": 500.0,
        "latency_p95_ms": 900.0,
        "latency_p99_ms": 1200.0,
        "input_tokens": 1000,
        "output_tokens": 300,
        "cost_usd": 0.01,
        "output_tokens_per_s": 80.0,
        "late_events": 0,
    }
    w.update(over)
    return w


def anomaly(service: str, model: str, t: float, kind: str = "latency_spike", severity: str = "high") -> dict[str, Any]:
    return {
        "id": f"id-{kind}-{t}",
        "timestamp": format_ts(t),
        "detected_at": format_ts(t),
        "service": service,
        "model": model,
        "anomaly_type": kind,
        "severity": severity,
        "detection_method": "zscore",
        "metric": "latency_p50_ms",
        "observed": 5000.0,
        "expected": 500.0,
        "threshold": 4.0,
        "score": 9.1,
        "window": None,
        "details": {},
    }


REPORT: dict[str, Any] = {"input": "x.jsonl", "events": 100, "events_per_s": 50.0, "anomalies": 1, "alerts": 0}


def charts(tree: Tree) -> list[Node]:
    return [n for n in tree.root.iter("svg") if "chart" in n.classes]


def test_writes_one_svg_per_key_and_metric(tmp_path: Path) -> None:
    wins = [window(s, "m", T0 + 60 * i) for s in ("a", "b") for i in range(10)]
    path = write_html(tmp_path, REPORT, wins, [], [], None)
    assert path == tmp_path / "report.html" and path.is_file()
    tree = Tree(path.read_text(encoding="utf-8"))
    svgs = charts(tree)
    assert len(svgs) == 2 * len(CHARTS)
    assert sorted(s.attrs["data-metric"] for s in svgs) == sorted([c.name for c in CHARTS] * 2)
    for svg in svgs:
        paths = [p for p in svg.iter("path") if "line" in p.classes]
        assert paths and all(len(p.attrs["d"]) > 10 for p in paths), svg.attrs["id"]
    body = tree.root.iter("body")[0]
    assert body.attrs["data-expected"] == str(2 * len(CHARTS))
    # self-contained: nothing to fetch
    html = path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "@import" not in html


def test_multi_line_charts_have_a_path_per_series(tmp_path: Path) -> None:
    wins = [window("a", "m", T0 + 60 * i) for i in range(5)]
    tree = Tree(render_html(REPORT, wins, [], [], None))
    for svg in charts(tree):
        spec = next(c for c in CHARTS if c.name == svg.attrs["data-metric"])
        lines = [p for p in svg.iter("path") if "line" in p.classes]
        assert len(lines) == len(spec.fields)


def test_anomaly_marker_at_its_event_time_on_its_metric_chart() -> None:
    wins = [window("a", "m", T0 + 60 * i) for i in range(10)]  # event time T0 .. T0+600
    an = [anomaly("a", "m", T0 + 150, "latency_spike", "critical"), anomaly("a", "m", T0 + 480, "cost_spike", "low")]
    alerts = [an[0] | {"alert_id": "al-1"}]
    tree = Tree(render_html(REPORT, wins, an, alerts, None))
    by_metric = {s.attrs["data-metric"]: s for s in charts(tree)}
    lat, cost = by_metric["latency"], by_metric["cost"]
    assert float(lat.attrs["data-t0"]) == T0 and float(lat.attrs["data-t1"]) == T0 + 600
    (m,) = [g for g in lat.iter("g") if "anomaly" in g.classes]
    assert "sev-critical" in m.classes and float(m.attrs["data-t"]) == T0 + 150
    circle = m.iter("circle")[0]
    expected_x = GEOMETRY.left + GEOMETRY.plot_w * 150 / 600
    assert float(circle.attrs["cx"]) == pytest.approx(expected_x, abs=0.06)
    assert float(m.iter("line")[0].attrs["x1"]) == pytest.approx(expected_x, abs=0.06)
    tip = circle.iter("title")[0].all_text()
    assert "latency_spike (critical)" in tip and "observed 5,000" in tip and "expected 500" in tip
    assert "zscore" in tip and "alert al-1" in tip
    (m2,) = [g for g in cost.iter("g") if "anomaly" in g.classes]
    assert float(m2.iter("circle")[0].attrs["cx"]) == pytest.approx(GEOMETRY.left + GEOMETRY.plot_w * 0.8, abs=0.06)
    others = [s for k, s in by_metric.items() if k not in ("latency", "cost")]
    assert not any("anomaly" in g.classes for s in others for g in s.iter("g"))


def test_every_anomaly_type_has_a_chart() -> None:
    names = {c.name for c in CHARTS}
    for t in AnomalyType:
        assert chart_for_anomaly({"anomaly_type": t.value, "metric": "x"}) in names
    assert chart_for_anomaly({"anomaly_type": "multivariate_outlier", "metric": "latency,output_tokens"}) == "latency"
    assert chart_for_anomaly({"anomaly_type": "something_new", "metric": "cost_usd"}) == "cost"


def test_telemetry_strings_are_escaped(tmp_path: Path) -> None:
    evil_s, evil_m = "<script>alert(1)</script>", '"><img src=x onerror=alert(2)>'
    wins = [window(evil_s, evil_m, T0 + 60 * i) for i in range(3)]
    an = [anomaly(evil_s, evil_m, T0 + 30) | {"metric": "<b>m</b>", "detection_method": "</title><script>x()"}]
    labels = {
        "incidents": [
            {
                "id": "<i>",
                "service": evil_s,
                "model": evil_m,
                "kind": "k<",
                "start": T0,
                "end": T0 + 60,
                "description": "<u>",
            }
        ]
    }
    report = REPORT | {"input": "<svg onload=alert(3)>", "anomalies_by_type": {"<x>": 1}}
    html = write_html(tmp_path, report, wins, an, [], labels).read_text()
    for raw in (evil_s, evil_m, "<b>m</b>", "</title><script>", "<svg onload", "<x>", "<u>", "<i>"):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 1  # our own checker only
    tree = Tree(html)
    assert not tree.root.iter("img") and not tree.root.iter("u")
    assert any(evil_s in n.all_text() for n in tree.root.iter("summary"))


def test_downsample_bounds_points_and_keeps_extremes() -> None:
    pts = [(float(i), float((i * 7919) % 1000)) for i in range(20_000)]
    pts[12_345] = (12_345.0, 99_999.0)
    pts[777] = (777.0, -5.0)
    segs = downsample(pts, max_points=2000, gap_s=1.5)
    flat = [p for s in segs for p in s]
    assert len(flat) <= 2000
    assert max(v for _, v in flat) == 99_999.0 and min(v for _, v in flat) == -5.0
    assert flat == sorted(flat)  # still in time order
    assert len(segs) == 1  # no gaps in a dense series
    assert downsample(pts[:100], max_points=2000) == [pts[:100]]  # small series untouched
    assert downsample([], 10) == []


def test_downsample_breaks_lines_at_gaps() -> None:
    pts = [(0.0, 1.0), (60.0, 2.0), (600.0, 3.0), (660.0, 4.0)]
    assert downsample(pts, gap_s=90) == [[(0.0, 1.0), (60.0, 2.0)], [(600.0, 3.0), (660.0, 4.0)]]
    big = [(float(t), 1.0) for t in range(3000)] + [(float(t), 2.0) for t in range(10_000, 13_000)]
    segs = downsample(big, max_points=1000, gap_s=1.5)
    assert len(segs) == 2 and sum(map(len, segs)) <= 1000


def test_long_run_is_downsampled_in_the_page() -> None:
    n = 5000  # ~3.5 days of 1-minute windows for one key
    wins = [window("a", "m", T0 + 60 * i, requests=i % 97) for i in range(n)]
    html = render_html(REPORT, wins, [], [], None, max_points=800)
    tree = Tree(html)
    for svg in charts(tree):
        for p in svg.iter("path"):
            assert len(re.findall(r"[ML]", p.attrs["d"])) <= 800
        assert int(svg.attrs["data-points"]) <= 800 * len(
            next(c for c in CHARTS if c.name == svg.attrs["data-metric"]).fields
        )
    assert len(html) < 600_000


def test_sums_drop_to_zero_across_missing_windows_rates_break() -> None:
    wins = [window("a", "m", T0 + 60 * i) for i in (0, 1, 2, 10, 11)]
    tree = Tree(render_html(REPORT, wins, [], [], None))
    by_metric = {s.attrs["data-metric"]: s for s in charts(tree)}
    req_d = next(p for p in by_metric["requests"].iter("path")).attrs["d"]
    assert req_d.count("M") == 1 and req_d.count("L") == 5 + 2 - 1  # two zero points inserted
    lat_d = next(p for p in by_metric["latency"].iter("path")).attrs["d"]
    assert lat_d.count("M") == 2  # the line breaks where there is no window


def test_labels_shade_incidents_and_add_scores() -> None:
    wins = [window("a", "m", T0 + 60 * i) for i in range(60)]
    labels = {
        "series": [{"service": "a", "model": "m", "start": T0, "end": T0 + 3600}],
        "incidents": [
            {"id": "i1", "service": "a", "model": "m", "kind": "latency_spike", "start": T0 + 600, "end": T0 + 1200},
            {"id": "i2", "service": "a", "model": "m", "kind": "traffic_drop", "start": T0 + 2400, "end": T0 + 2700},
        ],
    }
    scores = {
        "incidents": 2,
        "recall": 0.5,
        "recall_matching": 0.5,
        "precision": 1.0,
        "false_alerts": 0,
        "false_alerts_per_series_hour": 0.0,
        "delay_s": {"median": 42.0, "p90": 42.0},
        "per_kind": {"latency_spike": {"incidents": 1, "detected": 1, "recall": 1.0}},
        "undetected": ["i2"],
    }
    tree = Tree(render_html(REPORT | {"labels": scores}, wins, [], [], labels))
    for svg in charts(tree):
        rects = [r for r in svg.iter("rect") if "incident" in r.classes]
        assert len(rects) == 2
        missed = [r for r in rects if "missed" in r.classes]
        assert len(missed) == 1 and "i2" in missed[0].all_text()
        x = float(rects[0].attrs["x"])
        assert x == pytest.approx(GEOMETRY.left + GEOMETRY.plot_w * 600 / 3600, abs=0.06)
    text = tree.root.all_text()
    assert "Against the labels" in text and "50.0%" in text and "42 s" in text and "latency_spike" in text


def test_key_without_windows_still_gets_its_charts() -> None:
    tree = Tree(render_html(REPORT, [window("a", "m", T0)], [anomaly("b", "m", T0 + 10)], [], None))
    svgs = charts(tree)
    assert len(svgs) == 2 * len(CHARTS)
    empty = [s for s in svgs if s.attrs["data-points"] == "0"]
    assert len(empty) == len(CHARTS) and all(any("nodata" in t.classes for t in s.iter("text")) for s in empty)


def test_empty_run() -> None:
    tree = Tree(render_html({}, [], [], [], None))
    assert charts(tree) == [] and tree.root.iter("body")[0].attrs["data-expected"] == "0"


def test_write_report_writes_html_and_extended_json(tmp_path: Path) -> None:
    wins = [window("a", "m", T0 + 60 * i) for i in range(30)]
    an = [anomaly("a", "m", T0 + 400)]
    al = [an[0] | {"alert_id": "al-1", "first_seen": an[0]["timestamp"], "last_seen": an[0]["timestamp"]}]
    for name, rows in (("windows.jsonl", wins), ("anomalies.jsonl", an), ("alerts.jsonl", al)):
        (tmp_path / name).write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    labels = {
        "series": [{"service": "a", "model": "m", "start": format_ts(T0), "end": format_ts(T0 + 1800)}],
        "incidents": [
            {
                "id": "i1",
                "service": "a",
                "model": "m",
                "kind": "latency_spike",
                "start": format_ts(T0 + 360),
                "end": format_ts(T0 + 500),
            },
        ],
    }
    lp = tmp_path / "labels.json"
    lp.write_bytes(orjson.dumps(labels))
    report = write_report(tmp_path, counts={"events_valid": 300}, elapsed_s=1.5, labels=str(lp), input_name="in")
    saved = orjson.loads((tmp_path / "report.json").read_bytes())
    assert saved["html"] == "report.html" and (tmp_path / "report.html").is_file()
    for k in (
        "events",
        "events_per_s",
        "anomalies_by_type",
        "alerts_by_type",
        "alerts_by_severity",
        "anomalies_by_key",
    ):
        assert k in saved
    ws = saved["windows_by_key"]["a|m"]
    assert ws["windows"] == 30 and ws["requests"] == 300 and ws["errors"] == 30
    assert ws["latency_p95_ms_median"] == 900.0 and ws["first_window"] == format_ts(T0)
    assert saved["alerts_by_key"] == {"a|m": 1}
    assert saved["labels"]["recall"] == 1.0
    assert saved["labels"]["incident_list"] == [
        {
            "id": "i1",
            "service": "a",
            "model": "m",
            "kind": "latency_spike",
            "start": format_ts(T0 + 360),
            "end": format_ts(T0 + 500),
            "detected": True,
        }
    ]
    html = (tmp_path / "report.html").read_text()
    assert "Against the labels" in html and report["labels"]["recall"] == 1.0


def test_every_anomaly_maps_to_a_drawn_chart() -> None:
    from sentinel import report_html as rh
    from sentinel.models import AnomalyType

    names = {c.name for c in rh.CHARTS}
    assert set(rh._TYPE_CHART.values()) | {c for _, c in rh._METRIC_CHART} | {"requests"} <= names
    assert all(rh.chart_for_anomaly({"anomaly_type": t.value}) in names for t in AnomalyType)
